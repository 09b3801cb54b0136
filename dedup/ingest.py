"""The ingest job, one batch and one atomic commit:

    read → admit → sketch → band → stage files → drop replaced → plan → link → verify → recluster → commit

The steps are the engine-neutral functions of `dedup.batch`; the local engine (`dedup.engines.local`) runs the
first ones over chunks in threads, so memory follows the chunk size, not the batch size. Identity rules (see
`dedup.batch.admit`): the first row with an id wins; the same id and text is `unchanged`; the same id with
another text is `replaced`, and the old version leaves every table.
"""

from __future__ import annotations

import itertools
import os
import resource
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime

import duckdb
import pyarrow as pa

from dedup.batch.admit import KnownDocuments, Rejections, StrictError
from dedup.batch.commit import commit, drop_replaced
from dedup.batch.recluster import events_table, read_touched_inputs, recluster, stage_clusters
from dedup.engines import open_engine
from dedup.batch.plan import Dates
from dedup.engines.local import Linked, LocalEngine, Progress, Staged
from dedup.params import Params, ParamsError
from dedup.progress import InputMeter
from dedup.errors import InputError
from dedup.readers import (DEFAULT_MAX_CHARS, FieldMap, Record, Rejection, expand_paths, is_uri,
                           records_from_table, validate)
from dedup.runtime import collector_paused, libc, prepare_process
from dedup.store import Writer
from dedup.store.remote import is_remote
from dedup.store.writer import open_writer
from dedup.windows import Retention

__all__ = ["Summary", "StrictError", "ingest"]

# Address space ingest needs whatever the batch size: numba's compiler (LLVM) and the OpenMP and Python thread
# pools reserve it even where little memory is used. Below it they fail in ways no message can follow (LLVM aborts,
# libgomp exits): 2.5 GB failed, 3.5 GB sufficed with the kernels compiled from scratch (`ulimit -v`/`prlimit --as`).
MIN_ADDRESS_SPACE = 3_500_000_000


