"""The compiled loops of verifier v4: sentence-vector signals per pair (dedup.embed), the forest walk (dedup.trees)."""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _chain(sim: np.ndarray, weights: np.ndarray, cosine: float) -> float:
    """Weight of the first text's sentences matched in order: a longest common subsequence in which two
    sentences match when their cosine reaches `cosine`."""
    n, m = sim.shape
    best = np.zeros((n + 1, m + 1))
    for x in range(n):
        for y in range(m):
            take = best[x, y] + (weights[x] if sim[x, y] >= cosine else 0.0)
            best[x + 1, y + 1] = max(best[x, y + 1], best[x + 1, y], take)
    return best[n, m]


@numba.njit(cache=True, nogil=True)
def pair_similarity(vectors: np.ndarray, weights: np.ndarray, offsets: np.ndarray, i: int,
                    j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosines between the sentences of documents i and j (rows offsets[d]:offsets[d + 1] of unit `vectors`), the
    lighter text's (by weight) as rows, and the two texts' sentence weights; an empty matrix when either has none."""
    a0, a1, b0, b1 = offsets[i], offsets[i + 1], offsets[j], offsets[j + 1]
    if a0 == a1 or b0 == b1:
        return np.zeros((0, 0)), weights[a0:a0], weights[b0:b0]
    if weights[a0:a1].sum() > weights[b0:b1].sum():
        a0, a1, b0, b1 = b0, b1, a0, a1
    return vectors[a0:a1].astype(np.float64) @ vectors[b0:b1].astype(np.float64).T, weights[a0:a1], weights[b0:b1]


@numba.njit(cache=True, nogil=True)
def pair_signals(vectors: np.ndarray, weights: np.ndarray, offsets: np.ndarray, ia: np.ndarray, ib: np.ndarray,
                 chain_hi: float, chain_lo: float, out: np.ndarray) -> None:
    """out[k] = (cover of the lighter text, cover of the heavier, chain at chain_hi, chain at chain_lo) for the
    pair of documents (ia[k], ib[k]) whose sentences are rows offsets[d]:offsets[d + 1] of `vectors`; NaN when
    either has no sentence."""
    for k in range(len(ia)):
        sim, wa, wb = pair_similarity(vectors, weights, offsets, ia[k], ib[k])
        if sim.size == 0:
            out[k, :] = np.nan
            continue
        best_a = np.empty(len(wa))
        for x in range(len(wa)):
            best_a[x] = sim[x].max()
        best_b = np.empty(len(wb))
        for y in range(len(wb)):
            best_b[y] = sim[:, y].max()
        out[k, 0] = (best_a * wa).sum() / wa.sum()
        out[k, 1] = (best_b * wb).sum() / wb.sum()
        out[k, 2] = _chain(sim, wa, chain_hi) / wa.sum()
        out[k, 3] = _chain(sim, wa, chain_lo) / wa.sum()


@numba.njit(cache=True, nogil=True)
def forest_margin(x: np.ndarray, feature: np.ndarray, threshold: np.ndarray, left: np.ndarray, right: np.ndarray,
                  missing_left: np.ndarray, value: np.ndarray, roots: np.ndarray, out: np.ndarray) -> None:
    """out[k] += the leaf value every tree gives row x[k] (a value <= threshold goes left, NaN where the node says)."""
    for k in range(x.shape[0]):
        total = 0.0
        for root in roots:
            node = root
            while feature[node] >= 0:
                v = x[k, feature[node]]
                go_left = missing_left[node] if np.isnan(v) else v <= threshold[node]
                node = left[node] if go_left else right[node]
            total += value[node]
        out[k] += total
