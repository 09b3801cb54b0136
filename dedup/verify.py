"""Stage 7: verification of candidate pairs.

LSH candidates are deliberately loose; this stage decides which candidates are copies. Each document gets a
*profile*: the sorted distinct hashes of its shingles. A pair is scored by exact Jaccard and containment
(|A ∩ B| / min(|A|, |B|), which stays high when one text is an abridged copy of the other).
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from dedup.params import Params

from dedup.normalize import WORD_CHAR, fold_batch, squeeze
from dedup.shingle import shingle_hashes


@numba.njit(cache=True, nogil=True)
def _profile(cps: np.ndarray, table: np.ndarray, word: bool, size: int) -> np.ndarray:
    norm = np.empty(cps.shape[0], dtype=np.uint32)
    n = squeeze(cps, table, norm)
    return np.unique(shingle_hashes(norm, n, word, size))


def profiles(texts: list[str], shingle: str, size: int) -> list[np.ndarray]:
    """Sorted distinct shingle hashes of each text."""
    buf, offsets = fold_batch(texts)
    word = shingle == "word"
    return [_profile(buf[offsets[i]:offsets[i + 1]], WORD_CHAR, word, size) for i in range(len(texts))]


@numba.njit(cache=True, nogil=True, inline="always")
def _intersect_count(a: np.ndarray, b: np.ndarray) -> int:
    i = j = c = 0
    while i < a.shape[0] and j < b.shape[0]:
        if a[i] == b[j]:
            c += 1
            i += 1
            j += 1
        elif a[i] < b[j]:
            i += 1
        else:
            j += 1
    return c


@numba.njit(cache=True, nogil=True, parallel=True)
def _score_kernel(profs, ia, ib, jac, con):
    for k in numba.prange(ia.shape[0]):
        a = profs[ia[k]]
        b = profs[ib[k]]
        inter = _intersect_count(a, b)
        union = a.shape[0] + b.shape[0] - inter
        jac[k] = inter / union if union else 0.0
        small = min(a.shape[0], b.shape[0])
        con[k] = inter / small if small else 0.0


def score_pairs(profs: list[np.ndarray], ia: np.ndarray, ib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact Jaccard and containment of the profile pairs (profs[ia[k]], profs[ib[k]])."""
    jac = np.zeros(len(ia), dtype=np.float32)
    con = np.zeros(len(ia), dtype=np.float32)
    if len(ia):
        _score_kernel(numba.typed.List(profs), ia.astype(np.int64), ib.astype(np.int64), jac, con)
    return jac, con


def verify_pairs(cands: pa.Table, docs: pa.Table, p: Params) -> pa.Table:
    """Score candidate pairs (doc_a, doc_b) using `docs` (doc_id, text, minhash) and decide which are linked.

    A document stored without text falls back to its MinHash estimate for every score."""
    ids = docs["doc_id"].to_pylist()
    pos = {d: i for i, d in enumerate(ids)}
    ia = np.array([pos[d] for d in cands["doc_a"].to_pylist()], dtype=np.int64)
    ib = np.array([pos[d] for d in cands["doc_b"].to_pylist()], dtype=np.int64)
    sigs = np.asarray(docs["minhash"].combine_chunks().flatten().to_numpy(), dtype=np.uint32).reshape(-1, p.num_perm)
    est = (sigs[ia] == sigs[ib]).mean(axis=1).astype(np.float32)
    texts = docs["text"].to_pylist()
    has_text = np.array([t is not None for t in texts])
    profs = profiles([t or "" for t in texts], p.shingle, p.shingle_size)
    jac, con = score_pairs(profs, ia, ib)
    both = has_text[ia] & has_text[ib]
    jac = np.where(both, jac, est).astype(np.float32)
    con = np.where(both, con, est).astype(np.float32)
    score = con
    return pa.table({
        "doc_a": cands["doc_a"], "doc_b": cands["doc_b"], "jaccard_est": est, "jaccard": jac,
        "containment": con, "aligned": pa.nulls(len(ia), pa.float32()), "score": score,
        "linked": score >= p.verify_threshold,
    })
