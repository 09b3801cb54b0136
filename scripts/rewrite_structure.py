"""Measure, before building it into a verifier, what signals of a text's *structure* add to v4's rewrite model.

An LLM rewrite is derived from one text: its sentences follow the original's one for one (some merged, split or
expanded), in order, over the whole text. Another outlet's report on the same event shares the lead's facts but not
the body's sentences, their order or their positions. v4's sentence signals (dedup.embed) ask how much of a text
finds close sentences in the other and in order; the signals here ask where: mutual best counterparts, how far
each counterpart sits from its sentence's relative position, a soft in-order alignment over both texts, the share
of near-verbatim sentences, how monotone the best counterparts run, the in-order coverage of the heavier text's
first and second halves, the two leads' cosine; and, lexically, the information-weighted share of each text's words
(GloVe rank as the rarity) found in the other, and of its words outside the vocabulary (names).

Scored as the docs quote it: story-grouped 5-fold out-of-fold margins; at the cut of the 11th (and 21st)
different-story pair, the share of each model's rewrites that join their original's connected component (the copy
rule's links plus the pairs above the cut). Needs scikit-learn.

    python scripts/rewrite_structure.py --corpora ../shared/corpora [--pairs-cache FILE]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_rewrite_trees import TREES, VECTORS, TrainingSet, training_set  # noqa: E402

from dedup.embed import DATA, STOP_WORDS, sentences, word_vectors  # noqa: E402
from dedup.rewrite_kernels import pair_similarity  # noqa: E402

STRUCTURE = ("mutual", "position_gap", "late_chain", "heavy_chain", "soft_align", "sentence_ratio",
             "soft_align40", "soft_align60", "position_gap60", "verbatim80", "monotone", "heavy_early",
             "heavy_late", "leads")
LEXICAL = ("word_share", "word_share_long", "names_share", "names")
BUDGETS = (10, 20)


@numba.njit(cache=True, nogil=True)
def _in_order(sim: np.ndarray, w: np.ndarray, by_row: bool, cosine: float) -> np.ndarray:
    """Rows and columns on a longest in-order chain of sentences whose cosine reaches `cosine`, weighted by the
    rows' (by_row) or the columns' weights: matched[x, 0] = row, matched[x, 1] = column, -1 padded."""
    n, m = sim.shape
    best = np.zeros((n + 1, m + 1))
    for x in range(n):
        for y in range(m):
            gain = (w[x] if by_row else w[y]) if sim[x, y] >= cosine else 0.0
            best[x + 1, y + 1] = max(best[x, y + 1], best[x + 1, y], best[x, y] + gain)
    matched = np.full((min(n, m), 2), -1, np.int64)
    x, y, k = n, m, 0
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
    """The best in-order alignment's total of (cosine - floor) * weight, over both texts' weight."""
    n, m = sim.shape
    soft = np.zeros((n + 1, m + 1))
    for x in range(n):
        for y in range(m):
            gain = (sim[x, y] - floor) * (wa[x] + wb[y]) if sim[x, y] > floor else 0.0
            soft[x + 1, y + 1] = max(soft[x, y + 1], soft[x + 1, y], soft[x, y] + gain)
    return soft[n, m] / (wa.sum() + wb.sum())


@numba.njit(cache=True, nogil=True)
def structure_signals(vectors: np.ndarray, weights: np.ndarray, offsets: np.ndarray, ia: np.ndarray,
                      ib: np.ndarray, out: np.ndarray) -> None:
    """out[k] = STRUCTURE of the pair (ia[k], ib[k]), the lighter text (rows) first; NaN without sentences."""
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
            shift = abs((x + 0.5) / n - (y + 0.5) / m)
            if best_b[y] == x and sim[x, y] >= 0.5:
                mutual += wa[x]
            gap_all += wa[x] * shift
            if sim[x, y] >= 0.6:
                gap60 += wa[x] * shift
                w60 += wa[x]
            if sim[x, y] >= 0.8:
                verbatim += wa[x]
            if x > 0:
                mono_w += wa[x]
                if best_a[x] >= best_a[x - 1]:
                    mono += wa[x]
        late = late_w = heavy = 0.0
        for x in range(n // 2, n):
            late_w += wa[x]
        for x, y in _in_order(sim, wa, True, 0.6):
            heavy += wb[y]
            if x >= n // 2:
                late += wa[x]
        early_b = late_b = 0.0
        for x, y in _in_order(sim, wb, False, 0.6):
            if y >= m // 2:
                late_b += wb[y]
            else:
                early_b += wb[y]
        total_a, half_b = wa.sum(), wb[:m // 2].sum()
        out[k, 0] = mutual / total_a
        out[k, 1] = gap_all / total_a
        out[k, 2] = late / late_w if late_w > 0 else np.nan
        out[k, 3] = heavy / wb.sum()
        out[k, 4] = _soft(sim, wa, np.zeros(m), 0.5)
        out[k, 5] = n / m
        out[k, 6] = _soft(sim, wa, wb, 0.4)
        out[k, 7] = _soft(sim, wa, wb, 0.6)
        out[k, 8] = gap60 / w60 if w60 > 0 else np.nan
        out[k, 9] = verbatim / total_a
        out[k, 10] = mono / mono_w if mono_w > 0 else np.nan
        out[k, 11] = early_b / half_b if half_b > 0 else np.nan
        out[k, 12] = late_b / (wb.sum() - half_b) if wb.sum() > half_b else np.nan
        out[k, 13] = sim[0, 0]


def sentence_structure(texts: list[str | None], ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    wv = word_vectors(VECTORS)
    docs, local = np.unique(np.concatenate([ia, ib]), return_inverse=True)
    found = [sentences(texts[d] or "", wv) for d in docs.tolist()]
    offsets = np.zeros(len(docs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(s.weights) for s in found])
    out = np.full((len(ia), len(STRUCTURE)), np.nan)
    structure_signals(np.concatenate([s.vectors for s in found]), np.concatenate([s.weights for s in found]),
                      offsets, local[:len(ia)], local[len(ia):], out)
    return out


def word_overlap(texts: list[str | None], ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """LEXICAL of each pair, the lighter text (by information) first."""
    wv = word_vectors(VECTORS)
    with np.load(DATA / f"word_vectors-{VECTORS}.npz") as data:  # the stop words, which word_vectors leaves out
        stop = set(str(data["words"]).split("\n")[:STOP_WORDS])
    unknown = float(wv.info.max()) + 1.0
    bags = {}
    for d in np.unique(np.concatenate([ia, ib])).tolist():
        words = set(re.findall(r"[a-z]+", (texts[d] or "").lower())) - stop
        bags[d] = {w: (unknown if (i := wv.index.get(w)) is None else float(wv.info[i])) for w in words}
    out = np.full((len(ia), len(LEXICAL)), np.nan)
    for k, (i, j) in enumerate(zip(ia.tolist(), ib.tolist())):
        light, heavy = sorted((bags[i], bags[j]), key=lambda bag: sum(bag.values()))
        total_light, total_heavy = sum(light.values()), sum(heavy.values())
        if not total_light:
            continue
        common = sum(v for w, v in light.items() if w in heavy)
        names = [w for w, v in light.items() if v == unknown]
        out[k] = (common / total_light, common / total_heavy,
                  sum(w in heavy for w in names) / len(names) if names else np.nan,
                  len(names) + sum(v == unknown for v in heavy.values()))
    return out


def component_recall(data: TrainingSet, extra: np.ndarray) -> dict[str, float]:
    """Share of each model's rewrites in their original's connected component of the copy rule's links plus the
    model's (`extra`, a mask over data.gap)."""
    parent = np.arange(len(data.pool.ids))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    links = np.concatenate([np.flatnonzero(data.copy_linked), data.gap[extra]])
    for i, j in zip(data.a[links].tolist(), data.b[links].tolist()):
        parent[root(i)] = root(j)
    kinds = np.array([k or "" for k in data.pool.kind])
    return {kind.removeprefix("rewrite-"): float(np.mean([root(r) == root(int(data.pool.original[r]))
                                                           for r in np.flatnonzero(kinds == kind)]))
            for kind in sorted({k for k in kinds if k.startswith("rewrite")})}


