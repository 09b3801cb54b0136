"""Stage 5: the index on disk.

    DIR/manifest.json         format version, parameters, the exact Parquet files of every table and their
                              checksums (size, xxh3, rows: `dedup.integrity`)
    DIR/views.sql             `duckdb -init DIR/views.sql`: every table as a view (rewritten at each commit)
    DIR/tables/<table>/*.parquet
    DIR/lock                  held (flock) by the one writer; names the holder

A commit writes new Parquet files first (each fsynced, under `DIR/staging/<table>/`), moves them into
`DIR/tables/<table>/` and then atomically replaces `manifest.json` (write to a temporary file, fsync, rename, fsync
the directory). Readers of the manifest only ever read files it lists, so they see the last committed state and
never a half-written batch. Files no longer listed go to the manifest's `garbage` list and are moved out of the
table folders into `DIR/superseded/tables/<table>/` right after the commit, and deleted by a later writer after a
grace period (`GRACE_SECONDS`): a table folder holds the current files only, for tools that read it whole
(pyarrow, pandas, DuckDB globs, Spark), while a reader that opened the previous manifest finds its files under
`superseded/` (`Snapshot.path`). Files that no manifest lists (left by a killed writer) are removed when the next
writer opens the index; a first ingest killed before its first commit leaves only such files, and the next run
starts the index afresh.

The lock is an flock(2) on `DIR/lock`: the kernel releases it when the holder dies, so a lock left by a killed
process never blocks the next writer (its holder line is kept as `Writer.stale_holder`). Readers never take it.

`compact` rewrites each table into few sorted files in one commit; query results do not change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import socket
import sys
import time
import uuid
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup.errors import IndexLocked, IndexNotFound, IndexProblem
from dedup.integrity import damage, file_checksum
from dedup.params import FORMAT_NAME, FORMAT_VERSION, Params, ParamsError

MANIFEST = "manifest.json"
STAGING = "staging"        # files written for the next commit, moved into tables/ by it
SUPERSEDED = "superseded"  # files a commit stopped using, kept for readers of older manifests until collected
GRACE_SECONDS = 300.0  # default; DEDUP_GRACE_SECONDS in a writer's environment sets another (see `grace_seconds`)
COMPACT_TMP = "tables/_compact_tmp"      # DuckDB spill directory of writers, removed with the leftovers
COMPACT_MEMORY = "1GB"  # DuckDB's memory limit while compacting (it spills the rest of a sort under COMPACT_TMP)
COMPACT_MAX_ROWS = 8_000_000             # rows per file written by `compact`

# Sort order of each table's files after `compact` (buckets: lookups by (band, bucket) read few row groups).
COMPACT_ORDER: dict[str, list[str]] = {
    "documents": ["doc_id"], "signatures": ["doc_id"], "buckets": ["band", "bucket", "doc_id"],
    "pairs": ["doc_a", "doc_b"], "clusters": ["cluster_id", "doc_id"],
    "cluster_events": ["batch", "kind", "cluster_id"], "rejected": ["batch", "file", "line", "doc_id"],
    "batches": ["batch"],
}

SCHEMAS: dict[str, pa.Schema] = {
    "documents": pa.schema([
        ("doc_id", pa.string()), ("title", pa.string()), ("source", pa.string()), ("url", pa.string()),
        ("published_at", pa.timestamp("us")), ("lang", pa.string()), ("words", pa.int32()),
        ("shingles", pa.int32()), ("text_hash", pa.uint64()), ("text", pa.string()),
        ("flags", pa.list_(pa.string())), ("batch", pa.int32()), ("file", pa.string()), ("line", pa.int64()),
    ]),
    "signatures": pa.schema([("doc_id", pa.string()), ("minhash", pa.list_(pa.uint32()))]),
    "buckets": pa.schema([("band", pa.int16()), ("bucket", pa.uint32()), ("doc_id", pa.string())]),
    "pairs": pa.schema([
        ("doc_a", pa.string()), ("doc_b", pa.string()), ("jaccard_est", pa.float32()),
        ("jaccard", pa.float32()), ("containment", pa.float32()), ("aligned", pa.float32()),
        ("score", pa.float32()), ("linked", pa.bool_()), ("batch", pa.int32()),
        # verifier v3 (null in pairs verified before): the signals of the rewrite model and the rule that decided
        ("ordered", pa.float32()), ("anchors", pa.float32()), ("figures", pa.float32()), ("loose", pa.float32()),
        ("rewrite", pa.float32()), ("rule", pa.string()),
    ]),
    "clusters": pa.schema([
        ("doc_id", pa.string()), ("cluster_id", pa.int64()), ("size", pa.int32()),
        ("representative", pa.string()),
    ]),
    "cluster_events": pa.schema([
        ("batch", pa.int32()), ("at", pa.timestamp("us")), ("kind", pa.string()), ("cluster_id", pa.int64()),
        ("other_ids", pa.list_(pa.int64())), ("size", pa.int32()),
    ]),
    "rejected": pa.schema([
        ("batch", pa.int32()), ("file", pa.string()), ("line", pa.int64()), ("doc_id", pa.string()),
        ("field", pa.string()), ("reason", pa.string()), ("detail", pa.string()),
    ]),
    "batches": pa.schema([
        ("batch", pa.int32()), ("started_at", pa.timestamp("us")), ("finished_at", pa.timestamp("us")),
        ("inputs", pa.list_(pa.string())), ("read", pa.int64()), ("new", pa.int64()), ("replaced", pa.int64()),
        ("unchanged", pa.int64()), ("rejected", pa.int64()), ("pairs", pa.int64()), ("clusters", pa.int64()),
        ("seconds", pa.float64()),
    ]),
}
TABLES = tuple(SCHEMAS)


class LockLostError(IndexLocked):
    """DIR/lock was removed or replaced while a writer held it: another writer may have come in."""


class DamagedError(IndexProblem):
    """Files the manifest lists are missing or differ from their checksums."""

    def __init__(self, root: Path, problems: list) -> None:
        shown = "; ".join(str(p) for p in problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5
                                                          else "")
        super().__init__(f"{root}: damaged index: {shown}; run `dedup check --index {root}` for the full list")
        self.problems = problems


def check_files(root: Path, m: Manifest, hashes: bool) -> None:
    """Raise `DamagedError` if a file `m` lists is missing or differs from its checksum (sizes only unless
    `hashes`)."""
    problems = damage(root, [f for t in TABLES for f in m.tables[t]], m.checksums, hashes)
    if problems:
        raise DamagedError(root, problems)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Manifest:
    params: Params
    generation: int
    tables: dict[str, list[str]]
    next_cluster_id: int
    next_batch: int
    garbage: list[dict]
    created_at: float
    updated_at: float
    version: int = FORMAT_VERSION  # of the manifest read; every commit writes FORMAT_VERSION
    # file -> {"bytes", "xxh3", "rows"} (dedup.integrity); files of indexes written before checksums have none
    checksums: dict[str, dict] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "generation": self.generation,
            "params": self.params.to_dict(), "tables": self.tables, "next_cluster_id": self.next_cluster_id,
            "next_batch": self.next_batch, "garbage": self.garbage, "created_at": self.created_at,
            "updated_at": self.updated_at, "checksums": self.checksums,
        }


def read_manifest(root: Path, upgrading: bool = False) -> Manifest:
    """The committed manifest. An index of an older format version is refused (`upgrading` accepts those that
    `upgrade` can convert)."""
    path = root / MANIFEST
    if not root.is_dir():
        raise IndexNotFound(f"{root}: no such index directory")
    if not path.is_file():
        raise IndexNotFound(f"{root}: not a dedup index (no {MANIFEST})")
    try:
        d = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise IndexProblem(f"{path}: unreadable manifest: {e}") from e
    if d.get("format") != FORMAT_NAME:
        raise IndexProblem(f"{path}: not a dedup index manifest")
    if d.get("version") not in ((1, FORMAT_VERSION) if upgrading else (FORMAT_VERSION,)):
        hint = f"; convert it with `dedup upgrade --index {root}`" if d.get("version") == 1 else ""
        raise IndexProblem(f"{path}: index format version {d.get('version')} is not supported "
                          f"(this dedup reads version {FORMAT_VERSION}){hint}")
    return Manifest(Params.from_dict(d["params"]), d["generation"], d["tables"], d["next_cluster_id"],
                    d["next_batch"], d["garbage"], d["created_at"], d["updated_at"], d["version"], d.get("checksums", {}))


class Snapshot:
    """A read-only view of one committed generation: DuckDB views over exactly its files."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.manifest = read_manifest(self.root)
        self.params = self.manifest.params
        check_files(self.root, self.manifest, hashes=False)  # a stat per file: names a missing or truncated one

    def files(self, table: str) -> list[str]:
        return [self.path(f) for f in self.manifest.tables[table]]

    def path(self, rel: str) -> str:
        """Where a file of this snapshot is now: in its table folder, or moved to `superseded/` by a later commit."""
        current = self.root / rel
        return str(current if current.exists() else self.root / SUPERSEDED / rel)

    def connect(self, confined: bool = True) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with every table as a view over this snapshot's files where they are now (see
        `path`). `confined`: it reads these files and nothing else, and
        its configuration is locked (see `confine`)."""
        con = duckdb.connect(config={"autoload_known_extensions": False, "autoinstall_known_extensions": False}
                             if confined else {})
        con.execute("SET enable_progress_bar = false")  # DuckDB draws it on stdout, among the results
        if confined:
            confine(con, [f for t in TABLES for f in self.files(t)])
        for stmt in view_statements({t: self.files(t) for t in TABLES}):
            con.execute(stmt)
        return con

    def table(self, name: str) -> pa.Table:
        if name not in SCHEMAS:
            raise KeyError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
        return pq.ParquetDataset(self.files(name), schema=SCHEMAS[name]).read()


def confine(con: duckdb.DuckDBPyConnection, paths: list[str]) -> None:
    """Let `con` read `paths` and no other file, load no extension and change no setting, for good: an analyst's
    query (a typo, a pasted snippet) must not read other files, attach databases or change the session. DuckDB's
    `allowed_paths` also allows *writing* those files, so callers refuse every statement but SELECT as well
    (`dedup.query.check_read_only`)."""
    con.execute(f"SET allowed_paths = [{', '.join(_sql_str(p) for p in paths)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


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

    tasks = []  # (bytes, path, row group)
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        tasks += [(meta.row_group(g).total_byte_size, path, g) for g in range(meta.num_row_groups)]
    tasks.sort(key=lambda t: -t[0])
    with ThreadPoolExecutor(max_workers=threads) as ex:
        found = [t for t in ex.map(one, [(path, g) for _, path, g in tasks]) if t is not None]
    return pa.concat_tables(found) if found else pq.read_schema(paths[0]).empty_table().select(["doc_id", *columns])


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def view_statements(tables: dict[str, list[str]]) -> list[str]:
    """CREATE VIEW statements over the given files of each table (absolute, or relative to the index directory as
    in `views.sql`)."""
    out = []
    for name in TABLES:
        files = ", ".join(_sql_str(f) for f in tables[name])
        out.append(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{files}]);")
    out.extend(DERIVED_VIEWS)
    return out


DERIVED_VIEWS = [
    # One row per cluster with two or more documents: its size, representative and time span.
    """CREATE OR REPLACE VIEW cluster_summary AS
