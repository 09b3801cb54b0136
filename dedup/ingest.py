"""The ingest job: read → normalize/shingle/sketch → band → store → link → verify → cluster → commit.

One call is one batch and one atomic commit. Documents flow in chunks, so memory follows the chunk size, not the
batch size. Identity rules:
- within one batch the first row with an id wins; later rows with that id are rejected as `duplicate_id`;
- a document already in the index with the same text is `unchanged` (nothing is written for it);
- the same id with a different text is `replaced`: the old version disappears from every table.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime

import duckdb
import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from dedup.bands import bucket_runs
from dedup.cluster import assign_ids, partition
from dedup.link import Numbering, Rows, candidate_pairs, merge_runs
from dedup.params import Params
from dedup.normalize import utf8_buffers
from dedup.readers import (DEFAULT_MAX_CHARS, FieldMap, Record, Rejection, expand_paths, read_file, record_texts,
                           records_from_table)
from dedup.sketch import sketch_index
from dedup.store import COMPACT_TMP, Writer, fetch, positions, rows_of
from dedup.verify import KEEP_SCORE, verify_pairs

CHUNK = 20_000
LINK_CHUNK = 100_000  # documents whose bucket rows are held in memory while linking (~14 bytes a row)
VERIFY_DOCS = 40_000  # documents whose texts are held at once while verifying
Progress = Callable[[str, int, int | None], None]


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
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, for logs and benchmarks
    rejections: list[Rejection] = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("rejections")
        reasons: dict[str, int] = {}
        for r in self.rejections:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        d["rejected_by_reason"] = reasons
        d["seconds"] = round(self.seconds, 3)
        d["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        return d


class StrictError(Exception):
    """--strict: the first bad row stops the batch; nothing is committed."""

    def __init__(self, rejection: Rejection):
        super().__init__(rejection.message())
        self.rejection = rejection


TEXT_COLUMN_BYTES = 1 << 30  # a string array's 32-bit offsets reach 2 GiB: the documents file's texts are cut


def _text_column(texts: pa.ChunkedArray) -> pa.ChunkedArray:
    """A chunk's texts (no nulls) as the documents table's `string` column: in pieces of at most about
    TEXT_COLUMN_BYTES, each with its own 32-bit offsets over the same bytes (20k long reports can exceed the
    2 GiB a single string array holds)."""
    pieces = []
    for chunk in texts.chunks:
        offsets, data = utf8_buffers(chunk)
        marks = np.arange(offsets[0] + TEXT_COLUMN_BYTES, offsets[-1], TEXT_COLUMN_BYTES)
        cuts = np.unique(np.concatenate([[0], np.searchsorted(offsets, marks, "right") - 1, [len(chunk)]]))
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            rel = (offsets[a:b + 1] - offsets[a]).astype(np.int32)
            pieces.append(pa.Array.from_buffers(pa.string(), b - a, [None, pa.py_buffer(rel),
                                                                     pa.py_buffer(data[offsets[a]:offsets[b]])]))
    return pa.chunked_array(pieces, pa.string())


def text_hashes(texts: pa.ChunkedArray) -> list[int]:
    """The identity of each text's version (xxh3-64 of its UTF-8 bytes): decides unchanged vs replaced."""
    out: list[int] = []
    for chunk in texts.chunks:
        offsets, data = utf8_buffers(chunk)
        view, bounds = memoryview(data), offsets.tolist()
        out.extend(xxhash.xxh3_64_intdigest(view[bounds[i]:bounds[i + 1]]) for i in range(len(bounds) - 1))
    return out


def _records(sources: list, fields: FieldMap, max_chars: int) -> Iterator[Record | Rejection]:
    files, unsupported = expand_paths([s for s in sources if not isinstance(s, (pa.Table, pa.RecordBatch))])
    yield from unsupported
    for s in sources:
        if isinstance(s, (pa.Table, pa.RecordBatch)):
            yield from records_from_table(pa.table(s), fields, max_chars=max_chars)
    for f in files:
        yield from read_file(f, fields, max_chars)


