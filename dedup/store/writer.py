"""The single writer of an index: holds the lock (`dedup.store.lock`), stages Parquet files for the next commit
(`Staging`) and commits them atomically (`Writer.commit`).

A commit writes new Parquet files first (each fsynced, under `DIR/staging/<table>/`), moves them into
`DIR/tables/<table>/` and then atomically replaces `manifest.json`. Files no longer listed go to the manifest's
`garbage` list and are moved to `DIR/superseded/` right after the commit, and deleted by a later writer after a
grace period (`grace_seconds`). Files that no manifest lists (left by a killed writer) are removed when the next
writer opens the index; a first ingest killed before its first commit leaves only such files, and the next run
starts the index afresh. An index on an object store has its own writer (`StoreWriter`, see `dedup.store.remote`);
`open_writer` picks the one an index needs.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa

from dedup.errors import IndexNotFound, IndexProblem
from dedup.integrity import damage
from dedup.params import Params
from dedup.store.arrow import fetch
from dedup.store.files import (COMPACT_TMP, MANIFEST, SUPERSEDED, check_creatable, checksum, connect, delete_file,
                               file_path, location, publish_file, remove_index, remove_leftovers, supersede,
                               write_table)
from dedup.store.lock import WriterLock
from dedup.store.manifest import (DamagedError, Manifest, check_files, read_manifest, write_manifest,
                                  write_views)
from dedup.store.remote import CommitUnknown, ObjectStore, is_remote
from dedup.store.schema import SCHEMAS, TABLES, sql_str, whole_documents

GRACE_SECONDS = 300.0  # default; DEDUP_GRACE_SECONDS in a writer's environment sets another (see `grace_seconds`)


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


class Staging:
    """What the next commit changes: the files staged for each table, and the committed files it drops. Compaction
    and upgrade change it through these methods too."""

    root: Path | ObjectStore
    manifest: Manifest
    staged: dict[str, list[str]]
    dropped: dict[str, list[str]]
    deferred: set[str]  # listed files whose hash is not checked yet (`verify`)

    def _reset(self) -> None:
        self.staged = {t: [] for t in TABLES}
        self.dropped = {t: [] for t in TABLES}
        self.spans: dict[str, tuple[int, int]] = {}  # staged bucket file -> its date range (Manifest.ranges)

    def stage(self, name: str, table: pa.Table, sort_by: list[str] | None = None, whole: bool = False,
              span: tuple[int, int] | None = None) -> str:
        """Write a new file for `name`, to be listed at the next commit; returns its path relative to the root.
        `span`: the first and last date of its documents (bucket files of an index with a window)."""
        rel = write_table(self.root, name, table, self.manifest.generation + 1, sort_by, whole)
        self.staged[name].append(rel)
        if span is not None:
            self.spans[rel] = span
        return rel

    def adopt(self, name: str, files: list[str], span: tuple[int, int] | None = None) -> None:
        """List at the next commit files written for `name` other than by `stage` (compaction's sorted streams)."""
        self.staged[name].extend(files)
        if span is not None:
            self.spans.update(dict.fromkeys(files, span))

    def span(self, rel: str) -> tuple[int, int] | None:
        """The date range of a committed or staged bucket file, if it has one."""
        got = self.spans.get(rel) or self.manifest.ranges.get(rel)
        return None if got is None else (got[0], got[1])

    def drop(self, name: str, files: list[str]) -> None:
        """At the next commit, these committed files of `name` leave it (they become garbage)."""
        self.dropped[name].extend(files)

    def replace_all(self, name: str, table: pa.Table, sort_by: list[str] | None = None) -> None:
        """At the next commit, `table` becomes the whole content of `name`."""
        self.dropped[name] = list(self.manifest.tables[name])
        self.staged[name] = []
        self.stage(name, table, sort_by)

    def path(self, rel: str) -> str:
        """A file of the index as DuckDB and pyarrow open it (a path, or a URI)."""
        return file_path(self.root, rel)

    @property
    def spill_dir(self) -> Path:
        """Where DuckDB spills a writer's large joins: inside an index directory (removed with the leftovers),
        else this machine's temporary directory."""
        if isinstance(self.root, ObjectStore):
            return Path(tempfile.gettempdir()) / f"dedup-spill-{os.getpid()}"
        return self.root / COMPACT_TMP

    def hadoop_paths(self, paths: list[str]) -> list[str]:
        """Files of the index (`path`s) as Spark reads them (`ObjectStore.hadoop`)."""
        return [self.root.hadoop(p) for p in paths] if isinstance(self.root, ObjectStore) else paths

    def connect(self, config: dict | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection that can read the index's files (`dedup.store.files.connect`)."""
        return connect(self.root, config)

    def set_checksum(self, rel: str) -> None:
        """Record the checksum of a listed file that has none (written before checksums), once it was read whole."""
        self.manifest.checksums[rel] = checksum(self.root, rel)

    def verify(self, files: Iterable[str]) -> None:
        """Before reading them: hash those of `files` (absolute or relative) whose hashing the writer deferred
        (`Writer(defer_dated=True)`); raises `DamagedError` naming a damaged one."""
        if not self.deferred:
            return
        todo = [rel for rel in (os.path.relpath(f, self.root) for f in files) if rel in self.deferred]
        if todo:
            problems = damage(self.root, todo, self.manifest.checksums, hashes=True)
            if problems:
                raise DamagedError(self.root, problems)
            self.deferred.difference_update(todo)

    def rewrite_without(self, name: str, column: str | tuple[str, ...], ids: Iterable[str],
                        committed_only: bool = False, among: set[str] | None = None) -> int:
        """Drop the rows whose `column` value (any of several columns) is in `ids`: rewrite only the files
        that hold such rows (only committed files if `committed_only`; only files of `among` if given, the others
        known to hold none). Returns the number of rows dropped."""
        ids_tbl = pa.table({"id": pa.array(sorted(set(ids)), pa.string())})
        if not ids_tbl.num_rows:
            return 0
        cols = (column,) if isinstance(column, str) else column
        cond = " OR ".join(f"t.{c} IN (SELECT id FROM ids_tbl)" for c in cols)
        con = self.connect()
        con.register("ids_tbl", ids_tbl)
        dropped = 0
        committed = [f for f in self.manifest.tables[name] if f not in self.dropped[name]
                     and (among is None or f in among)]
        self.verify(committed)
        for rel in committed + ([] if committed_only else list(self.staged[name])):
            path = sql_str(self.path(rel))
            hit = con.execute(f"SELECT count(*) FROM read_parquet({path}) t WHERE {cond}").fetchall()[0][0]
            if not hit:
                continue
            kept = fetch(con, f"SELECT * FROM read_parquet({path}) t WHERE NOT ({cond})")
            whole = name == "buckets" and self.whole(rel)  # dropping whole documents keeps it so
            dropped += hit
            if rel in self.staged[name]:
                self.staged[name].remove(rel)
                delete_file(self.root, rel)
            else:
                self.dropped[name].append(rel)
            if kept.num_rows:  # a subset of the file's documents: its date range still bounds them
                self.stage(name, kept, whole=whole, span=self.span(rel))
        return dropped

    def whole(self, rel: str) -> bool:
        """Does this bucket file hold all bucket rows of its documents (`whole_documents`)?"""
        if isinstance(self.root, ObjectStore):  # through its filesystem: its settings may not be the environment's
            return whole_documents(f"{self.root.base}/{rel}", self.root.fs)
        return whole_documents(self.root / rel)

    def abort(self) -> None:
        """Forget and delete everything staged; the index stays at its last commit."""
        for files in self.staged.values():
            for rel in files:
                delete_file(self.root, rel)
        self._reset()

    def next_files(self, name: str) -> list[str]:
        """The files of `name` (relative) after the next commit: listed minus dropped plus staged."""
        return [f for f in self.manifest.tables[name] if f not in self.dropped[name]] + self.staged[name]

    def current_files(self, name: str) -> list[str]:
        """Absolute paths of the files `name` will have after commit (see `next_files`)."""
        return [self.path(f) for f in self.next_files(name)]


class Writer(Staging):
    """The single writer of an index: holds the lock, stages files, commits atomically."""

    def __init__(self, root: str | os.PathLike, params: Params | None = None, requested: dict | None = None,
                 create: bool = True, upgrading: bool = False, defer_dated: bool = False):
        """`defer_dated`: the bucket files of an index with a window (those with a date range) are hashed only
        when `verify` is asked for them, as a batch plans to read them: a night reads those of its window, and
        the others (most of an archive) are never read, so never carried into new files; the rest is hashed
        now. Every file's size is checked now either way."""
        if is_remote(root):  # a caller of the API: the commands open their writer with `open_writer`
            raise IndexProblem(f"{root}: Writer opens an index directory; open_writer opens an index on S3")
        self.root = Path(root).resolve()
        self._lock: WriterLock | None = None
        self.deferred = set()
        self.grace = grace_seconds()
        check_creatable(self.root, create)
        self.created = False  # this writer made the index (its first batch is not committed yet)
        self._made_dir = not self.root.exists()  # remove_index takes it away again
        self._moved: list[str] = []  # files moved from staging/ into their table folders for the next commit
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise IndexProblem(f"{self.root}: cannot create index directory: {e.strerror}") from e
        self._lock = WriterLock(self.root)
        self.stale_holder = self._lock.stale_holder  # the holder line of a writer that died holding the lock
        try:
            if (self.root / MANIFEST).is_file():
                self.manifest = read_manifest(self.root, upgrading)
                # before anything is read: a damaged file's rows would be carried into the files written now
                self.deferred = set(self.manifest.ranges) if defer_dated else set()
                check_files(self.root, self.manifest, hashes=True, unread=self.deferred)
                self._check_params(params, requested)
                remove_leftovers(self.root, self.manifest)
                write_views(self.root, self.manifest)
            else:
                check_creatable(self.root, create)  # again, under the lock: another writer may have been creating it
                self.created = True
                remove_leftovers(self.root, None)  # a first ingest killed before its first commit
                self.manifest = self._initial(params if params is not None else Params(**(requested or {})))
        except BaseException:
            if self.created:
                remove_index(self.root, self._made_dir)
            self.close()
            raise
        self.params = self.manifest.params
        self._reset()

    def _check_params(self, params: Params | None, requested: dict | None) -> None:
        """Refuse settings that disagree with the index's (`Params.check_requested`)."""
        if params is not None:
            self.manifest.params.check_requested(params.to_dict())
        if requested:
            self.manifest.params.check_requested(requested)

    def _initial(self, params: Params) -> Manifest:
        """A new index's generation 0: empty tables, not committed. The first commit writes the first manifest, so a
        first run that fails leaves no index, only files the next writer removes (an empty committed index looked
        like a successful run to whoever came next)."""
        now = time.time()
        tables = {name: [self._moved_in(write_table(self.root, name, SCHEMAS[name].empty_table(), 0))]
                  for name in TABLES}
        return Manifest(params, 0, tables, 1, 1, [], now, now,
                        checksums={f: checksum(self.root, f) for files in tables.values() for f in files})

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is not None:
            self.abort()  # a writer that failed (Ctrl-C, bad input, a full disk) leaves nothing staged behind
            if self.created and self.manifest.generation == 0:
                # a first batch that failed leaves no empty index holding its parameters
                remove_index(self.root, self._made_dir)
        self.close()

    def commit(self, next_cluster_id: int | None = None, batch: bool = True) -> None:
        """Atomically publish staged files (and forget dropped ones). `batch=False` (compaction) does not use up
        a batch number."""
        m = self.manifest
        now = time.time()
        tables = {}
        ranges: dict[str, list[int]] = {}
        try:
            for name in TABLES:
                files = self.next_files(name)
                if not files:
                    files = [write_table(self.root, name, SCHEMAS[name].empty_table(), m.generation + 1)]
                tables[name] = [self._moved_in(f) for f in files]
                ranges.update({t: list(self.span(f)) for f, t in zip(files, tables[name])  # type: ignore[arg-type]
                               if self.span(f) is not None})
            garbage = [g for g in m.garbage if not self._collect(g, now)]
            garbage += [{"file": f, "since": now} for name in TABLES for f in self.dropped[name]]
            listed = [f for files in tables.values() for f in files]
            old = {f for files in m.tables.values() for f in files}
            # files written by this writer get their checksum now (still in the page cache); files of an index
            # written before checksums keep none until `upgrade`
            sums = {f: m.checksums[f] for f in listed if f in m.checksums}
            sums |= {f: checksum(self.root, f) for f in listed if f not in old}
            new = Manifest(m.params, m.generation + 1, tables,
                           next_cluster_id if next_cluster_id is not None else m.next_cluster_id,
                           m.next_batch + 1 if batch else m.next_batch, garbage, m.created_at, now, checksums=sums,
                           ranges=ranges)
            if self._lock is not None:
                self._lock.check()
            write_manifest(self.root, new, self._moved)
        except BaseException:
            for rel in self._moved:  # not committed: out of the table folders again
                (self.root / rel).unlink(missing_ok=True)
            raise
        finally:
            self._moved = []
        self.manifest = new
        self._supersede([rel for name in TABLES for rel in self.dropped[name]])
        self._reset()

    def _supersede(self, files: list[str]) -> None:
        """Out of their table folders with files a commit stopped using (readers of older manifests follow them)."""
        for rel in files:
            supersede(self.root, rel)  # type: ignore[arg-type]

    def _moved_in(self, rel: str) -> str:
        """`publish_file`, remembered: the commit syncs the folder (its manifest must not outlive the move) or, if
        it fails, deletes the file again (the table folders keep the committed files only)."""
        table_rel = publish_file(self.root, rel)
        if table_rel != rel:
            self._moved.append(table_rel)
        return table_rel

    def _collect(self, g: dict, now: float) -> bool:
        """Delete a garbage file whose grace period is over; False if it stays on the list."""
        if now - g["since"] < self.grace:
            return False
        self._delete_garbage(g["file"])
        return True

    def _delete_garbage(self, rel: str) -> None:
        """A file no reader needs any more: moved to superseded/ after its commit, or still where it was."""
        (self.root / SUPERSEDED / rel).unlink(missing_ok=True)  # type: ignore[operator]
        (self.root / rel).unlink(missing_ok=True)  # type: ignore[operator]


class StoreWriter(Writer):
    """The writer of an index on an object store (`dedup.store.remote`): no lock (the commit's conditional put
    decides between two writers), files written in place, the ones a commit stops using removed after the grace
    period. Opening the index for an ingest (`defer_dated`) checks the listed files' sizes (one listing) without
    downloading the whole index to hash it; compaction, retirement and upgrade, which read every file anyway, hash
    them first as in a directory. `dedup check --index URI` hashes every file."""

    def __init__(self, store: ObjectStore, params: Params | None = None, requested: dict | None = None,
                 create: bool = True, upgrading: bool = False, defer_dated: bool = False):
        self.root = store
        self._lock = None
        self._moved = []
        self.deferred = set()
        self.grace = grace_seconds()
        self.stale_holder = None
        self.created = False
        try:
            self.manifest = read_manifest(store, upgrading)
        except IndexNotFound:
            if not create:
                raise
            if any(not rel.startswith("tables/") for rel in store.listing("")):
                raise IndexProblem(f"{store}: holds objects and is not a dedup index; give the index a prefix of "
                                   "its own")
            self.created = True
            self.manifest = self._initial(params if params is not None else Params(**(requested or {})))
        else:
            m = self.manifest
            check_files(store, m, hashes=not defer_dated)
            self._check_params(params, requested)
            store.remove_leftovers({f for files in m.tables.values() for f in files}, {g["file"] for g in m.garbage},
                                   m.generation)
        self.params = self.manifest.params
        self._reset()

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, CommitUnknown):
            self._reset()  # what it wrote may be listed by the manifest it could not read back: left in place
        elif exc_type is not None:
            self.abort()
            if self.created and self.manifest.generation == 0:  # the first batch's empty tables
                self.root.delete([f for files in self.manifest.tables.values() for f in files])  # type: ignore[union-attr]

    def _supersede(self, files: list[str]) -> None:
        """Nothing moves on an object store: the files stay in place until their grace period is over."""

    def _delete_garbage(self, rel: str) -> None:
        delete_file(self.root, rel)


def open_writer(index: str | os.PathLike, settings: tuple[tuple[str, str], ...] = (), **options: object) -> Writer:
    """The writer of the index `index`: a directory, or an object store URI (`dedup.store.remote`; `settings`:
    how to reach it, else the environment's)."""
    root = location(index, settings)
    if isinstance(root, ObjectStore):
        return StoreWriter(root, **options)  # type: ignore[arg-type]
    return Writer(root, **options)  # type: ignore[arg-type]
