"""Stage 6: candidate pairs, found by DuckDB as documents sharing an LSH bucket in any band.

Only pairs with at least one document of the current batch are generated: new × everything already indexed and
new × new. Over k nightly batches this yields exactly the pairs a one-shot ingest would, which is what makes
incremental ingest equal to a full rebuild.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from dedup.store import fetch


def candidate_pairs(con: duckdb.DuckDBPyConnection, new_files: list[str], all_files: list[str]) -> pa.Table:
    """Distinct (doc_a < doc_b) pairs sharing a bucket, at least one of them from `new_files`.

    Also returns `bands`, the number of bands the pair shares: an unbiased hint of similarity for free."""
    if not new_files:
        return pa.table({"doc_a": pa.array([], pa.string()), "doc_b": pa.array([], pa.string()),
                         "bands": pa.array([], pa.int64())})
    sql = """
        WITH n AS (SELECT band, bucket, doc_id FROM read_parquet($new)),
             o AS (SELECT band, bucket, doc_id FROM read_parquet($all)),
             hits AS (
                SELECT least(n.doc_id, o.doc_id) AS doc_a, greatest(n.doc_id, o.doc_id) AS doc_b, n.band
                FROM n JOIN o ON n.band = o.band AND n.bucket = o.bucket AND n.doc_id <> o.doc_id)
        SELECT doc_a, doc_b, count(DISTINCT band) AS bands FROM hits GROUP BY doc_a, doc_b ORDER BY doc_a, doc_b
    """
    return fetch(con, sql, {"new": new_files, "all": all_files})
