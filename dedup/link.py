"""Stage 6: candidate pairs, found by DuckDB as documents sharing an LSH bucket in any band.

Only pairs with at least one document of the current batch are generated: new × everything already indexed and
new × new. Over k nightly batches this yields exactly the pairs a one-shot ingest would, which is what makes
incremental ingest equal to a full rebuild.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from dedup.store import fetch


def candidate_pairs(con: duckdb.DuckDBPyConnection, chunk_files: list[str], later_files: list[str],
                    min_bands: int = 1) -> pa.Table:
    """Distinct (doc_a < doc_b) pairs sharing buckets in at least `min_bands` bands, one of them a document whose
    buckets are in `chunk_files` (part of this batch), the other in `later_files` (everything already indexed
    plus this batch's later parts) or in the same part. Walking a batch part by part, each pair comes up exactly
    once, and each part's join reads only the files it needs. Requiring several shared bands is a property of
    the pair alone, so it keeps incremental ingest equal to a one-shot ingest, and it removes the many pairs of
    unrelated texts that meet in one band by chance."""
    if not chunk_files:
        return pa.table({"doc_a": pa.array([], pa.string()), "doc_b": pa.array([], pa.string())})
    later = "SELECT bucket, doc_id, true AS other FROM read_parquet($later) UNION ALL " if later_files else ""
    # The band number seeds each bucket key, so equal keys mean the same band: the join needs the key alone.
    # min_bands is written into the SQL: prepared parameters made this join's filters several times slower in
    # DuckDB 2.0 (measured while the parts were still selected by a hash filter).
    sql = f"""
        WITH n AS (SELECT bucket, doc_id FROM read_parquet($chunk)),
             o AS ({later}SELECT bucket, doc_id, false AS other FROM read_parquet($chunk))
        SELECT least(n.doc_id, o.doc_id) AS doc_a, greatest(n.doc_id, o.doc_id) AS doc_b
        FROM n JOIN o ON n.bucket = o.bucket AND (o.other OR n.doc_id < o.doc_id)
        GROUP BY ALL HAVING count(*) >= {int(min_bands)}
    """
    params = {"chunk": chunk_files}
    if later_files:
        params["later"] = later_files
    return fetch(con, sql, params)
