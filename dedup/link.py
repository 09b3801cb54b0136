"""Stage 6: candidate pairs — documents sharing LSH buckets in at least `min_bands` bands.

Only pairs with at least one document of the current batch are generated: new × everything already indexed and
new × new. Over k nightly batches this yields exactly the pairs a one-shot ingest would, which is what makes
incremental ingest equal to a full rebuild.

A batch is linked a *part* at a time: the part's bucket rows are held in memory, sorted by (band, bucket), and
every other bucket file — sorted the same way when it was written — is merged against them band by band. Each
older row is read once per part and only compared with the part's keys of its own band, so a nightly batch
costs one sequential pass over the index's bucket keys (a hash join in DuckDB spent most of its time building
and probing tables for the ~40 M single-band collisions a 100k batch has with a 1M index). Documents are
numbered by their position among all ids (`Numbering`), so pairs are counted as integers; their ids are looked
up only for the pairs that share enough bands.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup.chunked import run_chunked
from dedup.normalize import utf8_buffers
from dedup.store import whole_documents

COUNT_SPLIT = 1 << 16  # a part's own matches are counted in several threads from this many on
MATCH_ROOM = 1 << 21  # matches a file's merge has room for before its buffers grow
MARKS_PER_MATCH = 4  # `_count` marks partners in an array over their numbers up to this many numbers a match


@dataclass
class Rows:
    """Bucket rows sorted by (band, bucket); `offsets[b]:offsets[b + 1]` are band b's rows."""

    offsets: np.ndarray
    keys: np.ndarray
    docs: np.ndarray


class Numbering:
    """Document numbers: positions in a fixed array of ids. The ids are sorted once and each lookup is a binary
    search over their UTF-8 bytes (`pyarrow.compute.index_in` hashes the whole set again on every call, which
    cost 0.15 s per bucket file against a 1M-document index)."""

    def __init__(self, ids: pa.Array | pa.ChunkedArray):
        ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        self.ids = ids
        self.order = pc.sort_indices(ids).to_numpy().astype(np.int32)
        self.offsets, self.data = utf8_buffers(ids.take(pa.array(self.order)))

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, values: pa.Array) -> np.ndarray:
        """The number of each of `values`, -1 for those not among the ids."""
        found = _search(self.offsets, self.data, *utf8_buffers(values))
        return np.where(found >= 0, self.order[found], -1) if len(self.order) else found

    def numbers(self, values: pa.Array) -> np.ndarray:
        """The number of each of `values` (all must be among the ids)."""
        found = self.find(values)
        if len(found) and found.min() < 0:
            raise KeyError("document id missing from the index")
        return found


@numba.njit(cache=True, nogil=True)
def _search(offsets, data, q_offsets, q_data):
    """Index of each query string in the sorted strings (offsets, data), or -1; bytewise order, as Arrow sorts."""
    n = offsets.shape[0] - 1
    out = np.empty(q_offsets.shape[0] - 1, np.int64)
    for q in range(out.shape[0]):
        q0, q1 = q_offsets[q], q_offsets[q + 1]
        lo, hi = 0, n
        while lo < hi:  # first string >= query
            mid = (lo + hi) // 2
            s0, s1 = offsets[mid], offsets[mid + 1]
            c = 0
            k = 0
            while c == 0 and k < s1 - s0 and k < q1 - q0:
                c = np.int64(data[s0 + k]) - np.int64(q_data[q0 + k])
                k += 1
            if c == 0:
                c = (s1 - s0) - (q1 - q0)
            if c < 0:
                lo = mid + 1
            else:
                hi = mid
        out[q] = -1
        if lo < n and offsets[lo + 1] - offsets[lo] == q1 - q0:
            same = True
            for k in range(q1 - q0):
                if data[offsets[lo] + k] != q_data[q0 + k]:
                    same = False
                    break
            if same:
                out[q] = lo
    return out