@numba.njit(cache=True)
def group_cuts(a: np.ndarray, b: np.ndarray, n_ids: int, max_docs: int) -> np.ndarray:
    """Boundaries [0, ..., len(a)] of consecutive runs of pairs (a[k], b[k]) that each involve at most
    `max_docs` distinct documents (a single pair always makes a run)."""
    seen = np.zeros(n_ids, dtype=np.bool_)
    used = np.empty(2 * a.shape[0], dtype=np.int64)
    cuts = [0]
    n_used = 0
    for k in range(a.shape[0]):
        extra = (0 if seen[a[k]] else 1) + (0 if seen[b[k]] or b[k] == a[k] else 1)
        if n_used + extra > max_docs and k > cuts[-1]:
            for u in range(n_used):
                seen[used[u]] = False
            n_used = 0
            cuts.append(k)
        for d in (a[k], b[k]):
            if not seen[d]:
                seen[d] = True
                used[n_used] = d
                n_used += 1
    cuts.append(a.shape[0])
    return np.array(cuts, dtype=np.int64)


def _chunks(it: Iterator, n: int) -> Iterator[list]:
    """Lists of up to `n` items; the first ones an eighth, a quarter and half as long, so that the kernel starts
    on the second core after an eighth of a chunk is read instead of a whole one (0.75 s for 20k documents)."""
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