def held_out(data: TrainingSet, x: np.ndarray, label: str) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(data.gap))
    for fit_part, held in GroupKFold(5).split(x, data.y, data.groups):
        fold = HistGradientBoostingClassifier(**TREES).fit(x[fit_part], data.y[fit_part])
        oof[held] = fold.decision_function(x[held])
    for budget in BUDGETS:
        cut = np.sort(oof[~data.y])[::-1][budget]
        recall = component_recall(data, oof > cut)
        print(f"{label:<34} {budget:>3} different-story pairs: same-story above {int((oof[data.y] > cut).sum()):>4}; "
              + ", ".join(f"{k} {v:.2f}" for k, v in recall.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, required=True)
    parser.add_argument("--pairs-cache", type=Path, help="keep the pool's candidate pairs in this Parquet file")
    args = parser.parse_args()
    data = training_set(args.corpora, args.pairs_cache)
    ia, ib = data.a[data.gap], data.b[data.gap]
    structure = sentence_structure(data.pool.texts, ia, ib)
    lexical = word_overlap(data.pool.texts, ia, ib)
    held_out(data, data.x, "v4's features")
    held_out(data, np.column_stack([data.x, structure]), "+ structure")
    held_out(data, np.column_stack([data.x, structure, lexical]), "+ structure + word overlap")


if __name__ == "__main__":
    main()
