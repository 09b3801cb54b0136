"""Stage 3: MinHash signatures, bit-identical to datasketch 2.x `MinHash(num_perm, seed, hashfunc=xxh32_intdigest)`
with its default `affine32` scheme: each shingle hash h is pre-mixed with the MurmurHash3 finalizer, permuted as
a_k * h + b_k mod 2^32 and the minimum kept per permutation. The permutation parameters are drawn as datasketch
draws them; they are part of the index format, so they are generated here rather than taken from whichever
datasketch is installed (a test compares them with datasketch's).

`sketch_batch` is the hot path: one numba kernel runs normalize → shingle → hash → permute per document,
in a pool of threads with the GIL released (`dedup.chunked`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
import pyarrow as pa

from dedup.chunked import run_chunked
from dedup.normalize import fast_fold, fast_fold_table, fold_batch, pack_batch, squeeze, utf8_decode, word_char
from dedup.shingle import KINDS, NO_ANCHORS, STOP_HASHES, common_hashes, shingle_hashes, whole_and_lead

if TYPE_CHECKING:
    from dedup.params import Params

EMPTY = np.uint32(0xFFFFFFFF)


@functools.lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) uint32 arrays of datasketch's affine32 permutations: a_k odd (a bijection of 32-bit values), b_k any,
    in the order datasketch 2.x draws them from `RandomState(seed)`. Importing datasketch instead cost every
    ingest ~0.1 s with one core idle."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


@numba.njit(cache=True, nogil=True, inline="always")
def fmix32(h: np.uint64) -> np.uint64:
    m = np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & m
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & m
    h ^= h >> np.uint64(16)
    return h


@numba.njit(cache=True, nogil=True)
def minhash(hashes: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out[k] = min(out[k], min over hashes of (a[k] * fmix32(h) + b[k]) mod 2^32): `out` starts EMPTY for a new
    signature, or holds the minima of the document's other shingles."""
    k = a.shape[0]
    m = np.uint64(0xFFFFFFFF)
    acc = np.empty(k, dtype=np.uint64)
    for j in range(k):
        acc[j] = out[j]
    for h in hashes:
        hv = fmix32(np.uint64(h))
        for j in range(k):
            acc[j] = min(acc[j], (np.uint64(a[j]) * hv + np.uint64(b[j])) & m)
    for j in range(k):
        out[j] = acc[j]


@numba.njit(cache=True, nogil=True)
def _sketch_kernel(lo, hi, buf, offsets, fold, table, kind, size, stop, lead_words, common, a, b, sigs, lead_sigs,
                   anchor_sigs, n_words, n_shingles, slow):
    """Sketch the texts lo..hi-1 of (buf, offsets). With a `fold` table (`fast_fold_table`) texts come unfolded,
    and a text that needs CPython's folding is only marked in `slow`; with an empty one they come folded. The
    anchors' MinHash takes the first `anchor_sigs.shape[1]` permutations (none: no anchors)."""
    k_anchor = anchor_sigs.shape[1]
    for d in range(lo, hi):
        cps = utf8_decode(buf[offsets[d]:offsets[d + 1]])
        if fold.shape[0] and not fast_fold(cps, fold):
            slow[d] = True
            continue
        norm = np.empty(cps.shape[0], dtype=np.uint32)
        n = squeeze(cps, table, norm)
        words = 0
        for i in range(n):
            if norm[i] == 32:
                words += 1
        n_words[d] = words + 1 if n > 0 else 0
        lead_sigs[d] = EMPTY
        sigs[d] = EMPTY
        if lead_words > 0:
            hashes, lead, in_lead, anchor = whole_and_lead(norm, n, kind, size, stop, lead_words, common, k_anchor > 0)
            minhash(lead, a, b, lead_sigs[d])
            if in_lead.shape[0]:  # the lead's shingles are the whole text's: only the others are left to add
                sigs[d] = lead_sigs[d]
                minhash(hashes[~in_lead], a, b, sigs[d])
            else:
                minhash(hashes, a, b, sigs[d])
        else:
            hashes, anchor = shingle_hashes(norm, n, kind, size, stop, common, k_anchor > 0)
            minhash(hashes, a, b, sigs[d])
        if k_anchor:
            anchor_sigs[d] = EMPTY
            minhash(anchor, a[:k_anchor], b[:k_anchor], anchor_sigs[d])
        n_shingles[d] = hashes.shape[0]