SELECT c.cluster_id, any_value(c.size) AS size, any_value(c.representative) AS representative,
       min(d.published_at) AS first_published, max(d.published_at) AS last_published,
       count(DISTINCT d.source) AS sources, arg_min(d.title, d.doc_id) AS title
FROM clusters c JOIN documents d USING (doc_id)
WHERE c.size >= 2 GROUP BY c.cluster_id;""",
    # Documents with their cluster and the representative's title: "all copies of a story".
    """CREATE OR REPLACE VIEW copies AS
SELECT c.cluster_id, c.size, d.doc_id, d.title, d.source, d.url, d.published_at,
       d.doc_id = c.representative AS is_representative
FROM clusters c JOIN documents d USING (doc_id);""",
]


# The columns worth a Parquet dictionary where not all are: random bucket keys and MinHash values only pay for
# trying one (a bucket file of 20k documents: 0.60 s and 47 MB with, 0.24 s and 40 MB without).
_DICTIONARY_COLUMNS = {"buckets": ["band", "doc_id"], "signatures": ["doc_id"],
                       # not ids, urls and texts: unique, they only cost a dictionary attempt
                       "documents": [c for c in SCHEMAS["documents"].names if c not in ("doc_id", "url", "text")]}


def _options(name: str) -> dict:
    """Parquet writer options of a table: dictionaries only where they pay off, and the texts compressed fast
    (see below: ingest compresses every text once, verification decompresses many). A bucket file is one row group
    (a compacted one, two): bucket rows are sorted by key, so every row group names nearly every document of the
    file, and reading 59 row groups' dictionaries of ids took 2/3 of the time to read a file's bucket keys. Its
    keys, sorted within each band, are delta-encoded and left uncompressed: 2.5 bytes a row in a file of 20k
    documents (4 plain, 3.2 with zstd), read 4× faster than zstd's plain 64-bit keys of format 1."""
    options = {"use_dictionary": _DICTIONARY_COLUMNS.get(name, True), "compression": "zstd", "write_statistics": True}
    if name == "buckets":
        options.update(dictionary_pagesize_limit=64 << 20, column_encoding={"bucket": "DELTA_BINARY_PACKED"},
                       compression={"band": "zstd", "bucket": "none", "doc_id": "zstd"})
    elif name == "documents":
        # zstd level 1: a 100k batch's texts compress in 1.1 s of CPU (2.3 s at level 3: ingest 12.0 -> 10.7 s in six
        # interleaved runs) and decompress faster (0.27 s against 0.36), for 19 % more bytes; no min/max of texts
        options.update(compression_level=1, write_statistics=[c for c in SCHEMAS[name].names if c != "text"])
    return options


