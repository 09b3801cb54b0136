"""The local engine: runs a batch's steps on one machine, with threads and bounded memory.

While reading, the main thread reads chunk k + 2 and applies the first-row-wins rule, a worker thread admits
and sketches chunk k + 1 (the numba kernel runs on every core without the GIL), and two writer threads write
chunk k: one its documents file (mostly zstd and copying texts), the other its bucket file. Then the batch is
linked a part at a time and each part's candidates verified a group of documents at a time; memory is handed
back between parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.bands import bucket_runs
from dedup.batch.admit import Admission, FirstRowWins, KnownDocuments, Rejections, admit_versions
from dedup.batch.plan import LinkPlan, LinkPlanner, part_candidates
from dedup.batch.score import scored_pairs
from dedup.batch.stage import (BucketRun, Sketched, bucket_run, by_period, documents_table, signatures_table,
                               sketch_admitted)
from dedup.cluster import partition
from dedup.kernel_cache import compile_ahead
from dedup.params import Params
from dedup.progress import InputMeter
from dedup.readers import FieldMap, Record, Rejection, read_file, record_texts
from dedup.runtime import release_memory
from dedup.sketch import sketch_index
from dedup.store import Writer
from dedup.windows import INGEST_DATED, document_dates

CHUNK = 20_000        # documents read, sketched and written as one chunk
LINK_CHUNK = 100_000  # documents whose bucket rows are held in memory while linking (~14 bytes a row)
VERIFY_DOCS = 40_000  # documents whose texts are held at once while verifying
Progress = Callable[[str, int, int | None], None]


@dataclass
class Staged:
    """What reading, admitting, sketching and staging a batch's input left for linking."""

    rejections: Rejections
    planner: LinkPlanner
    read: int = 0
    unchanged: int = 0
    indexed: list[str] = field(default_factory=list)  # the batch's documents, in number order
    replaced: set[str] = field(default_factory=set)
    dates: list[np.ndarray] = field(default_factory=list)  # their dates, in an index with a window


@dataclass
class Linked:
    candidates: int = 0
    pairs: int = 0               # staged rows of `pairs`
    linked: int = 0
    link_seconds: float = 0.0
    verify_seconds: float = 0.0


@dataclass
class _ChunkOutcome:
    rejected: list[Rejection]
    unchanged: int = 0
    ids: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    dates: np.ndarray | None = None