def read_rows(path: str, numbering: Numbering) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(band, bucket, document number) of one bucket file, in file order."""
    t = pq.read_table(path, columns=["band", "bucket", "doc_id"], read_dictionary=["doc_id"])
    ids = t["doc_id"].combine_chunks()
    if not isinstance(ids, pa.DictionaryArray):  # an empty file
        return np.empty(0, np.int16), np.empty(0, np.uint32), np.empty(0, np.int32)
    numbers = numbering.numbers(ids.dictionary).astype(np.int32)
    return (t["band"].to_numpy(), t["bucket"].to_numpy(),
            numbers[ids.indices.to_numpy(zero_copy_only=False)])


def part_rows(paths: list[str], numbering: Numbering, n_bands: int, threads: int = 2) -> Rows:
    """The rows of a part's bucket files (each sorted by band and bucket), merged into one such order. Files are
    read in parallel threads and copied into place; bands are merged in parallel: a 100k-document part (19 M rows)
    holds ~500 MB at its peak, half of what concatenating and permuting took."""
    starts = np.zeros(len(paths) + 1, np.int64)
    np.cumsum([pq.ParquetFile(p).metadata.num_rows for p in paths], out=starts[1:])
    band, keys, docs = np.empty(starts[-1], np.int16), np.empty(starts[-1], np.uint32), np.empty(starts[-1], np.int32)

    def load(i: int) -> None:
        b, k, d = read_rows(paths[i], numbering)
        band[starts[i]:starts[i + 1]], keys[starts[i]:starts[i + 1]], docs[starts[i]:starts[i + 1]] = b, k, d

    with ThreadPoolExecutor(max_workers=threads) as ex:  # largest first: the last file read is a small one
        list(ex.map(load, np.argsort(-np.diff(starts), kind="stable").tolist()))
    return Rows(*_merge_runs(band, keys, docs, starts, n_bands))


def merge_runs(runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_bands: int) -> Rows:
    """Runs of bucket rows (band, key, document number), each sorted by (band, key), merged into one `Rows`."""
    starts = np.zeros(len(runs) + 1, np.int64)
    np.cumsum([len(r[0]) for r in runs], out=starts[1:])
    band, keys, docs = (np.concatenate([r[k] for r in runs]) for k in range(3))
    return Rows(*_merge_runs(band, keys, docs.astype(np.int32, copy=False), starts, n_bands))


def _merge_runs(band: np.ndarray, keys: np.ndarray, docs: np.ndarray, starts: np.ndarray, n_bands: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band offsets, keys and documents of k runs (starts[i]:starts[i + 1]), each sorted by (band, key), merged
    into one sorted run: each band's k segments are merged pairwise (log k passes), bands in parallel."""
    seg, offsets = _run_segments(band, starts, n_bands)
    out_keys, out_docs = np.empty(offsets[-1], np.uint32), np.empty(offsets[-1], np.int32)
    run_chunked(_merge_bands, n_bands, seg, offsets, keys, docs, out_keys, out_docs)
    return offsets, out_keys, out_docs


@numba.njit(cache=True, nogil=True)
def _run_segments(band, starts, n_bands):
    """(seg, offsets): seg[r, b] the first row of band b in run r, offsets[b] the first of band b merged."""
    k = starts.shape[0] - 1
    seg = np.empty((k, n_bands + 1), np.int64)  # a search: a scan of every row took 20-40 ms of one thread while
    for r in range(k):                           # the others waited
        seg[r] = starts[r] + np.searchsorted(band[starts[r]:starts[r + 1]], np.arange(n_bands + 1))
    offsets = np.zeros(n_bands + 1, np.int64)
    for b in range(n_bands):
        offsets[b + 1] = offsets[b] + (seg[:, b + 1] - seg[:, b]).sum()
    return seg, offsets


@numba.njit(cache=True, nogil=True)
def _merge_bands(lo, hi, seg, offsets, keys, docs, out_keys, out_docs):
    """Bands lo..hi-1 of the runs (`_run_segments`), each merged into its place in (out_keys, out_docs)."""
    k = seg.shape[0]
    for b in range(lo, hi):
        start, n = offsets[b], offsets[b + 1] - offsets[b]
        ak, ad = out_keys[start:start + n], out_docs[start:start + n]
        bk, bd = np.empty(n, np.uint32), np.empty(n, np.int32)
        bounds = np.empty(k + 1, np.int64)
        pos = 0
        for r in range(k):
            bounds[r] = pos
            m = seg[r, b + 1] - seg[r, b]
            ak[pos:pos + m], ad[pos:pos + m] = keys[seg[r, b]:seg[r, b + 1]], docs[seg[r, b]:seg[r, b + 1]]
            pos += m
        bounds[k] = n
        _merge_band(ak, ad, bk, bd, bounds, k)


