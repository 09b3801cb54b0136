"""Stage 4: LSH banding.

Band i covers signature rows [i*r, (i+1)*r). Its bucket key is the high half of a 64-bit hash of those r values:
    h = i;  for v in band: h = splitmix64(h ^ v);  key = h >> 32
(`bucket_key` below is the reference). 32 bits are plenty: a pair must share `min_bands` bands to become a
candidate, and a 100k batch meets a 1M index in ~4,500 chance collisions of 32-bit keys (192 bands × 10^11 / 2^32)
next to its ~40 M single-band matches of real minima; 32-bit keys halve the bucket table (sorted, they
delta-encode to ~2.5 bytes a row). Two documents share a bucket in some band with probability
1 - (1 - J^r)^b, J being their Jaccard similarity: the candidate stage.

Bands 0..b-1 come from the signature of the whole text, bands b..2b-1 from the signature of its lead (first
`lead_words` words): an abridged copy keeps the beginning of the story, so its lead stays similar even when its
whole-text Jaccard is low. Bands 2b.. (`anchor_bands` of `anchor_rows` rows) come from the signature of its
anchors, the stems that are not common in news (names, places, figures, rarer words): a rewrite replaces most
of a story's word pairs but keeps its anchors.

A band whose r minima are all held by one and the same shingle is *degenerate* and gets no bucket: it would act
as a one-row band, and a common shingle ("west germ") would then put a sizeable share of the corpus into one
bucket, whose pairs grow with the square of the index. The affine32 permutations are bijections (a_k odd), so the
shingle behind a minimum v is known from the signature alone: fmix32(h) = (v - b_k) * a_k^-1 mod 2^32.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from dedup.params import Params
from dedup.sketch import permutations

_M64 = (1 << 64) - 1


def _splitmix64_py(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def bucket_key(band: int, values: list[int]) -> int:
    """Reference bucket key of one band (plain Python, to document and test the kernel)."""
    h = band
    for v in values:
        h = _splitmix64_py(h ^ int(v))
    return h >> 32


@numba.njit(cache=True, nogil=True, inline="always")
def _splitmix64(x: np.uint64) -> np.uint64:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def inverse_multipliers(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a^-1 mod 2^32, b) of the signature's permutations, to recover the shingle behind each minimum."""
    a, b = permutations(num_perm, seed)
    return np.array([pow(int(x), -1, 1 << 32) for x in a], dtype=np.uint32), b


def degenerate(values: list[int], a_inv: list[int], b: list[int]) -> bool:
    """Reference: are all minima of one band held by the same shingle?"""
    pre = {((int(v) - int(bk)) * int(ai)) & 0xFFFFFFFF for v, ai, bk in zip(values, a_inv, b)}
    return len(pre) == 1


@numba.njit(cache=True, nogil=True)
def band_keys(sigs: np.ndarray, bands: int, rows: int, a_inv: np.ndarray, b: np.ndarray, first_band: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """(n_docs × bands) uint32 bucket keys of a signature matrix (band numbers start at `first_band`) and
    whether each band is usable (not degenerate)."""
    n = sigs.shape[0]
    out = np.empty((n, bands), dtype=np.uint32)
    ok = np.empty((n, bands), dtype=np.bool_)
    m = np.uint64(0xFFFFFFFF)
    for d in range(n):
        for i in range(bands):
            h = np.uint64(first_band + i)
            first = ((np.uint64(sigs[d, i * rows]) - np.uint64(b[i * rows])) * np.uint64(a_inv[i * rows])) & m
            same = True
            for j in range(i * rows, (i + 1) * rows):
                h = _splitmix64(h ^ np.uint64(sigs[d, j]))
                if ((np.uint64(sigs[d, j]) - np.uint64(b[j])) * np.uint64(a_inv[j])) & m != first:
                    same = False
            out[d, i] = h >> np.uint64(32)
            # an empty signature (no anchors at all) is no bucket either: it would hold every such text
            ok[d, i] = not same and sigs[d, i * rows] != 0xFFFFFFFF
    return out, ok


def jaccard_estimate(shared: np.ndarray, p: Params) -> np.ndarray:
    """MinHash estimate of two documents' Jaccard similarity from the number of whole-text bands they share: a band
    matches with probability J^r, so J ≈ (shared / b)^(1/r). Its spread is close to that of the full signature's
    estimate (at J = 0.65 with 96 × 2 bands: ±0.039 against ±0.034), and it costs nothing to store; degenerate
    bands, left out of the buckets, are counted as not shared."""
    return (np.asarray(shared, np.float64) / p.bands) ** (1.0 / p.rows)


def bucket_runs(sigs: np.ndarray, lead: np.ndarray, anchors: np.ndarray, p: Params
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(band, bucket, document) of the bucket rows of documents with whole-text and (if any) lead and anchor
    signatures — a document is its row in `sigs` — degenerate bands left out, sorted by (band, bucket) as the
    bucket files are stored and merged."""
    a_inv, b = inverse_multipliers(p.num_perm, p.seed)
    parts = [(sigs, 0, p.bands, p.rows)] + ([(lead, p.bands, p.bands, p.rows)] if len(lead) else [])
    if p.anchor_bands:
        parts.append((anchors, 2 * p.bands, p.anchor_bands, p.anchor_rows))
    band_col, key_col, doc_col = [], [], []
    for s, first, bands, rows in parts:
        keys, ok = band_keys(s, bands, rows, a_inv, b, first)
        for i in range(bands):  # one small sort per band instead of a two-key sort of all rows
            docs = np.flatnonzero(ok[:, i])
            docs = docs[np.argsort(keys[docs, i])]
            band_col.append(np.full(len(docs), first + i, dtype=np.int16))
            key_col.append(keys[docs, i])
            doc_col.append(docs)
    return np.concatenate(band_col), np.concatenate(key_col), np.concatenate(doc_col)


def bucket_rows(ids: np.ndarray | list[str] | pa.Array, sigs: np.ndarray, lead: np.ndarray, anchors: np.ndarray,
                p: Params) -> pa.Table:
    """The `buckets` rows (band, bucket, doc_id) of `bucket_runs`, sorted by (band, bucket)."""
    band, bucket, doc = bucket_runs(sigs, lead, anchors, p)
    return pa.table({"band": band, "bucket": bucket, "doc_id": _strings(ids).take(pa.array(doc))})


def _strings(ids: np.ndarray | list[str] | pa.Array) -> pa.Array:
    return ids if isinstance(ids, pa.Array) else pa.array(ids, pa.string())
