"""The compiled loops of verifiers v4 to v6: sentence-vector, structure and word-overlap signals per pair (dedup.embed),
the forest walk (dedup.trees)."""
from __future__ import annotations

import numba
import numpy as np

# v5's structure signals (read as constants when a kernel compiles): the cosine at which two sentences are each
# other's counterparts, at which a counterpart's place and the in-order chains count, and at which a sentence is
# near-verbatim; the floors of the soft alignments (STRUCTURE_SIGNALS vec_soft50, vec_soft40, vec_soft60)
MUTUAL_COSINE, PLACED_COSINE, VERBATIM_COSINE = 0.5, 0.6, 0.8
SOFT_FLOORS = (0.5, 0.4, 0.6)


@numba.njit(cache=True, nogil=True)
def _heaviest(gain: np.ndarray) -> np.ndarray:
    """best[x, y]: the heaviest in-order alignment (a longest common subsequence in which matching row x with
    column y gains gain[x, y]) within the first x rows and y columns."""
    n, m = gain.shape
    best = np.zeros((n + 1, m + 1))
    for x in range(n):
        for y in range(m):
            best[x + 1, y + 1] = max(best[x, y + 1], best[x + 1, y], best[x, y] + gain[x, y])
    return best


@numba.njit(cache=True, nogil=True)
def _chain_table(sim: np.ndarray, weights: np.ndarray, by_row: bool, cosine: float) -> np.ndarray:
    """`_heaviest` where two sentences match when their cosine reaches `cosine`, a match weighing its row's
    weight (by_row) or its column's."""
    n, m = sim.shape
    gain = np.zeros((n, m))
    for x in range(n):
        for y in range(m):
            if sim[x, y] >= cosine:
                gain[x, y] = weights[x] if by_row else weights[y]
    return _heaviest(gain)


@numba.njit(cache=True, nogil=True)
def _chain(sim: np.ndarray, weights: np.ndarray, cosine: float) -> float:
    """Weight of the first text's sentences matched in order."""
    return _chain_table(sim, weights, True, cosine)[-1, -1]


@numba.njit(cache=True, nogil=True)
def _in_order(sim: np.ndarray, weights: np.ndarray, by_row: bool, cosine: float) -> np.ndarray:
    """The (row, column) of each match of the heaviest in-order chain, last first."""
    best = _chain_table(sim, weights, by_row, cosine)
    x, y = sim.shape
    matched = np.empty((min(x, y), 2), np.int64)
    k = 0
    while x > 0 and y > 0:
        if best[x, y] == best[x - 1, y]:
            x -= 1
        elif best[x, y] == best[x, y - 1]:
            y -= 1
        else:
            matched[k, 0], matched[k, 1] = x - 1, y - 1
            k += 1
            x -= 1
            y -= 1
    return matched[:k]


@numba.njit(cache=True, nogil=True)
def _soft(sim: np.ndarray, wa: np.ndarray, wb: np.ndarray, floor: float) -> float:
    """The best in-order alignment's total of (cosine - floor) * (both sentences' weight), over both texts'
    weight: every close pair counts by how close it is, not only those past a cut."""
    n, m = sim.shape
    gain = np.zeros((n, m))
    for x in range(n):
        for y in range(m):
            if sim[x, y] > floor:
                gain[x, y] = (sim[x, y] - floor) * (wa[x] + wb[y])
    return _heaviest(gain)[n, m] / (wa.sum() + wb.sum())


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


