"""Stage 6: candidate pairs, found by DuckDB as documents sharing an LSH bucket in any band.

Only pairs with at least one document of the current batch are generated: new × everything already indexed and
new × new. Over k nightly batches this yields exactly the pairs a one-shot ingest would, which is what makes
incremental ingest equal to a full rebuild.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from dedup.store import fetch


def candidate_pairs(con: duckdb.DuckDBPyConnection, new_files: list[str], old_files: list[str], chunk: int,
                    chunks: int, min_bands: int = 1) -> pa.Table:
    """Distinct (doc_a < doc_b) pairs sharing buckets in at least `min_bands` bands, one of them a document of
    this batch (buckets in `new_files`) in chunk `chunk` of `chunks`, the other any indexed document (buckets in
    `old_files`) or a document of this batch in the same or a later chunk — so each pair comes up exactly once
    over the chunks. A document's chunk is hash(doc_id) mod chunks: chunks bound the memory of a large batch
    without a join against lists of ids. Requiring several shared bands is a property of the pair alone, so it
    keeps incremental ingest equal to a one-shot ingest, and it removes the many pairs of unrelated texts that
    meet in one band by chance."""
    if not new_files:
        return pa.table({"doc_a": pa.array([], pa.string()), "doc_b": pa.array([], pa.string())})
    older = "SELECT bucket, doc_id, true AS other FROM read_parquet($old) UNION ALL " if old_files else ""
    # The band number seeds each bucket key, so equal keys mean the same band: the join needs the key alone.
    # Integers are written into the SQL: as prepared parameters they stop DuckDB from pushing the filters down.
    sql = f"""
        WITH n AS (SELECT bucket, doc_id FROM read_parquet($new) WHERE hash(doc_id) % {int(chunks)} = {int(chunk)}),
             o AS ({older}SELECT bucket, doc_id, hash(doc_id) % {int(chunks)} > {int(chunk)} AS other FROM read_parquet($new)
                   WHERE hash(doc_id) % {int(chunks)} >= {int(chunk)})
        SELECT least(n.doc_id, o.doc_id) AS doc_a, greatest(n.doc_id, o.doc_id) AS doc_b
        FROM n JOIN o ON n.bucket = o.bucket AND (o.other OR n.doc_id < o.doc_id)
        GROUP BY ALL HAVING count(*) >= {int(min_bands)}
    """
    params = {"new": new_files}
    if old_files:
        params["old"] = old_files
    return fetch(con, sql, params)