@dataclass
class Summary:
    """What one ingest did. `read = indexed + rejected + unchanged`, indexed = new + replaced."""

    read: int = 0
    indexed: int = 0
    new: int = 0
    replaced: int = 0
    unchanged: int = 0
    rejected: int = 0
    file_errors: int = 0
    candidates: int = 0
    pairs: int = 0
    linked: int = 0
    documents: int = 0
    clusters: int = 0
    new_clusters: int = 0
    merges: int = 0
    splits: int = 0
    batch: int = 0
    seconds: float = 0.0
    stale_lock: str | None = None  # lock line of a writer that died before closing (its leftovers were removed)
    link_files: int = 0   # bucket files the link read (with a time window: those within the batch's window)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, for logs and benchmarks
    flags: dict[str, int] = field(default_factory=dict)  # rows read with each flag (bad_published_at, ...)
    rejections: list[Rejection] = field(default_factory=list, repr=False)
    dropped_dates: list[str] = field(default_factory=list, repr=False)  # a few `file:line: 'value'` examples

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("rejections")
        d.pop("dropped_dates")
        reasons: dict[str, int] = {}
        for r in self.rejections:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        d["rejected_by_reason"] = reasons
        d["seconds"] = round(self.seconds, 3)
        d["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        return d


@dataclass
class Inputs:
    """What one batch reads: files (directories expanded, checked before the index is opened), Arrow tables
    (also made from DataFrames) and rows given as dicts."""

    files: list
    unsupported: list[Rejection]  # files of unknown type found in directories
    tables: list[pa.Table]
    rows: list[dict]
    names: list[str]              # for the `batches` table

    @classmethod
    def of(cls, sources: object) -> Inputs:
        """A str or Path is one input (not the characters of a name), as is a table, a DataFrame or a dict;
        anything else iterable is a collection of them."""
        one = isinstance(sources, (str, bytes, os.PathLike, dict)) or _as_table(sources) is not None
        paths, tables, rows, names = [], [], [], []
        for s in [sources] if one else list(sources):  # type: ignore[call-overload]
            table = _as_table(s)
            if table is not None:
                tables.append(table)
                names.append("<table>")
            elif isinstance(s, dict):
                rows.append(s)
            elif isinstance(s, (str, bytes, os.PathLike)):
                paths.append(s)
                names.append(os.fsdecode(s).encode("utf-8", "replace").decode("utf-8"))
            else:
                raise InputError(f"cannot ingest a {type(s).__name__}: give paths, Arrow tables, DataFrames or "
                                 "dicts (one per document)")
        files, unsupported = expand_paths(paths)
        return cls(files, unsupported, tables, rows, names + (["<rows>"] if rows else []))


def _as_table(s: object) -> pa.Table | None:
    """The Arrow table of a table-like input: pyarrow's, a pandas DataFrame, or anything that speaks the Arrow
    stream protocol (polars); string views (polars) become plain strings, which the readers' checks scan."""
    if type(s).__module__.partition(".")[0] == "pandas" and hasattr(s, "columns"):
        t = pa.Table.from_pandas(s, preserve_index=False)
    elif isinstance(s, (pa.Table, pa.RecordBatch)) or hasattr(s, "__arrow_c_stream__"):
        t = pa.table(s)
    else:
        return None
    return t.cast(pa.schema([f.with_type(pa.large_string()) if pa.types.is_string_view(f.type) else f
                             for f in t.schema]))


def _records(inputs: Inputs, fields: FieldMap, max_chars: int, s: Summary, meter: InputMeter,
             engine: LocalEngine, retention: Retention, started: datetime) -> Iterator[Record | Rejection]:
    """Every row of the inputs, with the index's retention applied (`started` dates a document without
    published_at); the flags of the records are counted in `s` as they pass."""
    yield from inputs.unsupported
    rows = itertools.chain(*(records_from_table(t, fields, max_chars=max_chars) for t in inputs.tables),
                           (validate(dict(r), fields, "<rows>", i, max_chars) for i, r in enumerate(inputs.rows, 1)),
                           engine.read_files(inputs.files, fields, max_chars, meter))
    for r in rows:
        if isinstance(r, Record):
            r = retention.apply(r, started)
        if isinstance(r, Record) and r.flags:
            _count_flags(s, r)
        yield r


def _count_flags(s: Summary, r: Record) -> None:
    for f in r.flags:
        s.flags[f] = s.flags.get(f, 0) + 1
    if r.dropped_date is not None and len(s.dropped_dates) < 3:
        where = r.file if r.line is None else f"{r.file}:{r.line}"
        s.dropped_dates.append(f"{where}: {str(r.dropped_date)[:60]!r}")


def _scratch(w: Writer) -> duckdb.DuckDBPyConnection:
    """DuckDB for the batch's look-ups, in bounded memory: it spills its joins inside the index rather than
    growing with the corpus; the order of results is never relied on (staged tables are sorted), and keeping it
    costs memory in large joins."""
    con = w.connect({"temp_directory": str(w.spill_dir), "memory_limit": "512MB", "preserve_insertion_order": False})
    con.execute("SET enable_progress_bar = false")  # DuckDB draws it on stdout, into `--json`
    return con


def _count_staged(s: Summary, staged: Staged) -> None:
    s.read, s.unchanged = staged.read, staged.unchanged
    s.rejections, s.rejected, s.file_errors = staged.rejections.items, staged.rejections.rows, \
        staged.rejections.file_errors
    s.indexed, s.replaced = len(staged.indexed), len(staged.replaced)
    s.new = s.indexed - s.replaced


def _count_linked(s: Summary, linked: Linked) -> None:
    s.candidates, s.pairs, s.linked = linked.candidates, linked.pairs, linked.linked
    s.timings["link"], s.timings["verify"] = linked.link_seconds, linked.verify_seconds


def _reporting(progress: Progress | None, meter: InputMeter) -> Progress | None:
    """The engine's `progress` with the bytes read after each count of documents read (see `dedup.progress`)."""
    if progress is None:
        return None

    def report(event: str, n: int, total: int | None) -> None:
        progress(event, n, total)
        if event == "read" and meter.total:
            progress("bytes", meter.done(), meter.total)

    return report


def _done(progress: Progress | None, stage: str, n: int, seconds: float) -> None:
    if progress is not None:
        progress(f"{stage} done", n, round(seconds * 1000))


def ingest(sources: object, index: str | os.PathLike, params: Params | None = None, *,
           requested: dict | None = None, fields: FieldMap = FieldMap(), store_text: bool = True,
           store_signatures: bool = False, strict: bool = False, max_chars: int = DEFAULT_MAX_CHARS,
           progress: Progress | None = None, engine: str = "local", spark_master: str | None = None) -> Summary:
    """Ingest one batch into the index at `index` (created if missing) and commit it atomically. `sources` is a
    path (a file or a directory), an Arrow table, a pandas or polars DataFrame, a dict (one document), or a list
    of any of these; DataFrames and dicts use the same field names as files (`fields`). `params` (all settings) or `requested` (only those the caller chose
    explicitly) must agree with an existing index. `store_signatures` keeps each document's MinHash values in
    `signatures` (for use with datasketch; 0.7 KB a document). `progress(event, n, total)` hears how far it got
    (events: `dedup.progress`). Raises `StrictError` in strict mode at the first bad row. `engine`: "local" (this
    machine) or "spark" (`spark_master`, else Spark's configuration)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and soft < MIN_ADDRESS_SPACE:
        raise MemoryError(f"dedup ingest needs {MIN_ADDRESS_SPACE / 1e9:.1f} GB of address space and the limit "
                          f"(ulimit -v, prlimit --as) is {soft / 1e9:.2f} GB; nothing was done")
    started = datetime.now()
    inputs = Inputs.of(sources)  # paths are checked before the index is opened: a missing input creates no index
    if is_uri(os.fspath(index)) and not is_remote(index):
        raise InputError(f"--index {index}: the index must be a directory on a POSIX filesystem (with --engine spark "
                         "one that every node mounts at the same path: NFS, Lustre, EFS, a FUSE mount) or on S3 "
                         "(s3://bucket/prefix); a directory index commits by atomic rename and locks with flock, "
                         "which HDFS does not provide")
    prepare_process()
    libc()
    on_s3 = os.fspath(index) if is_remote(index) else None
    with open_engine(engine, spark_master, inputs.files, inputs.unsupported, on_s3) as engine, \
            open_writer(index, engine.s3_settings(on_s3) if on_s3 else (), params=params, requested=requested,
                        defer_dated=True) as w:
        meter = InputMeter(inputs.files)  # URIs listed now
        report = _reporting(progress, meter)
        s = Summary(batch=w.manifest.next_batch, stale_lock=w.stale_holder)
        window = w.params.window_days
        try:
            if window and type(engine) is not LocalEngine:
                raise ParamsError("an index with a time window (--window) is ingested by the local engine only; "
                                  "run without --engine spark")
            with collector_paused():
                con = _scratch(w)
                known = KnownDocuments.load(con, w.current_files("documents"),
                                            w.current_files("batches") if window else None)
                t = time.perf_counter()
                records = _records(inputs, fields, max_chars, s, meter, engine, Retention.of(w.params), started)
                staged = engine.stage_input(records, w, known,
                                            Rejections(strict), store_text, store_signatures, report, fields.id,
                                            started)
                s.timings["read+sketch+store"] = time.perf_counter() - t
                _count_staged(s, staged)
                _done(report, "read", s.read, s.timings["read+sketch+store"])
                pairs_before = w.current_files("pairs")
                drop_replaced(w, staged.replaced)
                dates = None if not window else Dates(known.dates, staged.dates, {  # type: ignore[arg-type]
                    w.path(f): w.span(f) for f in w.next_files("buckets")})
                plan = staged.planner.plan(w.current_files("buckets"), known.numbering, staged.replaced,
                                           staged.indexed, dates)
                if plan is not None:
                    w.verify(plan.files_read())  # the index's bucket files this batch reads, hashed first
                    s.link_files = len(plan.files_read())
                    _count_linked(s, engine.link_and_verify(plan, w, report))
                    _done(report, "link", s.candidates, s.timings["link"])
                    _done(report, "verify", s.linked, s.timings["verify"])
                t = time.perf_counter()
                inputs_now = read_touched_inputs(con, w.current_files("documents"), w.current_files("clusters"),
                                                 w.current_files("pairs"), staged.indexed, sorted(staged.replaced),
                                                 pairs_before, w.params.verify_threshold,
                                                 [w.path(f) for f in w.staged["documents"]])
                clusters = recluster(inputs_now, w.params, w.manifest.next_cluster_id, engine.partition)
                s.clusters = stage_clusters(w, con, inputs_now, clusters)
                if clusters.events:
                    w.stage("cluster_events", events_table(clusters.events, s.batch, datetime.now()))
                s.documents = len(known.numbering) + s.new
                s.new_clusters, s.merges, s.splits = (sum(e.kind == k for e in clusters.events)
                                                      for k in ("new", "merge", "split"))
                s.timings["cluster"] = time.perf_counter() - t
                _done(report, "cluster", s.clusters, s.timings["cluster"])
                t = time.perf_counter()
                commit(w, s, started, inputs.names, clusters.next_cluster_id)
                s.timings["commit"] = time.perf_counter() - t
                _done(report, "commit", s.documents, s.timings["commit"])
        except BaseException:
            engine.abort()  # before the writer's abort (on leaving `with`): nothing may land after it
            raise
    s.seconds = time.time() - started.timestamp()
    return s
