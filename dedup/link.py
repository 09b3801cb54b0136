"""Stage 6: candidate pairs, found by DuckDB as documents sharing an LSH bucket in any band.

Only pairs with at least one document of the current batch are generated: new × everything already indexed and
new × new. Over k nightly batches this yields exactly the pairs a one-shot ingest would, which is what makes
incremental ingest equal to a full rebuild.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from dedup.store import fetch


def candidate_pairs(con: duckdb.DuckDBPyConnection, new_files: list[str], all_files: list[str],
                    chunk_ids: pa.Table, done_ids: pa.Table) -> pa.Table:
    """Distinct (doc_a < doc_b) pairs sharing a bucket, one of them among `chunk_ids` (documents of this batch,
    whose buckets are in `new_files`), the other anywhere except `done_ids` (this batch's documents of earlier
    chunks: their pairs were generated then). Chunks bound the memory of a large batch."""
    if not new_files:
        return pa.table({"doc_a": pa.array([], pa.string()), "doc_b": pa.array([], pa.string())})
    con.register("chunk_ids", chunk_ids)
    con.register("done_ids", done_ids)
    sql = """
        WITH n AS (SELECT band, bucket, doc_id FROM read_parquet($new)
                   WHERE doc_id IN (SELECT doc_id FROM chunk_ids)),
             o AS (SELECT band, bucket, doc_id FROM read_parquet($all)
                   WHERE doc_id NOT IN (SELECT doc_id FROM done_ids))
        SELECT DISTINCT least(n.doc_id, o.doc_id) AS doc_a, greatest(n.doc_id, o.doc_id) AS doc_b
        FROM n JOIN o ON n.band = o.band AND n.bucket = o.bucket AND n.doc_id <> o.doc_id
    """
    try:
        return fetch(con, sql, {"new": new_files, "all": all_files})
    finally:
        con.unregister("chunk_ids")
        con.unregister("done_ids")
