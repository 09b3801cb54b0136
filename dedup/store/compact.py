"""Compaction and format upgrade: both rewrite table files and commit once, through the writer's methods (`drop`,
`adopt`, `stage`, `set_checksum`). Query results do not change."""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup.params import FORMAT_VERSION
from dedup.store.files import NewFile, delete_file, write_table
from dedup.store.manifest import DamagedError, Manifest
from dedup.store.schema import (
    COMPACT_ORDER,
    SCHEMAS,
    TABLES,
    WHOLE_DOCUMENTS,
    parquet_options,
    row_group_size,
)
from dedup.store.remote import ObjectStore
from dedup.store.writer import Writer, open_writer
from dedup.windows import periods

COMPACT_MEMORY = "1GB"  # DuckDB's memory limit while compacting (it spills the rest of a sort under COMPACT_TMP)
COMPACT_MAX_ROWS = 8_000_000             # rows per file written by `compact`


@dataclass
class CompactResult:
    files_before: int
    files_after: int
    tables: list[str]           # tables that were rewritten
    generation: int
    seconds: float

    def to_json(self) -> dict:
        return {"files_before": self.files_before, "files_after": self.files_after, "tables": self.tables,
                "generation": self.generation, "seconds": round(self.seconds, 3)}


def compact(root: str | os.PathLike, max_rows_per_file: int = COMPACT_MAX_ROWS) -> CompactResult:
    """Merge each table's files into few files sorted by `COMPACT_ORDER`, in one atomic commit.

    Takes the writer lock (raises `IndexLocked` if held), leaves every query result unchanged, and puts the old
    files on the garbage list (deleted by a later writer after the grace period, so open readers keep working).
    `_compact_groups` says which files are merged. DuckDB sorts out of core (spilling under `tables/_compact_tmp`),
    so memory does not grow with the index."""
    started = time.time()
    with open_writer(root, create=False) as w:
        m = w.manifest
        before = sum(len(f) for f in m.tables.values())
        tmp = w.spill_dir
        # DuckDB's own limit is 80 % of the machine's memory, which it filled before spilling: compacting a 1.2M
        # index peaked at 11.7 GB
        con = w.connect({"temp_directory": str(tmp), "memory_limit": COMPACT_MEMORY, "preserve_insertion_order": True})
        con.execute("SET enable_progress_bar = false")  # on stdout, into `--json`
        done: list[str] = []
        try:
            for name in TABLES:
                groups = [g for files in _by_period(m, name) for g in _compact_groups(w, name, files,
                                                                                       max_rows_per_file)]
                for group in groups:
                    w.drop(name, group)
                    whole = name == "buckets" and all(w.whole(f) or _empty(w.path(f)) for f in group)
                    spans = [w.span(f) for f in group]
                    w.adopt(name, _write_sorted(con, w.root, name, [w.path(f) for f in group],
                                                m.generation + 1, max_rows_per_file, whole),
                            None if None in spans else (min(s[0] for s in spans), max(s[1] for s in spans)))
                if groups:
                    done.append(name)
            if done:
                w.commit(batch=False)
        finally:
            con.close()
            shutil.rmtree(tmp, ignore_errors=True)
        after = sum(len(f) for f in w.manifest.tables.values())
        return CompactResult(before, after, done, w.manifest.generation, time.time() - started)


def upgrade(root: str | os.PathLike) -> int:
    """Convert an index of format version 1 to the current version in one commit, under the writer lock; returns
    the version it had. Version 2 keeps the high 32 bits of each 64-bit bucket key (the same order, so files stay
    sorted), delta-encoded. Signatures and pairs stay as they are: the `jaccard_est` of pairs linked before the
    upgrade came from the full signatures. Files without a checksum (written before checksums) are read whole
    and get one."""
    with open_writer(root, create=False, upgrading=True) as w:
        old = w.manifest.version
        unsummed = [f for files in w.manifest.tables.values() for f in files if f not in w.manifest.checksums]
        if old == FORMAT_VERSION and not unsummed:
            return old
        for rel in unsummed:
            _read_whole(w, rel)
            w.set_checksum(rel)
        for rel in w.manifest.tables["buckets"] if old != FORMAT_VERSION else []:
            path = w.path(rel)
            t = pq.read_table(path)
            t = t.set_column(1, "bucket", pc.shift_right(t["bucket"], pa.scalar(32, pa.uint64())).cast(pa.uint32()))
            w.drop("buckets", [rel])
            w.stage("buckets", t, whole=w.whole(rel))
        w.commit(batch=False)
        return old