class _Batch:
    """State of one ingest between reading and commit."""

    def __init__(self, w: Writer, store_text: bool, store_signatures: bool, strict: bool, progress: Progress | None):
        self.w, self.p = w, w.params
        self.store_text, self.store_signatures = store_text, store_signatures
        self.strict, self.progress = strict, progress
        self.batch = w.manifest.next_batch
        self.s = Summary(batch=self.batch)
        # bounded memory: DuckDB spills its joins inside the index rather than growing with the corpus; order of
        # results is never relied on (staged tables are sorted), and keeping it costs memory in large joins
        self.con = duckdb.connect(config={"temp_directory": str(w.root / COMPACT_TMP), "memory_limit": "512MB",
                                          "preserve_insertion_order": False})
        self.winner: dict[str, tuple[str, int | None]] = {}
        self.replaced: set[str] = set()
        self.indexed_ids: list[str] = []
        self.new_bucket_files: list[str] = []  # buckets of this batch's documents (not rewritten old files)
        # Link parts: runs of those files with at most LINK_CHUNK documents (at least one file each), by first file.
        # The rows of the last part's files are kept as they were written: it is linked from memory, not read back
        # (see `_link`). Documents are numbered by their position in `indexed_ids`.
        self.part_starts: list[int] = []
        self.held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (band, bucket, document) by file
        self.held_docs = 0
        # writes chunk k's files while chunk k + 1 is sketched: its documents and its buckets at once, since with the
        # kernel at 35 us a document one thread writing both became the pipeline's slowest stage (100k documents,
        # five interleaved pairs on two cores: 6.2 -> 5.8 s)
        self.writer = ThreadPoolExecutor(max_workers=2)
        self.pending_writes: list[Future] = []  # the parts of one chunk
        # ids and text hashes of the indexed documents, looked up chunk by chunk (a query per chunk read every
        # documents file again: 2 s of a nightly batch into a 1M index)
        known = fetch(self.con, "SELECT doc_id, text_hash FROM read_parquet($f)",
                      {"f": w.current_files("documents")})
        self.known = Numbering(known["doc_id"])
        self.known_hash = known["text_hash"].to_numpy()

    def reject(self, r: Rejection) -> None:
        if self.strict:
            raise StrictError(r)
        self.s.rejections.append(r)
        if r.line is None:
            self.s.file_errors += 1
        else:
            self.s.rejected += 1

    def accept(self, chunk: list[Record | Rejection]) -> tuple[list[Record], list[Rejection]]:
        """First row per id wins: the records to index and the rows rejected so far (recorded by the caller,
        in input order, via `record`)."""
        recs: list[Record] = []
        rejected: list[Rejection] = []
        for r in chunk:
            if isinstance(r, Rejection):
                if r.line is not None:
                    self.s.read += 1
                rejected.append(r)
                continue
            self.s.read += 1
            first = self.winner.get(r.doc_id)
            if first is not None:
                where = first[0] if first[1] is None else f"{first[0]}:{first[1]}"
                rejected.append(Rejection(r.file, r.line, r.doc_id, "id", "duplicate_id",
                                          f"id already seen at {where} in this batch; the first row wins"))
                continue
            self.winner[r.doc_id] = (r.file, r.line)
            recs.append(r)
        if self.progress:
            self.progress("read", self.s.read, None)
        return recs, rejected

    def record(self, rejected: list[Rejection]) -> None:
        for r in rejected:
            self.reject(r)

    def index(self, recs: list[Record]) -> list[Rejection]:
        """Sketch a chunk of records and hand it to the writer threads (band and stage); returns the records with
        nothing to fingerprint. Runs in a worker thread while the next chunk is read: the kernel releases the GIL."""
        rejected: list[Rejection] = []
        if not recs:
            return rejected
        texts = record_texts(recs)  # Arrow, straight from the input's buffers where it can
        hashes = text_hashes(texts)
        old = self._stored_hashes([r.doc_id for r in recs])
        keep, at = [], []
        for i, (r, h) in enumerate(zip(recs, hashes)):
            if old.get(r.doc_id) == h:
                self.s.unchanged += 1
            else:
                keep.append((r, h))
                at.append(i)
        if not keep:
            return rejected
        p = self.p
        texts = texts.take(pa.array(at, pa.int64())) if len(at) < len(recs) else texts
        sk = sketch_index(texts, p)
        ok = sk.shingles > 0
        for (r, _), good in zip(keep, ok):
            if not good:
                rejected.append(Rejection(r.file, r.line, r.doc_id, "text", "no_words",
                                          "text has no content words to fingerprint"))
        idx = np.flatnonzero(ok)
        if not len(idx):
            return rejected
        rows = [keep[i] for i in idx]
        ids = [r.doc_id for r, _ in rows]
        for d in ids:
            if d in old:
                self.replaced.add(d)
        base = len(self.indexed_ids)
        self.indexed_ids.extend(ids)
        sigs, words, shingles = sk.signatures[idx], sk.words[idx], sk.shingles[idx]
        lead = sk.lead[idx] if len(sk.lead) else sk.lead
        anchors = sk.anchors[idx]
        # Written in the writer threads once the previous chunk's files are: Parquet writing releases the GIL, so
        # it overlaps with sketching the next chunk (100k documents: 14.1 → 10.7-12.2 s); one chunk at most
        # waits, so memory stays bounded.
        self.wait_for_writes()
        texts = texts.take(pa.array(idx)) if len(idx) < len(keep) else texts
        parts = [functools.partial(self._stage_documents, ids, rows, texts, sigs, words, shingles),
                 functools.partial(self._stage_buckets, base, ids, sigs, words, lead, anchors)]
        self.pending_writes = [self.writer.submit(part) for part in parts]
        return rejected

    def wait_for_writes(self) -> None:
        """Until the files of every chunk sketched so far are staged (raises what writing them raised)."""
        pending, self.pending_writes = self.pending_writes, []
        for future in pending:
            future.result()

    def _stage_documents(self, ids: list[str], rows: list, texts: pa.Array, sigs: np.ndarray, words: np.ndarray,
                         shingles: np.ndarray) -> None:
        p = self.p
        self.w.stage("documents", pa.table({
            "doc_id": ids, "title": [r.title for r, _ in rows], "source": [r.source for r, _ in rows],
            "url": [r.url for r, _ in rows], "published_at": [r.published_at for r, _ in rows],
            "lang": [r.lang for r, _ in rows], "words": words, "shingles": shingles,
            "text_hash": pa.array([h for _, h in rows], pa.uint64()),
            "text": _text_column(texts) if self.store_text else pa.nulls(len(rows), pa.string()),
            "flags": [r.flags for r, _ in rows], "batch": pa.array([self.batch] * len(rows), pa.int32()),
            "file": [r.file for r, _ in rows], "line": [r.line for r, _ in rows],
        }))
        if self.store_signatures:  # nothing in dedup reads them back: they are for datasketch users
            self.w.stage("signatures", pa.table({
                "doc_id": ids,
                "minhash": pa.ListArray.from_arrays(np.arange(0, sigs.size + 1, p.num_perm, dtype=np.int32),
                                                    pa.array(sigs.ravel(), pa.uint32())),
            }))

    def _stage_buckets(self, base: int, ids: list[str], sigs: np.ndarray, words: np.ndarray, lead: np.ndarray,
                       anchors: np.ndarray) -> None:
        p = self.p
        linkable = np.flatnonzero(words >= p.min_words)
        if len(linkable):
            band, bucket, doc = bucket_runs(sigs[linkable], lead[linkable] if len(lead) else lead, anchors[linkable], p)
            if not self.held or self.held_docs + len(linkable) > LINK_CHUNK:  # this file begins a new part
                self.part_starts.append(len(self.new_bucket_files))
                self.held, self.held_docs = [], 0
            self.new_bucket_files.append(self.w.stage("buckets", pa.table({  # sorted by (band, bucket) as staged
                "band": band, "bucket": bucket, "doc_id": pa.array(ids, pa.string()).take(pa.array(linkable[doc]))
            }), whole=True))
            self.held.append((band, bucket, (base + linkable[doc]).astype(np.int32)))
            self.held_docs += len(linkable)

    def _stored_hashes(self, ids: list[str]) -> dict[str, int]:
        """Text hash of each of `ids` already in the index."""
        at = self.known.find(pa.array(ids, pa.string()))
        return {ids[i]: int(self.known_hash[at[i]]) for i in np.flatnonzero(at >= 0)}

    def finish(self) -> Summary:
        """Drop replaced versions, link, verify, cluster and commit."""
        w, s = self.w, self.s
        s.replaced = len(self.replaced)
        s.new = len(self.indexed_ids) - s.replaced
        s.indexed = len(self.indexed_ids)
        if self.replaced:
            for t in ("documents", "signatures", "buckets"):
                w.rewrite_without(t, "doc_id", self.replaced, committed_only=True)
            w.rewrite_without("pairs", ("doc_a", "doc_b"), self.replaced)
        self._link()
        t = time.perf_counter()
        self._cluster()
        self.s.timings["cluster"] = time.perf_counter() - t
        return s

    def _link(self) -> None:
        """Candidates, verification and staging of pairs, a part of the batch at a time (up to LINK_CHUNK
        documents: the bucket files of consecutive chunks) against the index and the batch's other parts."""
        w = self.w
        # This batch's own buckets; a replacement also stages rewritten copies of old bucket files, whose
        # documents count as already indexed.
        new = [str(w.root / f) for f in self.new_bucket_files]
        fresh = set(new)
        old = [f for f in w.current_files("buckets") if f not in fresh]
        if not new:
            return
        # every document now indexed: those known before the batch, less the replaced versions, and this batch's
        known = self.known.ids.cast(pa.string())
        if self.replaced:
            known = known.filter(pc.invert(pc.is_in(known, value_set=pa.array(sorted(self.replaced), pa.string()))))
        numbering = Numbering(pa.concat_arrays([known, pa.array(self.indexed_ids, pa.string())]))
        _release_memory()
        timings = self.s.timings
        timings["link"] = timings["verify"] = 0.0
        # The last part's rows are held: it goes first (against the index and the earlier parts), so that they
        # are freed before any other part is read; each earlier part then meets the index and the parts after it
        # but before the last. Either way each pair comes up in exactly one part.
        spans = list(zip(self.part_starts, self.part_starts[1:] + [len(new)]))
        last = spans.pop()[0]
        for i, j in [(last, len(new)), *spans]:
            t = time.perf_counter()
            others = old + (new[:last] if j == len(new) else new[j:last])
            # the held rows are merged and numbered here, not read back (nor kept past the call)
            cands = candidate_pairs(self._held_part(len(known)) if j == len(new) else new[i:j], others, numbering,
                                    self.p.bands, self.p.min_bands, numba.get_num_threads(), self.p.all_bands)
            timings["link"] += time.perf_counter() - t
            self.s.candidates += cands.num_rows
            if self.progress:
                self.progress("candidates", self.s.candidates, None)
            t = time.perf_counter()
            if cands.num_rows:
                self._verify(cands)
            timings["verify"] += time.perf_counter() - t
            _release_memory()

    def _held_part(self, first: int) -> Rows:
        """The last part's rows, merged, documents numbered from `first` (the batch's first document)."""
        held, self.held = self.held, []
        rows = merge_runs(held, self.p.all_bands)
        rows.docs += np.int32(first)
        return rows

    def _verify(self, cands: pa.Table) -> None:
        """Verify candidates a group at a time: each group involves at most VERIFY_DOCS documents, whose texts
        are read for it, so memory stays bounded however many documents the candidates touch."""
        cands = cands.sort_by([("doc_b", "ascending"), ("doc_a", "ascending")])
        ids = pa.concat_arrays([cands["doc_a"].combine_chunks(), cands["doc_b"].combine_chunks()]).unique()
        cuts = group_cuts(positions(cands["doc_a"], ids), positions(cands["doc_b"], ids), len(ids), VERIFY_DOCS)
        for start, end in zip(cuts[:-1], cuts[1:]):
            self._verify_group(cands.slice(start, end - start))

    def _verify_group(self, cands: pa.Table) -> None:
        w, p, s = self.w, self.p, self.s
        ids = pa.concat_arrays([cands["doc_a"].combine_chunks(), cands["doc_b"].combine_chunks()]).unique()
        threads = numba.get_num_threads()
        docs = rows_of(w.current_files("documents"), ["text"], ids, threads)
        pairs = verify_pairs(cands, docs, p)
        pairs = pairs.filter(pc.greater_equal(pairs["score"], KEEP_SCORE))
        s.pairs += pairs.num_rows
        s.linked += int(pc.sum(pairs["linked"]).as_py() or 0)
        pairs = pairs.append_column("batch", pa.array([self.batch] * pairs.num_rows, pa.int32()))
        w.stage("pairs", pairs, sort_by=["doc_a", "doc_b"])

    def _cluster(self) -> None:
        w, s = self.w, self.s
        docs = fetch(
            self.con,
            "SELECT d.doc_id, coalesce(c.cluster_id, -1) AS prev FROM read_parquet($d) d "
            "LEFT JOIN read_parquet($c) c USING (doc_id) ORDER BY d.published_at NULLS LAST, d.doc_id",
            {"d": w.current_files("documents"), "c": w.current_files("clusters")})
        n = docs.num_rows
        s.documents = n
        edges = fetch(
            self.con,
            "SELECT doc_a, doc_b, score FROM read_parquet($p)", {"p": w.current_files("pairs")})
        # one look-up for both ends: each call hashes every document id again
        ends = positions(pa.chunked_array(edges["doc_a"].chunks + edges["doc_b"].chunks, pa.string()), docs["doc_id"])
        ia, ib = ends[:edges.num_rows], ends[edges.num_rows:]
        labels = partition(n, ia, ib, edges["score"].to_numpy(zero_copy_only=False), self.p.verify_threshold,
                           self.p.cluster_threshold)
        res = assign_ids(labels, docs["prev"].to_numpy(), np.arange(n), w.manifest.next_cluster_id)
        self.next_cluster_id = res.next_id
        cid = res.cluster_ids
        # the oldest member (lowest position: first occurrence) is the representative
        _, first, inv, counts = np.unique(cid, return_index=True, return_inverse=True, return_counts=True)
        ids = docs["doc_id"]
        w.replace_all("clusters", pa.table({
            "doc_id": ids, "cluster_id": cid, "size": counts[inv].astype(np.int32),
            "representative": ids.take(pa.array(first[inv])),
        }), sort_by=["cluster_id", "doc_id"])
        s.clusters = int((counts >= 2).sum())
        now = datetime.now()
        if res.events:
            w.stage("cluster_events", pa.table({
                "batch": pa.array([self.batch] * len(res.events), pa.int32()), "at": [now] * len(res.events),
                "kind": [e[0] for e in res.events], "cluster_id": [e[1] for e in res.events],
                "other_ids": [e[2] for e in res.events], "size": [e[3] for e in res.events],
            }))
        s.new_clusters = sum(e[0] == "new" for e in res.events)
        s.merges = sum(e[0] == "merge" for e in res.events)
        s.splits = sum(e[0] == "split" for e in res.events)

    def commit(self, started: datetime, inputs: list[str]) -> None:
        w, s = self.w, self.s
        if s.rejections:
            rj = s.rejections
            w.stage("rejected", pa.table({
                "batch": pa.array([self.batch] * len(rj), pa.int32()), "file": [r.file for r in rj],
                "line": pa.array([r.line for r in rj], pa.int64()), "doc_id": [r.doc_id for r in rj],
                "field": [r.field for r in rj], "reason": [r.reason for r in rj], "detail": [r.detail for r in rj],
            }))
        s.seconds = time.time() - started.timestamp()
        w.stage("batches", pa.table({
            "batch": pa.array([self.batch], pa.int32()), "started_at": [started], "finished_at": [datetime.now()],
            "inputs": [inputs], "read": [s.read], "new": [s.new], "replaced": [s.replaced],
            "unchanged": [s.unchanged], "rejected": [s.rejected], "pairs": [s.pairs], "clusters": [s.clusters],
            "seconds": [s.seconds],
        }))
        w.commit(next_cluster_id=self.next_cluster_id)