def _row_group_size(name: str) -> int:
    """Rows a row group: a bucket file is one (see `_options`); documents hold ~3 KB of text a row, and a row group
    is what compaction buffers and what verification decompresses to read one text of it."""
    return {"buckets": 4 << 20, "documents": 32 * 1024}.get(name, 128 * 1024)


def _new_file(root: Path, name: str, generation: int) -> tuple[str, Path]:
    """A new file's path under `staging/` (relative and absolute): `_publish` moves it into its table folder."""
    rel = f"{STAGING}/{name}/{generation:08d}-{uuid.uuid4().hex[:12]}.parquet"
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    return rel, path


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


# Key-value metadata of a bucket file that holds every bucket row of each document it names (files written by
# ingest, and rewrites of such files): the link stage can then count a document's shared bands file by file.
WHOLE_DOCUMENTS = b"dedup.whole_documents"


def whole_documents(path: str | Path) -> bool:
    """Does this bucket file hold all bucket rows of each of its documents (see WHOLE_DOCUMENTS)?"""
    meta = pq.read_schema(path).metadata or {}
    return meta.get(WHOLE_DOCUMENTS) == b"1"


def write_table(root: Path, name: str, table: pa.Table, generation: int, sort_by: list[str] | None = None,
                whole: bool = False) -> str:
    """Write one Parquet file for `name` (cast to its schema) and return its path relative to root. `whole`:
    a bucket file holding every row of its documents (WHOLE_DOCUMENTS)."""
    table = table.select(SCHEMAS[name].names).cast(SCHEMAS[name])
    if whole:
        table = table.replace_schema_metadata({WHOLE_DOCUMENTS: b"1"})
    if sort_by and table.num_rows:
        table = table.sort_by([(c, "ascending") for c in sort_by])
    rel, path = _new_file(root, name, generation)
    try:
        pq.write_table(table, path, row_group_size=_row_group_size(name), **_options(name))
        _fsync_file(path)
    except BaseException:
        path.unlink(missing_ok=True)  # not staged yet: nobody else would remove it before the next writer
        raise
    return rel