def _by_period(m: Manifest, name: str) -> list[list[str]]:
    """The files of a table that compaction may merge together: with a time window, the bucket files of each
    period apart (the time layout stays, see dedup.windows), else all of them."""
    if name != "buckets" or not m.params.window_days:
        return [m.tables[name]]
    groups: dict[int | None, list[str]] = {}
    for f in m.tables[name]:
        span = m.ranges.get(f)
        groups.setdefault(None if span is None else int(periods(np.array(span[:1]), m.params.period_days)[0]),
                          []).append(f)
    return list(groups.values())


def _read_whole(w: Writer, rel: str) -> None:
    """Read every row group of a file (raises `DamagedError` if it cannot be): before its checksum is trusted."""
    try:
        f = pq.ParquetFile(w.path(rel))
        for g in range(f.num_row_groups):
            f.read_row_group(g)
    except (OSError, pa.ArrowException) as e:
        raise DamagedError(w.root, [f"{rel}: unreadable ({e})"]) from None


def _empty(path: str) -> bool:
    """A file without rows (names no document, so it is whole in any sense)."""
    return pq.ParquetFile(path).metadata.num_rows == 0


def _compact_groups(w: Writer, name: str, files: list[str], max_rows: int) -> list[list[str]]:
    """The files of a table that compaction merges, in groups that each become their own sorted files. A table is
    one group if it has more files than `ceil(rows / max_rows)`. Bucket files are packed in order into groups of at
    most `max_rows` rows (only groups of two or more are rewritten): each group becomes one file, and a group of
    files that each hold all bucket rows of their documents (ingest's) makes such a file too. Sorting all bucket
    rows together instead spread every document over every file: a nightly link then counted all its
    single-band collisions together and looked up every id of the index in each file (4.5 s -> 154 s at 1.2M)."""
    rows = [pq.ParquetFile(w.path(f)).metadata.num_rows for f in files]
    if name != "buckets":
        return [list(files)] if len(files) > max(1, math.ceil(sum(rows) / max_rows)) else []
    groups: list[list[str]] = [[]]
    size = 0
    for f, n in zip(files, rows):
        if groups[-1] and size + n > max_rows:
            groups.append([])
            size = 0
        groups[-1].append(f)
        size += n
    return [g for g in groups if len(g) > 1]


def _write_sorted(con: duckdb.DuckDBPyConnection, root: Path | ObjectStore, name: str, files: list[str],
                  generation: int, max_rows: int, whole: bool = False) -> list[str]:
    """Stream `files` sorted by `COMPACT_ORDER[name]` into new files of at most `max_rows` rows each (`whole`:
    bucket files marked as holding all rows of their documents, see WHOLE_DOCUMENTS)."""
    schema, rg = SCHEMAS[name], row_group_size(name)
    if whole:
        schema = schema.with_metadata({WHOLE_DOCUMENTS: b"1"})
    order = ", ".join(f'"{c}" NULLS FIRST' for c in COMPACT_ORDER[name])
    cols = ", ".join(f'"{c}"' for c in schema.names)
    reader = con.sql(f"SELECT {cols} FROM read_parquet($f, union_by_name = true) ORDER BY {order}", params={"f": files}) \
        .to_arrow_reader(rg)
    out: list[str] = []
    writer: pq.ParquetWriter | None = None
    sink: NewFile | None = None
    in_file = 0
    buf: list[pa.RecordBatch] = []
    buffered = 0

    def flush() -> None:
        nonlocal writer, sink, in_file, buf, buffered
        if not buffered:
            return
        tbl = pa.Table.from_batches(buf).cast(schema)
        buf, buffered = [], 0
        while tbl.num_rows:
            if writer is None:
                sink = NewFile.open(root, name, generation)
                out.append(sink.rel)
                writer = pq.ParquetWriter(sink.target, schema, **parquet_options(name))
                in_file = 0
            take = min(tbl.num_rows, max_rows - in_file)
            writer.write_table(tbl.slice(0, take), row_group_size=rg)
            tbl, in_file = tbl.slice(take), in_file + take
            if in_file >= max_rows:
                close()

    def close() -> None:
        nonlocal writer
        if writer is not None:
            writer.close()
            sink.close()  # type: ignore[union-attr]
            writer = None

    try:
        for b in reader:
            buf.append(b)
            buffered += b.num_rows
            if buffered >= rg:
                flush()
        flush()
        close()
    except BaseException:
        if writer is not None:
            writer.close()
            sink.close()  # type: ignore[union-attr]
        for rel in out:  # not staged yet: remove them here
            delete_file(root, rel)
        raise
    if not out:  # an empty table keeps one (empty) file
        out.append(write_table(root, name, schema.empty_table(), generation))
    return out