@numba.njit(cache=True, nogil=True)
def structure_signals(vectors: np.ndarray, weights: np.ndarray, offsets: np.ndarray, ia: np.ndarray,
                      ib: np.ndarray, out: np.ndarray) -> None:
    """out[k] = dedup.embed.STRUCTURE_SIGNALS of the pair (ia[k], ib[k]), the lighter text's sentences as rows;
    NaN when either has no sentence (or where a share has nothing to divide by)."""
    for k in range(len(ia)):
        sim, wa, wb = pair_similarity(vectors, weights, offsets, ia[k], ib[k])
        if sim.size == 0:
            out[k, :] = np.nan
            continue
        n, m = sim.shape
        best_a = np.empty(n, np.int64)
        best_b = np.empty(m, np.int64)
        for x in range(n):
            best_a[x] = np.argmax(sim[x])
        for y in range(m):
            best_b[y] = np.argmax(sim[:, y])
        mutual = gap_all = gap60 = w60 = verbatim = mono = mono_w = 0.0
        for x in range(n):
            y = best_a[x]
            shift = abs((x + 0.5) / n - (y + 0.5) / m)  # how far the counterpart sits from the same place
            if best_b[y] == x and sim[x, y] >= MUTUAL_COSINE:
                mutual += wa[x]
            gap_all += wa[x] * shift
            if sim[x, y] >= PLACED_COSINE:
                gap60 += wa[x] * shift
                w60 += wa[x]
            if sim[x, y] >= VERBATIM_COSINE:
                verbatim += wa[x]
            if x > 0:
                mono_w += wa[x]
                if best_a[x] >= best_a[x - 1]:
                    mono += wa[x]
        late = late_w = heavy = 0.0
        for x in range(n // 2, n):
            late_w += wa[x]
        for x, y in _in_order(sim, wa, True, PLACED_COSINE):
            heavy += wb[y]
            if x >= n // 2:
                late += wa[x]
        early_b = late_b = 0.0
        for x, y in _in_order(sim, wb, False, PLACED_COSINE):
            if y >= m // 2:
                late_b += wb[y]
            else:
                early_b += wb[y]
        total_a, total_b, half_b = wa.sum(), wb.sum(), wb[:m // 2].sum()
        out[k, 0] = mutual / total_a
        out[k, 1] = gap_all / total_a
        out[k, 2] = late / late_w if late_w > 0 else np.nan
        out[k, 3] = heavy / total_b
        out[k, 4] = _soft(sim, wa, np.zeros(m), SOFT_FLOORS[0])
        out[k, 5] = n / m
        out[k, 6] = _soft(sim, wa, wb, SOFT_FLOORS[1])
        out[k, 7] = _soft(sim, wa, wb, SOFT_FLOORS[2])
        out[k, 8] = gap60 / w60 if w60 > 0 else np.nan
        out[k, 9] = verbatim / total_a
        out[k, 10] = mono / mono_w if mono_w > 0 else np.nan
        out[k, 11] = early_b / half_b if half_b > 0 else np.nan
        out[k, 12] = late_b / (total_b - half_b) if total_b > half_b else np.nan
        out[k, 13] = sim[0, 0]


@numba.njit(cache=True, nogil=True)
def word_overlap(words: np.ndarray, info: np.ndarray, offsets: np.ndarray, unknown: float, ia: np.ndarray,
                 ib: np.ndarray, out: np.ndarray) -> None:
    """out[k] = dedup.embed.WORD_SIGNALS of the pair (ia[k], ib[k]) whose distinct words are the sorted ids
    words[offsets[d]:offsets[d + 1]] with their information `info` (`unknown` for a word outside the vocabulary):
    the lighter text's (by information) words first; NaN when the lighter text has none."""
    for k in range(len(ia)):
        a0, a1, b0, b1 = offsets[ia[k]], offsets[ia[k] + 1], offsets[ib[k]], offsets[ib[k] + 1]
        total_a, total_b = info[a0:a1].sum(), info[b0:b1].sum()
        if total_a > total_b:
            a0, a1, b0, b1, total_a, total_b = b0, b1, a0, a1, total_b, total_a
        if total_a == 0:
            out[k, :] = np.nan
            continue
        common = names_a = names_common = 0.0
        names_b = 0
        for y in range(b0, b1):
            names_b += info[y] == unknown
        x, y = a0, b0
        while x < a1:
            while y < b1 and words[y] < words[x]:
                y += 1
            found = y < b1 and words[y] == words[x]
            if found:
                common += info[x]
            if info[x] == unknown:
                names_a += 1
                names_common += found
            x += 1
        out[k, 0] = common / total_a
        out[k, 1] = common / total_b
        out[k, 2] = names_common / names_a if names_a > 0 else np.nan
        out[k, 3] = names_a + names_b