@numba.njit(cache=True, nogil=True)
def _merge_band(ak, ad, bk, bd, bounds, runs):
    """Merge the sorted runs bounds[j]:bounds[j + 1] of (ak, ad) into one, pairwise, using (bk, bd) as scratch."""
    n = ak.shape[0]
    in_a = True  # where the runs are now
    while runs > 1:
        merged = 0
        for j in range(0, runs, 2):
            x, xe = bounds[j], bounds[j + 1]
            ye = bounds[j + 2] if j + 1 < runs else xe
            y, o = xe, x
            while x < xe or y < ye:
                take_x = y >= ye or (x < xe and (ak[x] <= ak[y] if in_a else bk[x] <= bk[y]))
                src = x if take_x else y
                if in_a:
                    bk[o], bd[o] = ak[src], ad[src]
                else:
                    ak[o], ad[o] = bk[src], bd[src]
                if take_x:
                    x += 1
                else:
                    y += 1
                o += 1
            bounds[merged] = bounds[j]
            merged += 1
        bounds[merged] = n
        runs, in_a = merged, not in_a
    if not in_a:
        ak[:] = bk
        ad[:] = bd


@numba.njit(cache=True, nogil=True)
def _merge(offsets, pkeys, pdocs, fband, fkeys, fdocs, whole, i, m, out_a, out_b):
    """(smaller document number, 2 × larger + 1 if the band is a lead band) for every key a part row shares with
    a file row, band by band (bands below `whole` are whole-text bands), from file row i on, written from out[m]
    on: a pair is counted under one order, whichever side found it. Returns (matches written, -1), or (those of the
    bands before it, the first row of the band) where the output has no room for a band's matches."""
    n = fkeys.shape[0]
    n_bands = offsets.shape[0] - 1
    while i < n:
        b = fband[i]
        j = i
        while j < n and fband[j] == b:
            j += 1
        if 0 <= b < n_bands:
            band_start = m
            lead = 1 if b >= whole else 0
            x, xe, y = offsets[b], offsets[b + 1], i
            while x < xe and y < j:
                if pkeys[x] < fkeys[y]:
                    x += 1
                elif pkeys[x] > fkeys[y]:
                    y += 1
                else:
                    k = fkeys[y]
                    x2, y2 = x, y
                    while x2 < xe and pkeys[x2] == k:
                        x2 += 1
                    while y2 < j and fkeys[y2] == k:
                        y2 += 1
                    if m + (x2 - x) * (y2 - y) > out_a.shape[0]:
                        return band_start, i
                    for u in range(x, x2):
                        for v in range(y, y2):
                            out_a[m] = min(pdocs[u], fdocs[v])
                            out_b[m] = 2 * max(pdocs[u], fdocs[v]) + lead
                            m += 1
                    x, y = x2, y2
        i = j
    return m, -1


def _self_merge(offsets: np.ndarray, keys: np.ndarray, docs: np.ndarray, whole: int) -> tuple[np.ndarray, np.ndarray]:
    """(smaller document number, 2 × larger + 1 if a lead band) for every two rows of the part with one key in
    one band. Each band's matches are counted first (a pass over its keys), then written, bands in parallel."""
    n_bands = offsets.shape[0] - 1
    start = np.zeros(n_bands + 1, np.int64)
    run_chunked(_count_band_pairs, n_bands, offsets, keys, start)
    np.cumsum(start, out=start)
    out_a, out_b = np.empty(start[-1], np.int32), np.empty(start[-1], np.int32)
    run_chunked(_band_pairs, n_bands, offsets, keys, docs, whole, start, out_a, out_b)
    return out_a, out_b


@numba.njit(cache=True, nogil=True)
def _count_band_pairs(lo, hi, offsets, keys, start):
    """start[band + 1] = the number of pairs of rows with one key in the band, for bands lo..hi-1."""
    for band in range(lo, hi):
        i, end, m = offsets[band], offsets[band + 1], 0
        while i < end:
            j = i + 1
            while j < end and keys[j] == keys[i]:
                j += 1
            m += (j - i) * (j - i - 1) // 2
            i = j
        start[band + 1] = m


@numba.njit(cache=True, nogil=True)
def _band_pairs(lo, hi, offsets, keys, docs, whole, start, out_a, out_b):
    """The pairs of bands lo..hi-1, each band's from start[band] on (see `_self_merge`)."""
    for band in range(lo, hi):
        lead = 1 if band >= whole else 0
        i, end, m = offsets[band], offsets[band + 1], start[band]
        while i < end:
            j = i + 1
            while j < end and keys[j] == keys[i]:
                j += 1
            for u in range(i, j):
                for v in range(u + 1, j):
                    out_a[m] = min(docs[u], docs[v])
                    out_b[m] = 2 * max(docs[u], docs[v]) + lead
                    m += 1
            i = j