def _owned_only(root: Path) -> bool:
    """True if `root` holds nothing but what a writer killed before the first commit can leave behind."""
    for p in root.iterdir():
        n = p.name
        if n in ("lock", "views.sql") or n.startswith(MANIFEST + ".tmp") or n.startswith("views.sql.tmp"):
            continue
        if n in (STAGING, SUPERSEDED) and p.is_dir():
            continue
        if n == "tables" and p.is_dir():
            for q in p.rglob("*"):
                rel = q.relative_to(p).parts
                if q.is_dir():
                    if rel[0] not in TABLES and rel[0] != Path(COMPACT_TMP).name:
                        return False
                elif not (rel[0] == Path(COMPACT_TMP).name or (rel[0] in TABLES and len(rel) == 2
                                                                   and q.suffix == ".parquet")):
                    return False
            continue
        return False
    return True


def _publish(root: Path, rel: str) -> str:
    """Move a staged file into its table folder (the commit lists it there); returns its new relative path."""
    if not rel.startswith(STAGING + "/"):
        return rel
    table_rel = "tables/" + rel[len(STAGING) + 1:]
    (root / table_rel).parent.mkdir(parents=True, exist_ok=True)
    os.replace(root / rel, root / table_rel)
    return table_rel


def grace_seconds() -> float:
    """How long a file a commit stopped using stays on disk for readers that opened an earlier manifest: the
    environment's DEDUP_GRACE_SECONDS (set it in the writers' environment, e.g. the nightly job's, for analyst
    sessions longer than the default 5 minutes), else GRACE_SECONDS."""
    value = os.environ.get("DEDUP_GRACE_SECONDS")
    if value is None:
        return GRACE_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise IndexProblem(f"DEDUP_GRACE_SECONDS={value!r}: not a number of seconds")
    return seconds


def _holder_line(fd: int) -> str | None:
    return os.pread(fd, 4096, 0).decode("utf-8", "replace").split("\n", 1)[0].strip() or None


