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
                    chunk_ids: pa.Table, done_ids: pa.Table, min_bands: int = 1) -> pa.Table:
    """Distinct (doc_a < doc_b) pairs sharing buckets in at least `min_bands` bands, one of them among
    `chunk_ids` (documents of this batch, whose buckets are in `new_files`), the other anywhere except `done_ids`
    (this batch's documents of earlier chunks: their pairs were generated then). Chunks bound the memory of a
    large batch. Requiring several shared bands is a property of the pair alone, so it keeps incremental ingest
    equal to a one-shot ingest, and it removes the many pairs of unrelated texts that meet in one band by chance."""
    if not new_files:
        return pa.table({"doc_a": pa.array([], pa.string()), "doc_b": pa.array([], pa.string())})
    con.register("chunk_ids", chunk_ids)
    con.register("done_ids", done_ids)
    sql = """
        WITH n AS (SELECT band, bucket, doc_id FROM read_parquet($new)
                   WHERE doc_id IN (SELECT doc_id FROM chunk_ids)),
             o AS (SELECT band, bucket, doc_id FROM read_parquet($all)
                   WHERE doc_id NOT IN (SELECT doc_id FROM done_ids))
        SELECT least(n.doc_id, o.doc_id) AS doc_a, greatest(n.doc_id, o.doc_id) AS doc_b
        FROM n JOIN o ON n.band = o.band AND n.bucket = o.bucket AND n.doc_id <> o.doc_id
        GROUP BY ALL HAVING count(DISTINCT n.band) >= $min_bands
    """
    try:
        return fetch(con, sql, {"new": new_files, "all": all_files, "min_bands": min_bands})
    finally:
        con.unregister("chunk_ids")
        con.unregister("done_ids")