def _matches(*args) -> tuple[np.ndarray, np.ndarray]:
    """`_merge` of a file with room for its matches: a scratch buffer, twice as large whenever the kernel stops at
    a band it has no room for, and it goes on from that band rather than walking the whole file again; exact
    copies at the end (slices of the scratch buffers would keep them alive, 16 MB a file)."""
    a, b = np.empty(MATCH_ROOM, np.int32), np.empty(MATCH_ROOM, np.int32)
    m, resume = _merge(*args, 0, 0, a, b)
    while resume >= 0:
        a2, b2 = np.empty(2 * len(a), np.int32), np.empty(2 * len(a), np.int32)
        a2[:m], b2[:m] = a[:m], b[:m]
        a, b = a2, b2
        m, resume = _merge(*args, resume, m, a, b)
    return a[:m].copy(), b[:m].copy()


@numba.njit(cache=True, nogil=True)
def _count(a, b, min_bands, marks_per_match=MARKS_PER_MATCH):
    """Pairs (a, b >> 1) that occur at least `min_bands` times, with how many of those are whole-text bands
    (b even). Matches are grouped by whichever end spans fewer document numbers (against an older file, the
    batch's end: counting arrays of the batch's size, not of the index's), then each group's partners are
    counted: in an array over the other end's numbers where it spans up to `marks_per_match` times the matches
    (at most twice the matches' own memory; marking beats sorting each group's few dozen partners), else by
    sorting them."""
    if a.shape[0] == 0:
        return np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.int16)
    big = b >> 1
    amin, bmin = a.min(), big.min()
    by_b = big.max() - bmin < a.max() - amin
    lo, other_lo = (bmin, amin) if by_b else (amin, bmin)
    n = (big.max() if by_b else a.max()) - lo + 1
    span = (a.max() if by_b else big.max()) - other_lo + 1
    start = np.zeros(n + 1, np.int64)
    for k in range(a.shape[0]):
        start[(big[k] if by_b else a[k]) - lo + 1] += 1
    for d in range(n):
        start[d + 1] += start[d]
    fill = start[:-1].copy()
    partners = np.empty(a.shape[0], np.int32)  # the other end, times two, plus one for a lead band
    for k in range(a.shape[0]):
        g = (big[k] if by_b else a[k]) - lo
        partners[fill[g]] = 2 * a[k] + (b[k] & 1) if by_b else b[k]
        fill[g] += 1
    size = a.shape[0] // max(min_bands, 1) + 1  # a pair takes min_bands of the entries
    out_a, out_b, out_w = np.empty(size, np.int32), np.empty(size, np.int32), np.empty(size, np.int16)
    marks = span <= marks_per_match * a.shape[0]
    seen = np.zeros(span if marks else 0, np.uint16)  # matches of each partner in the group, whole-text ones
    whole = np.zeros(span if marks else 0, np.uint16)
    m = 0
    for d in range(n):
        if start[d + 1] - start[d] < min_bands:
            continue
        group = partners[start[d]:start[d + 1]]
        if marks:  # the partners reaching min_bands, in order, then the marks cleared
            found = []
            for p in group:
                o = (p >> 1) - other_lo
                seen[o] += 1
                whole[o] += 1 - (p & 1)
                if seen[o] == min_bands:
                    found.append(o)
            found.sort()
            for o in found:
                out_a[m], out_b[m], out_w[m] = (o + other_lo, d + lo, whole[o]) if by_b else (d + lo, o + other_lo,
                                                                                              whole[o])
                m += 1
            for p in group:
                seen[(p >> 1) - other_lo] = whole[(p >> 1) - other_lo] = 0
            continue
        group = np.sort(group)
        i = 0
        while i < group.shape[0]:
            j, w = i, 0
            while j < group.shape[0] and group[j] >> 1 == group[i] >> 1:
                w += 1 - (group[j] & 1)
                j += 1
            if j - i >= min_bands:
                other = group[i] >> 1
                out_a[m], out_b[m], out_w[m] = (other, d + lo, w) if by_b else (d + lo, other, w)
                m += 1
            i = j
    return out_a[:m], out_b[:m], out_w[:m]