def _load_kernels() -> None:
    """Sketch and band one short text: numba starts and loads the compiled kernels from its cache (~0.25 s in a
    new process) while the index is opened and the first chunk read, instead of after. The kernels' argument
    types do not depend on the settings, so the defaults load the same ones as any index's."""
    p = Params()
    sk = sketch_index(pa.chunked_array([pa.array(["numba loads its kernels"])]), p)
    bucket_runs(sk.signatures, sk.lead, sk.anchors, p)


def _release_memory() -> None:
    """Hand memory that reading and verifying left behind back before the next large allocation: Python's
    cyclic garbage, the pages Arrow's allocator keeps (360 MB after reading 100k documents) and the free pages of
    the C heap. The garbage is young: a full collection also walked the ~150k objects of the imported modules,
    0.1 s each time."""
    gc.collect(1)
    pa.default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic collector off during an ingest: while reading, it walked the records again and again (1.2 s
    of 25 s of CPU at 100k), which hold no cycles; while clustering, a full collection walked every object of the
    imported modules (0.1 s with one core idle). `_release_memory` collects the young garbage between stages."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, told to map every array of 4 MB or more on its own, so that freeing it returns it to the system:
    by default the threshold grows with the arrays freed, and NumPy arrays of tens of MB freed in two threads
    were left as holes in the heap. Called when an ingest starts, not on import: a program that only imports
    dedup keeps its allocator settings. None elsewhere (the settings are only an optimisation)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD
        return libc
    except (OSError, AttributeError):
        return None