class Writer:
    """The single writer of an index: holds the lock, stages files, commits atomically."""

    def __init__(self, root: str | os.PathLike, params: Params | None = None, requested: dict | None = None,
                 create: bool = True, upgrading: bool = False):
        self.root = Path(root).resolve()
        self._lock_fd: int | None = None
        self._tables_fd: int | None = None
        self.stale_holder: str | None = None
        self.grace = grace_seconds()
        self._check_creatable(create)
        self.created = False  # this writer made the index (its first batch is not committed yet)
        self._moved: list[str] = []  # files moved from staging/ into their table folders for the next commit
        made_dir = not self.root.exists()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise IndexProblem(f"{self.root}: cannot create index directory: {e.strerror}") from e
        self._acquire_lock()
        try:
            if (self.root / MANIFEST).is_file():
                self.manifest = read_manifest(self.root, upgrading)
                # before anything is read: a damaged file's rows would be carried into the files written now
                check_files(self.root, self.manifest, hashes=True)
                if params is not None:
                    self.manifest.params.check_requested(params.to_dict())
                if requested:
                    self.manifest.params.check_requested(requested)
                self._remove_leftovers()
                self._write_views(self.manifest)
            else:
                self._check_creatable(create)  # again, under the lock: another writer may have been creating it
                if params is None:
                    params = Params(**(requested or {}))
                self.created, self._made_dir = True, made_dir
                self._remove_leftovers(everything=True)  # a first ingest killed before its first commit
                self.manifest = self._initial(params)
        except BaseException:
            if self.created:
                self.remove_index()
            self.close()
            raise
        self.params = self.manifest.params
        self.staged: dict[str, list[str]] = {t: [] for t in TABLES}
        self.dropped: dict[str, list[str]] = {t: [] for t in TABLES}

    def _check_creatable(self, create: bool) -> None:
        if (self.root / MANIFEST).is_file():
            return
        if not create:
            raise IndexNotFound(f"{self.root}: not a dedup index (no {MANIFEST})")
        if self.root.exists() and not self.root.is_dir():
            raise IndexProblem(f"{self.root}: exists and is not a directory")
        if self.root.is_dir() and not _owned_only(self.root):
            raise IndexProblem(f"{self.root}: directory is not empty and is not a dedup index")

    # -- locking -------------------------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        path = self.root / "lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise IndexProblem(f"{self.root}: cannot open lock file: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_line(fd) or "unknown process"
            os.close(fd)
            raise IndexLocked(f"{self.root}: index is locked by another writer ({holder})") from None
        except OSError as e:
            os.close(fd)
            raise IndexProblem(f"{self.root}: cannot lock the index: {e.strerror}") from e
        # A holder line left in the file means its writer died without closing: flock was released by the kernel.
        self.stale_holder = _holder_line(fd)
        info = (f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                f"{' '.join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:3]))}\n"
                ).encode("utf-8", "backslashreplace")
        os.pwrite(fd, info, 0)  # one write, then cut the tail: a failing writer reads a whole first line
        os.ftruncate(fd, len(info))
        self._lock_fd = fd
        # A second flock, on the tables directory, which no one removes by mistake as they may `rm DIR/lock`: with
        # the lock file gone a second writer got in and its cleanup deleted the first one's staged files. Here it is
        # refused before it deletes anything, and the first writer aborts at commit (`_check_lock`).
        tables = self.root / "tables"
        try:
            tables.mkdir(exist_ok=True)
            tfd = os.open(tables, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            self.close()
            raise IndexProblem(f"{self.root}: cannot open {tables}: {e.strerror}") from e
        try:
            fcntl.flock(tfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(tfd)
            self.close()
            raise IndexLocked(f"{self.root}: another writer is running although {path} was free (was the lock "
                              "file removed?); nothing was done") from None
        self._tables_fd = tfd

    def _check_lock(self) -> None:
        """Raise `LockLostError` unless DIR/lock is still the file this writer locked (same device and inode)."""
        held = os.fstat(self._lock_fd) if self._lock_fd is not None else None
        try:
            now = os.stat(self.root / "lock")
        except FileNotFoundError:
            now = None
        if held is None or now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            raise LockLostError(f"{self.root}: {self.root / 'lock'} was removed or replaced while this writer ran; "
                                "another writer may have started, so nothing was committed; run the command again")

    def close(self) -> None:
        if self._tables_fd is not None:
            os.close(self._tables_fd)  # releases its flock
            self._tables_fd = None
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is not None and self.created and self.manifest.generation == 0:
            # a first batch that failed (Ctrl-C, a missing column...) leaves no empty index holding its parameters
            self.abort()
            self.remove_index()
        self.close()

    # -- files ---------------------------------------------------------------------------------------------
    def _initial(self, params: Params) -> Manifest:
        """A new index's generation 0: empty tables, not committed. The first commit writes the first manifest, so a
        first run that fails leaves no index, only files the next writer removes (an empty committed index looked
        like a successful run to whoever came next)."""
        now = time.time()
        tables = {name: [self._moved_in(write_table(self.root, name, SCHEMAS[name].empty_table(), 0))]
                  for name in TABLES}
        return Manifest(params, 0, tables, 1, 1, [], now, now,
                        checksums={f: file_checksum(self.root / f) for files in tables.values() for f in files})

    def _remove_leftovers(self, everything: bool = False) -> None:
        """Delete files the manifest does not list (a killed writer's: staged Parquet files, temporary manifest
        and views files, compaction spill files); with `everything`, all table files (no manifest yet)."""
        listed: set[str] = set()
        garbage: set[str] = set()
        if not everything:
            listed = {f for files in self.manifest.tables.values() for f in files}
            garbage = {g["file"] for g in self.manifest.garbage}
            for rel in garbage:  # a commit that stopped before moving what it dropped (or an older dedup's)
                self._supersede(rel)
        shutil.rmtree(self.root / STAGING, ignore_errors=True)
        superseded = self.root / SUPERSEDED
        if superseded.is_dir():
            for p in sorted(superseded.rglob("*"), reverse=True):
                if p.is_file() and p.relative_to(superseded).as_posix() not in garbage:
                    p.unlink(missing_ok=True)
        tables = self.root / "tables"
        if tables.is_dir():
            for p in sorted(tables.rglob("*"), reverse=True):  # files before their directories
                rel = p.relative_to(self.root).as_posix()
                if p.is_dir():
                    if p.parent == tables and p.name not in TABLES:
                        shutil.rmtree(p, ignore_errors=True)
                elif rel not in listed:
                    p.unlink(missing_ok=True)
        for pattern in (MANIFEST + ".tmp*", "views.sql.tmp*"):
            for p in self.root.glob(pattern):
                p.unlink(missing_ok=True)

    def stage(self, name: str, table: pa.Table, sort_by: list[str] | None = None, whole: bool = False) -> str:
        """Write a new file for `name`, to be listed at the next commit; returns its path relative to the root."""
        rel = write_table(self.root, name, table, self.manifest.generation + 1, sort_by, whole)
        self.staged[name].append(rel)
        return rel

    def replace_all(self, name: str, table: pa.Table, sort_by: list[str] | None = None) -> None:
        """At the next commit, `table` becomes the whole content of `name`."""
        self.dropped[name] = list(self.manifest.tables[name])
        self.staged[name] = []
        self.stage(name, table, sort_by)

    def rewrite_without(self, name: str, column: str | tuple[str, ...], ids: Iterable[str],
                        committed_only: bool = False) -> int:
        """Drop the rows whose `column` value (any of several columns) is in `ids`: rewrite only the files
        that hold such rows (only committed files if `committed_only`). Returns the number of rows dropped."""
        ids_tbl = pa.table({"id": pa.array(sorted(set(ids)), pa.string())})
        if not ids_tbl.num_rows:
            return 0
        cols = (column,) if isinstance(column, str) else column
        cond = " OR ".join(f"t.{c} IN (SELECT id FROM ids_tbl)" for c in cols)
        con = duckdb.connect()
        con.register("ids_tbl", ids_tbl)
        dropped = 0
        candidates = [f for f in self.manifest.tables[name] if f not in self.dropped[name]]
        for rel in candidates + ([] if committed_only else list(self.staged[name])):
            path = _sql_str(str(self.root / rel))
            hit = con.execute(f"SELECT count(*) FROM read_parquet({path}) t WHERE {cond}").fetchall()[0][0]
            if not hit:
                continue
            kept = fetch(con, f"SELECT * FROM read_parquet({path}) t WHERE NOT ({cond})")
            whole = name == "buckets" and whole_documents(self.root / rel)  # dropping whole documents keeps it so
            dropped += hit
            if rel in self.staged[name]:
                self.staged[name].remove(rel)
                (self.root / rel).unlink(missing_ok=True)
            else:
                self.dropped[name].append(rel)
            if kept.num_rows:
                self.stage(name, kept, whole=whole)
        return dropped

    def abort(self) -> None:
        """Forget and delete everything staged; the index stays at its last commit."""
        for files in self.staged.values():
            for rel in files:
                (self.root / rel).unlink(missing_ok=True)
        self.staged = {t: [] for t in TABLES}
        self.dropped = {t: [] for t in TABLES}

    def remove_index(self) -> None:
        """Undo the creation of an index whose first batch failed: its files, and its directory if this writer
        made it."""
        for name in (MANIFEST, "views.sql"):
            (self.root / name).unlink(missing_ok=True)
        for folder in ("tables", STAGING):
            shutil.rmtree(self.root / folder, ignore_errors=True)
        if self._made_dir:
            (self.root / "lock").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.root.rmdir()

    def current_files(self, name: str) -> list[str]:
        """Absolute paths of the files `name` will have after commit (listed minus dropped plus staged)."""
        rels = [f for f in self.manifest.tables[name] if f not in self.dropped[name]] + self.staged[name]
        return [str(self.root / f) for f in rels]

    def commit(self, next_cluster_id: int | None = None, batch: bool = True) -> None:
        """Atomically publish staged files (and forget dropped ones). `batch=False` (compaction) does not use up
        a batch number."""
        m = self.manifest
        now = time.time()
        tables = {}
        try:
            for name in TABLES:
                files = [f for f in m.tables[name] if f not in self.dropped[name]] + self.staged[name]
                if not files:
                    files = [write_table(self.root, name, SCHEMAS[name].empty_table(), m.generation + 1)]
                tables[name] = [self._moved_in(f) for f in files]
            garbage = [g for g in m.garbage if not self._collect(g, now)]
            garbage += [{"file": f, "since": now} for name in TABLES for f in self.dropped[name]]
            listed = [f for files in tables.values() for f in files]
            old = {f for files in m.tables.values() for f in files}
            # files written by this writer get their checksum now (still in the page cache); files of an index
            # written before checksums keep none until `upgrade`
            sums = {f: m.checksums[f] for f in listed if f in m.checksums}
            sums |= {f: file_checksum(self.root / f) for f in listed if f not in old}
            new = Manifest(m.params, m.generation + 1, tables,
                           next_cluster_id if next_cluster_id is not None else m.next_cluster_id,
                           m.next_batch + 1 if batch else m.next_batch, garbage, m.created_at, now, checksums=sums)
            self._write_manifest(new)
        except BaseException:
            for rel in self._moved:  # not committed: out of the table folders again
                (self.root / rel).unlink(missing_ok=True)
            raise
        finally:
            self._moved = []
        self.manifest = new
        for name in TABLES:
            for rel in self.dropped[name]:
                self._supersede(rel)
        self.staged = {t: [] for t in TABLES}
        self.dropped = {t: [] for t in TABLES}

    def _moved_in(self, rel: str) -> str:
        """`_publish`, remembered: the commit syncs the folder (its manifest must not outlive the move) or, if it
        fails, deletes the file again (the table folders keep the committed files only)."""
        table_rel = _publish(self.root, rel)
        if table_rel != rel:
            self._moved.append(table_rel)
        return table_rel

    def _supersede(self, rel: str) -> None:
        """Move a file the manifest no longer lists out of its table folder (best effort: readers of the manifest
        never look there, and the next writer moves what is left)."""
        src = self.root / rel
        if not src.exists():
            return
        dst = self.root / SUPERSEDED / rel
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        except OSError as e:
            warnings.warn(f"{self.root}: committed, but {rel} could not be moved to {SUPERSEDED}/: {e}", stacklevel=3)

    def _collect(self, g: dict, now: float) -> bool:
        if now - g["since"] < self.grace:
            return False
        (self.root / SUPERSEDED / g["file"]).unlink(missing_ok=True)
        (self.root / g["file"]).unlink(missing_ok=True)
        return True

    def _write_manifest(self, m: Manifest) -> None:
        """The commit point. Raises only if `m` was not committed (the index is then unchanged); once the rename
        has happened nothing raises, so no caller reports a failure or aborts (deleting files `m` lists)."""
        tmp = self.root / f"{MANIFEST}.tmp{os.getpid()}"
        data = json.dumps(m.to_json(), indent=1).encode()
        self._check_lock()
        try:
            for folder in {(self.root / rel).parent for rel in self._moved}:  # the files it lists are where it says
                _fsync_dir(folder)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.root / MANIFEST)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        # committed: readers now see `m`. The rest is best effort.
        try:
            _fsync_dir(self.root)
        except OSError as e:  # the rename is visible; after a power loss the index may be at the previous commit
            warnings.warn(f"{self.root}: committed, but the directory could not be synced: {e}", stacklevel=3)
        try:
            self._write_views(m)
        except OSError as e:  # views.sql is a convenience for the DuckDB CLI; the next writer rewrites it
            warnings.warn(f"{self.root}: committed, but views.sql could not be rewritten: {e}", stacklevel=3)

    def _write_views(self, m: Manifest) -> None:
        views = ("-- dedup index views (generated at each commit; do not edit). Paths are relative to the index\n"
                 "-- directory, so a copied or moved index reads its own files: cd DIR && duckdb -init views.sql\n")
        views += "\n".join(view_statements(m.tables)) + "\n"
        vtmp = self.root / f"views.sql.tmp{os.getpid()}"
        try:
            vtmp.write_text(views, "utf-8")
            os.replace(vtmp, self.root / "views.sql")
        except BaseException:
            vtmp.unlink(missing_ok=True)
            raise


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
    with Writer(root, create=False) as w:
        m = w.manifest
        before = sum(len(f) for f in m.tables.values())
        tmp = w.root / COMPACT_TMP
        # DuckDB's own limit is 80 % of the machine's memory, which it filled before spilling: compacting a 1.2M
        # index peaked at 11.7 GB
        con = duckdb.connect(config={"temp_directory": str(tmp), "memory_limit": COMPACT_MEMORY,
                                     "preserve_insertion_order": True})
        con.execute("SET enable_progress_bar = false")  # on stdout, into `--json`
        done: list[str] = []
        try:
            for name in TABLES:
                groups = _compact_groups(w.root, name, m.tables[name], max_rows_per_file)
                for group in groups:
                    w.dropped[name].extend(group)
                    whole = name == "buckets" and all(whole_documents(w.root / f) or _empty(w.root / f)
                                                      for f in group)
                    w.staged[name].extend(_write_sorted(con, w.root, name, [str(w.root / f) for f in group],
                                                        m.generation + 1, max_rows_per_file, whole))
                if groups:
                    done.append(name)
            if done:
                w.commit(batch=False)
        except BaseException:
            w.abort()
            raise
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
    with Writer(root, create=False, upgrading=True) as w:
        old = w.manifest.version
        unsummed = [f for files in w.manifest.tables.values() for f in files if f not in w.manifest.checksums]
        if old == FORMAT_VERSION and not unsummed:
            return old
        for rel in unsummed:
            _read_whole(w.root, rel)
            w.manifest.checksums[rel] = file_checksum(w.root / rel)
        for rel in w.manifest.tables["buckets"] if old != FORMAT_VERSION else []:
            path = w.root / rel
            t = pq.read_table(path)
            t = t.set_column(1, "bucket", pc.shift_right(t["bucket"], pa.scalar(32, pa.uint64())).cast(pa.uint32()))
            w.dropped["buckets"].append(rel)
            w.stage("buckets", t, whole=whole_documents(path))
        w.commit(batch=False)
        return old


def _read_whole(root: Path, rel: str) -> None:
    """Read every row group of a file (raises `DamagedError` if it cannot be): before its checksum is trusted."""
    try:
        f = pq.ParquetFile(root / rel)
        for g in range(f.num_row_groups):
            f.read_row_group(g)
    except (OSError, pa.ArrowException) as e:
        raise DamagedError(root, [f"{rel}: unreadable ({e})"]) from None


def _empty(path: Path) -> bool:
    """A file without rows (names no document, so it is whole in any sense)."""
    return pq.ParquetFile(path).metadata.num_rows == 0


def _compact_groups(root: Path, name: str, files: list[str], max_rows: int) -> list[list[str]]:
    """The files of a table that compaction merges, in groups that each become their own sorted files. A table is
    one group if it has more files than `ceil(rows / max_rows)`. Bucket files are packed in order into groups of at
    most `max_rows` rows (only groups of two or more are rewritten): each group becomes one file, and a group of
    files that each hold all bucket rows of their documents (ingest's) makes such a file too. Sorting all bucket
    rows together instead spread every document over every file: a nightly link then counted all its
    single-band collisions together and looked up every id of the index in each file (4.5 s -> 154 s at 1.2M)."""
    rows = [pq.ParquetFile(root / f).metadata.num_rows for f in files]
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


def _write_sorted(con: duckdb.DuckDBPyConnection, root: Path, name: str, files: list[str], generation: int,
                  max_rows: int, whole: bool = False) -> list[str]:
    """Stream `files` sorted by `COMPACT_ORDER[name]` into new files of at most `max_rows` rows each (`whole`:
    bucket files marked as holding all rows of their documents, see WHOLE_DOCUMENTS)."""
    schema, rg = SCHEMAS[name], _row_group_size(name)
    if whole:
        schema = schema.with_metadata({WHOLE_DOCUMENTS: b"1"})
    order = ", ".join(f'"{c}" NULLS FIRST' for c in COMPACT_ORDER[name])
    cols = ", ".join(f'"{c}"' for c in schema.names)
    reader = con.sql(f"SELECT {cols} FROM read_parquet($f) ORDER BY {order}", params={"f": files}) \
        .to_arrow_reader(rg)
    out: list[str] = []
    writer: pq.ParquetWriter | None = None
    path: Path | None = None
    in_file = 0
    buf: list[pa.RecordBatch] = []
    buffered = 0

    def flush() -> None:
        nonlocal writer, path, in_file, buf, buffered
        if not buffered:
            return
        tbl = pa.Table.from_batches(buf).cast(schema)
        buf, buffered = [], 0
        while tbl.num_rows:
            if writer is None:
                rel, path = _new_file(root, name, generation)
                out.append(rel)
                writer = pq.ParquetWriter(path, schema, **_options(name))
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
            _fsync_file(path)  # type: ignore[arg-type]
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
        for rel in out:  # not staged yet: remove them here
            (root / rel).unlink(missing_ok=True)
        raise
    if not out:  # an empty table keeps one (empty) file
        out.append(write_table(root, name, schema.empty_table(), generation))
    return out


__all__ = ["Writer", "Snapshot", "Manifest", "read_manifest", "SCHEMAS", "TABLES", "IndexProblem", "IndexLocked",
           "ParamsError", "compact", "CompactResult", "upgrade"]