def _by_smaller_end(a: np.ndarray, b: np.ndarray, parts: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Matches (a = smaller document number) in `parts` groups by ranges of a, to be counted in parallel: all
    matches of a pair share a, so each pair is counted whole in one group."""
    if parts < 2 or len(a) < COUNT_SPLIT:
        return [(a, b)]
    lo = a.min()
    ends = np.cumsum(np.bincount(a - lo))  # matches up to each document: groups of about equal size
    cuts = [lo, *(lo + np.searchsorted(ends, len(a) * np.arange(1, parts) // parts, side="right")), a.max() + 1]
    out = []
    for g in range(parts):
        inside = (a >= cuts[g]) & (a < cuts[g + 1])
        out.append((a[inside], b[inside]))
    return out


def _find(part: Rows, other_files: list[str], numbering: Numbering, bands: int, min_bands: int, threads: int,
          rows: Callable[[np.ndarray], np.ndarray] | None = None
          ) -> tuple[list[tuple[np.ndarray, ...]], list[tuple[np.ndarray, np.ndarray]]]:
    """Matches of the part with itself and with each other file (the part is freed on return): (pairs already
    counted, matches still to count). A part, and a file that holds all rows of its documents, sees every band
    its pairs share, so their matches are counted at once and only pairs sharing `min_bands` are kept: a 100k
    part meets a 1M index in ~40 M single-band collisions, and holding them all took ~300 MB."""

    def against(path: str) -> tuple[bool, tuple[np.ndarray, ...]]:
        band, keys, docs = read_rows(path, numbering)
        if rows is not None:
            mine = rows(docs)
            if not mine.all():
                band, keys, docs = band[mine], keys[mine], docs[mine]
        found = _matches(part.offsets, part.keys, part.docs, band, keys, docs, bands)
        return (True, _count(*found, min_bands)) if whole_documents(path) else (False, found)

    with ThreadPoolExecutor(max_workers=threads) as ex:  # reading, merging and counting release the GIL
        # the part's own matches (numba's threads), then counted in the pool alongside the files
        own = [ex.submit(_count, a, b, min_bands) for a, b in _by_smaller_end(
            *_self_merge(part.offsets, part.keys, part.docs, bands), threads)]
        files = ex.map(against, other_files)
        done = [*((True, c.result()) for c in own), *files]
    return [m for whole, m in done if whole], [m for whole, m in done if not whole]


def candidate_pairs(part: list[str] | Rows, other_files: list[str], numbering: Numbering, bands: int,
                    all_bands: int, min_bands: int = 1, threads: int = 2,
                    keep: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                    rows: Callable[[np.ndarray], np.ndarray] | None = None) -> pa.Table:
    """Distinct (doc_a < doc_b) pairs sharing buckets in at least `min_bands` bands, with `bands`: how many of
    them are whole-text bands (band numbers below `bands`; lead and anchor bands are `bands..all_bands-1`).
    One document's
    buckets are in `part` (a part of this batch: its files, or their rows already merged), the other's in
    `other_files` (everything already indexed plus the batch's parts not yet linked) or in the part itself.
    Walking a batch part by part, each pair comes up exactly once. Requiring several shared bands is a property
    of the pair alone, so it keeps incremental ingest equal to a one-shot ingest, and it removes the many pairs of
    unrelated texts that meet in one band by chance. `numbering` knows every document id the files name. `keep`
    (document numbers a, b -> mask) drops pairs by another property of the pair (a time window's); `rows`
    (document numbers -> mask) the rows of `other_files` whose documents `keep` would drop with any of the part's."""
    if not isinstance(part, Rows):
        part = part_rows(part, numbering, all_bands, threads)
    counted, found = _find(part, other_files, numbering, bands, min_bands, threads, rows)
    del part  # freed now, unless the caller holds it
    if found:  # files of older compactions mix parts of documents: their matches are counted together
        lo, hi = np.concatenate([a for a, _ in found]), np.concatenate([b for _, b in found])
        del found
        counted.append(_count(lo, hi, min_bands))
    ia, ib, shared = (np.concatenate([c[k] for c in counted]) for k in range(3))
    if keep is not None:
        mask = keep(ia, ib)
        ia, ib, shared = ia[mask], ib[mask], shared[mask]
    ids_a, ids_b = numbering.ids.take(pa.array(ia)), numbering.ids.take(pa.array(ib))
    first = pc.less(ids_a, ids_b)
    return pa.table({"doc_a": pc.if_else(first, ids_a, ids_b), "doc_b": pc.if_else(first, ids_b, ids_a),
                     "bands": shared})