def ingest(sources: Iterable, index: str | os.PathLike, params: Params | None = None, *,
           requested: dict | None = None, fields: FieldMap = FieldMap(), store_text: bool = True,
           store_signatures: bool = False, strict: bool = False, max_chars: int = DEFAULT_MAX_CHARS,
           progress: Progress | None = None) -> Summary:
    """Ingest one batch — files, directories and/or Arrow tables — into the index at `index` (created if
    missing) and commit it atomically. `params` (all settings) or `requested` (only those the caller chose
    explicitly) must agree with an existing index. `store_signatures` keeps each document's MinHash values in
    `signatures` (for use with datasketch; 0.7 KB a document). Raises `StrictError` in strict mode at the first
    bad row."""
    started = datetime.now()
    sources = list(sources)
    inputs = [os.fsdecode(s).encode("utf-8", "replace").decode("utf-8")
              if not isinstance(s, (pa.Table, pa.RecordBatch)) else "<table>" for s in sources]
    _libc()
    # chunk k is indexed in `worker` while k + 1 is read; first, numba loads the kernels there
    worker = ThreadPoolExecutor(max_workers=1)
    loaded = worker.submit(_load_kernels)
    with worker, Writer(index, params=params, requested=requested) as w:
        job = _Batch(w, store_text, store_signatures, strict, progress)
        job.s.stale_lock = w.stale_holder
        try:
            with _collector_paused():
                t = time.perf_counter()
                pending = None
                for chunk in _chunks(_records(sources, fields, max_chars), CHUNK):
                    recs, rejected = job.accept(chunk)
                    if pending is not None:
                        job.record(pending.result())
                    job.record(rejected)
                    pending = worker.submit(job.index, recs)
                if pending is not None:
                    job.record(pending.result())
                loaded.result()
                job.wait_for_writes()
                job.s.timings["read+sketch+store"] = time.perf_counter() - t
                summary = job.finish()
                t = time.perf_counter()
                job.commit(started, inputs)
                summary.timings["commit"] = time.perf_counter() - t
        except BaseException:
            for pool in (worker, job.writer):  # nothing may land after the abort
                pool.shutdown(wait=True, cancel_futures=True)
            w.abort()
            raise
        finally:
            job.writer.shutdown(wait=False)
    summary.seconds = time.time() - started.timestamp()
    return summary