def chunks(it: Iterator, n: int) -> Iterator[list]:
    """Lists of up to `n` items; the first ones an eighth, a quarter and half as long, so that the kernel starts
    on the second core after an eighth of a chunk is read instead of a whole one."""
    buf: list = []
    size = max(1, n // 8)
    for x in it:
        buf.append(x)
        if len(buf) >= size:
            yield buf
            buf = []
            size = min(n, 2 * size)
    if buf:
        yield buf


def _load_kernels() -> None:
    """Sketch and band one short text: numba starts and loads the compiled kernels from its cache (~0.25 s in a
    new process) while the index is opened and the first chunk read, instead of after. The kernels' argument
    types do not depend on the settings, so the defaults load the same ones as any index's."""
    p = Params()
    sk = sketch_index(pa.chunked_array([pa.array(["numba loads its kernels"])]), p)
    bucket_runs(sk.signatures, sk.lead, sk.anchors, p)


class LocalEngine:
    """Threads of one ingest. Open it before the index (numba loads its kernels meanwhile); `abort` stops every
    thread before the writer forgets what was staged, so that nothing lands after an abort."""

    def __init__(self) -> None:
        self.worker = ThreadPoolExecutor(max_workers=1)
        self.writers = ThreadPoolExecutor(max_workers=2)
        self.pending: list[Future] = []  # the files of the last chunk handed to the writers
        self.loaded = self.worker.submit(_load_kernels)
        self.ingest_time = datetime.now()  # the date of documents without one, in an index with a window
        self.ahead = compile_ahead()  # the first run after an install: verify kernels compiled meanwhile

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.ahead is not None:
            self.ahead.kill()
            self.ahead.wait()
        self.writers.shutdown(wait=False)
        self.worker.shutdown(wait=True)

    def abort(self) -> None:
        for pool in (self.worker, self.writers):
            pool.shutdown(wait=True, cancel_futures=True)

    def stage_input(self, records: Iterator[Record | Rejection], w: Writer, known: KnownDocuments,
                    rejections: Rejections, store_text: bool, store_signatures: bool,
                    progress: Progress | None, id_field: str = "id", ingest_time: datetime | None = None
                    ) -> Staged:
        """admit → sketch → band → stage files, chunk by chunk. Rejections are recorded in input order. In an
        index with a window, a document without `published_at` is dated `ingest_time` (the batch's start)."""
        staged = Staged(rejections, LinkPlanner(LINK_CHUNK, w.params.window_days))
        self.ingest_time = ingest_time or self.ingest_time
        rows = FirstRowWins(id_field)
        pending: Future | None = None
        for chunk in chunks(records, CHUNK):
            admitted = rows.admit(chunk)
            staged.read += admitted.read
            if progress:
                progress("read", staged.read, None)
            if pending is not None:
                self._fold(staged, pending.result())
            rejections.add(admitted.rejected)
            pending = self.worker.submit(self._sketch_and_stage, admitted.records, len(staged.indexed), w, known,
                                         staged.planner, store_text, store_signatures)
        if pending is not None:
            self._fold(staged, pending.result())
        self.loaded.result()
        self._wait_for_writes(staged.planner)
        return staged

    @staticmethod
    def read_files(files: list[Path], fields: FieldMap, max_chars: int, meter: InputMeter
                   ) -> Iterator[Record | Rejection]:
        """The rows of the input files, file after file (`meter` hears which one is read)."""
        for i, f in enumerate(files):
            meter.start(i)
            yield from read_file(f, fields, max_chars)
        meter.start(len(files))

    @staticmethod
    def _fold(staged: Staged, outcome: _ChunkOutcome) -> None:
        staged.rejections.add(outcome.rejected)
        staged.unchanged += outcome.unchanged
        staged.indexed.extend(outcome.ids)
        staged.replaced.update(outcome.replaced)
        if outcome.dates is not None:
            staged.dates.append(outcome.dates)

    def _sketch_and_stage(self, records: list[Record], first: int, w: Writer, known: KnownDocuments,
                          planner: LinkPlanner, store_text: bool, store_signatures: bool) -> _ChunkOutcome:
        """In the worker thread, while the next chunk is read: admit versions, sketch, then hand the files to
        the writer threads once the previous chunk's are written (Parquet writing releases the GIL, so it
        overlaps with sketching the next chunk; one chunk at most waits, so memory stays bounded)."""
        if not records:
            return _ChunkOutcome([])
        admission = admit_versions(records, record_texts(records), known)
        sk = self.sketch(admission, w, store_signatures)
        if sk is None or not sk.records:
            return _ChunkOutcome(sk.rejected if sk else [], admission.unchanged)
        dates = None
        if w.params.window_days:
            dates = document_dates([r.published_at for r in sk.records], self.ingest_time)
            for r in sk.records:
                if r.published_at is None:
                    r.flags = [*r.flags, INGEST_DATED]
        self._wait_for_writes(planner)
        self.pending = [self.writers.submit(self._write_documents, w, sk, store_text, store_signatures),
                        self.writers.submit(self.stage_buckets, w, sk, first, dates)]
        return _ChunkOutcome(sk.rejected, admission.unchanged, sk.ids, sk.replaced, dates)

    def _wait_for_writes(self, planner: LinkPlanner) -> None:
        """Until the files of every chunk sketched so far are staged (raises what writing them raised); the
        bucket files join the link plan in the order they were sketched."""
        pending, self.pending = self.pending, []
        for future in pending:
            for run in future.result() or []:
                planner.add(run)

    @staticmethod
    def _write_documents(w: Writer, sk: Sketched, store_text: bool, store_signatures: bool) -> None:
        batch = w.manifest.next_batch
        w.stage("documents", documents_table(sk, batch, store_text))
        if store_signatures:
            w.stage("signatures", signatures_table(sk, w.params.num_perm))

    @staticmethod
    def sketch(admission: Admission, w: Writer, signatures: bool) -> Sketched | None:
        """Sketch a chunk for `w`'s index (`signatures`: the caller keeps them, else an engine may leave them
        out)."""
        return sketch_admitted(admission, w.params)

    partition = staticmethod(partition)  # clusters of the index, see `dedup.batch.recluster`

    @staticmethod
    def s3_settings(index: str) -> tuple[tuple[str, str], ...]:
        """How dedup reaches an index on S3 (`dedup.store.remote`): here, as the environment says."""
        return ()

    @staticmethod
    def stage_buckets(w: Writer, sk: Sketched, first: int, dates: np.ndarray | None) -> list[BucketRun]:
        """In a writer thread, the chunk's bucket files (its documents numbered from `first`): one, or with a
        window one per period of its documents' dates."""
        run = bucket_run(sk, first, w.params)
        if run is None:
            return []
        runs = [run] if dates is None else by_period(run, dates, first, w.params.period_days)
        for r in runs:  # sorted by (band, bucket) as staged
            r.path = w.path(w.stage("buckets", r.table, whole=True, span=r.span))
        return runs

    def link_and_verify(self, plan: LinkPlan, w: Writer, progress: Progress | None) -> Linked:
        """plan → link → verify, a part at a time; each part's pairs are staged as they are scored."""
        threads = numba.get_num_threads()
        out = Linked()
        release_memory()
        for part in plan.parts:
            t = time.perf_counter()
            cands = part_candidates(plan, part, w.params, threads)
            out.link_seconds += time.perf_counter() - t
            out.candidates += cands.num_rows
            if progress:
                progress("candidates", out.candidates, None)
            t = time.perf_counter()
            if self.ahead is not None:  # its kernels are in numba's cache once it is done
                self.ahead.wait()
            if cands.num_rows:
                for pairs in scored_pairs(cands, w.current_files("documents"), w.params, w.manifest.next_batch,
                                          VERIFY_DOCS, threads):
                    out.pairs += pairs.num_rows
                    out.linked += int(pc.sum(pairs["linked"]).as_py() or 0)
                    w.stage("pairs", pairs, sort_by=["doc_a", "doc_b"])
            out.verify_seconds += time.perf_counter() - t
            release_memory()
        return out