@dataclass
class Sketches:
    """Per-document output of the sketch stage for one batch."""

    signatures: np.ndarray       # (n, num_perm) uint32: MinHash of all shingles
    lead: np.ndarray             # (n, num_perm) uint32: MinHash of the lead's shingles (empty if lead_words=0)
    anchors: np.ndarray          # (n, anchor permutations) uint32: MinHash of the anchors (n × 0 without them)
    words: np.ndarray            # int32: tokens after normalization
    shingles: np.ndarray         # int32: shingle positions (0 = nothing to fingerprint)


def sketch_batch(texts: list[str] | pa.Array | pa.ChunkedArray, shingle: str, size: int, num_perm: int, seed: int,
                 lead_words: int = 0, anchor_perm: int = 0, common_stems: str = "") -> Sketches:
    """Signatures of a batch of raw texts (and of their leads when `lead_words` > 0, and of their anchors over the
    first `anchor_perm` permutations, with the common stems of version `common_stems`, when `anchor_perm` > 0).

    A text with no shingles keeps the all-0xFFFFFFFF "empty" signature and a shingle count of 0.
    """
    a, b = permutations(num_perm, seed)
    n = len(texts)
    sigs = np.empty((n, num_perm), dtype=np.uint32)
    lead = np.empty((n if lead_words else 0, num_perm), dtype=np.uint32)
    anchor = np.full((n, anchor_perm), EMPTY, dtype=np.uint32)
    common = common_hashes(common_stems, size) if anchor_perm else NO_ANCHORS
    n_words = np.zeros(n, dtype=np.int32)
    n_shingles = np.zeros(n, dtype=np.int32)
    slow = np.zeros(n, dtype=np.bool_)
    if n:
        # most texts are folded by the kernel itself (fast_fold_table); the others by CPython, then sketched apart
        args = (word_char(), KINDS[shingle], size, STOP_HASHES, lead_words, common, a, b)
        start = 0
        for part in texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]:  # each with its own buffers
            at = slice(start, start + len(part))
            run_chunked(_sketch_kernel, len(part), *pack_batch(part), fast_fold_table(), *args, sigs[at],
                        lead[at] if lead_words else sigs[at], anchor[at], n_words[at], n_shingles[at], slow[at])
            start += len(part)
        redo = np.flatnonzero(slow)
        if len(redo):
            part = Sketches(sigs[redo], lead[redo] if lead_words else lead, anchor[redo], n_words[redo],
                            n_shingles[redo])
            slow_texts = [texts[i] if isinstance(texts, list) else texts[i].as_py() for i in redo]
            run_chunked(_sketch_kernel, len(redo), *fold_batch(slow_texts), np.empty(0, np.uint32), *args,
                        part.signatures, part.lead if lead_words else part.signatures, part.anchors, part.words,
                        part.shingles, slow[redo])
            sigs[redo], anchor[redo], n_words[redo], n_shingles[redo] = (part.signatures, part.anchors, part.words,
                                                                         part.shingles)
            if lead_words:
                lead[redo] = part.lead
    return Sketches(sigs, lead, anchor, n_words, n_shingles)


def sketch_index(texts: list[str] | pa.Array | pa.ChunkedArray, p: Params) -> Sketches:
    """`sketch_batch` with an index's parameters: every signature its bucket rows come from."""
    return sketch_batch(texts, p.shingle, p.shingle_size, p.num_perm, p.seed, p.lead_words,
                        p.anchor_bands * p.anchor_rows, p.common_stems)


def reference_signature(text: str, shingle: str, size: int, num_perm: int, seed: int, lead_words: int = 0
                        ) -> np.ndarray:
    """The same signature computed by datasketch itself (slow; for tests and users' cross-checks)."""
    import xxhash
    from datasketch import MinHash

    from dedup.shingle import shingles

    m = MinHash(num_perm=num_perm, seed=seed, hashfunc=xxhash.xxh32_intdigest)
    m.update_batch(shingles(text, shingle, size, lead_words))
    return m.hashvalues
