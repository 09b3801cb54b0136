"""Arrow helpers shared by the stages: query results as Arrow tables, positions of ids, the rows of chosen ids read
from Parquet files."""

from __future__ import annotations

import bisect
from concurrent.futures import ThreadPoolExecutor

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def fetch(con: duckdb.DuckDBPyConnection, sql: str, parameters: list | dict | None = None) -> pa.Table:
    """Run a query and return its result as one Arrow table."""
    return con.sql(sql, params=parameters).to_arrow_table()


def positions(values: pa.Array | pa.ChunkedArray, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Position of each of `values` in the unique `ids` (all must be present), without Python objects."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    return pc.index_in(values, value_set=ids).to_numpy().astype(np.int64)


def rows_of(paths: list[str], columns: list[str], ids: pa.Array, threads: int = 2) -> pa.Table:
    """(doc_id, *columns) of the rows whose doc_id is in `ids`, from these Parquet files, in no particular order.

    Each row group's doc_id column is read first and the other columns only where some of `ids` are. Row groups
    are read in parallel threads (pyarrow decompresses without the GIL), largest first, so that the last one read
    is a small one and a compacted table (one large file) is read on every core too: fetching the texts of 10k
    documents scattered over a 1M-document index took 14 s as a DuckDB semi-join, 4 s this way."""
    def one(task: tuple[str, int]) -> pa.Table | None:
        f = pq.ParquetFile(task[0])
        found = f.read_row_group(task[1], columns=["doc_id"])
        mask = pc.is_in(found["doc_id"], value_set=ids)
        if not pc.any(mask).as_py():
            return None
        rest = f.read_row_group(task[1], columns=columns)
        return pa.table([*found.columns, *rest.columns], names=["doc_id", *columns]).filter(mask)

    wanted = sorted(ids.to_pylist())
    tasks = []  # (bytes, path, row group)
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        at = next(c for c in range(meta.num_columns) if meta.schema.column(c).path == "doc_id")
        tasks += [(meta.row_group(g).total_byte_size, path, g) for g in range(meta.num_row_groups)
                  if _may_hold(meta.row_group(g).column(at).statistics, wanted)]
    tasks.sort(key=lambda t: -t[0])
    with ThreadPoolExecutor(max_workers=threads) as ex:
        found = [t for t in ex.map(one, [(path, g) for _, path, g in tasks]) if t is not None]
    return pa.concat_tables(found) if found else pq.read_schema(paths[0]).empty_table().select(["doc_id", *columns])


def _may_hold(stats: pq.Statistics | None, wanted: list[str]) -> bool:
    """Whether a row group whose doc_id statistics are `stats` can hold one of the sorted ids `wanted`: where ids
    grow with time, as the benchmark's do, a night's texts are looked for in the window's files only (reading
    the ids of every file of a 2M archive cost 0.2 CPU s)."""
    if stats is None or not stats.has_min_max:
        return True
    k = bisect.bisect_left(wanted, stats.min)
    return k < len(wanted) and wanted[k] <= stats.max
