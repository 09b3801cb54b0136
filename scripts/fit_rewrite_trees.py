"""Fit the rewrite models of verifiers v4 to v9: gradient-boosted trees over the lexical and sentence signals of a pair.

Like scripts/fit_rewrite_model.py (v3), on the quality benchmark's pool ingested with every candidate kept: the
candidates the copy rule leaves below `verify_threshold` (rewrites of one story against different stories that
met in the candidate stage: same-event reports, templated Reuters items, follow-ups), ambiguous pairs left out.
Features (dedup.verify.TREE_FEATURES): v3's signals, `aligned`, the sentence-vector signals of dedup.embed and both
texts' lengths; v5 and v6 add where the counterpart sentences sit and the shared rare words and names
(dedup.embed).

The cut: five models fitted on folds grouped by story (no story in both parts) score the pairs they did not see;
the margin of the MAX_FALSE-th highest different-story pair is where the shipped model (fitted on all) is made to
reach `verify_threshold` (its `offset`). So the model adds links only where it is nearly sure, judged on pairs
it was not fitted on. The same held-out margins give each model's rewrites that join their original's connected
component (the copy rule's links plus the pairs above the cut, less those the caps for short texts hold down:
up to v5 every such pair; v6 (v5's trees) holds down only the copy rule's and asks the trees about those too), the
figure docs/rewrites.md quotes.

v7 reads v6's trees first; its second trees (`second`) are fitted on the pairs those rank highest on held-out folds
(above the SECOND_FLOOR-th different-story pair), over the same inputs and the paraphrase encoder's sentence
signals (dedup.paraphrase), their cut chosen the same way; the file records the encoder and the floor as the
shipped first trees' probability. v8 reads the same first and second trees; its template check (dedup.verify)
drops the copy rule's links of short texts the first trees find unlike any copy, and its second trees' cut is the
lowest whose held-out links leave no more different-story document pairs in connected components than v7's
(`lowest_cut`): the budget those dropped links free. v9's second trees are fitted on the copy rule's links the
caps for short texts hold down as well (those the first trees rank from the floor that overlap less than a
re-issue: dedup.verify.below_reissue), which they then decide, under the same budget. Needs scikit-learn
(`pip install -e '.[fit]'`, the version FITTED_WITH) at fit time only: the trees ship as arrays
(dedup/data/rewrite_trees-<version>.npz) that dedup.trees walks in NumPy.

    python scripts/fit_rewrite_trees.py --corpora ../shared/corpora [--verifier v9] [--pairs-cache FILE] [--write]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_quality import Pool, Truth, build_truth, load_pool  # noqa: E402
from fit_rewrite_model import candidate_signals  # noqa: E402

from dedup import verify  # noqa: E402
from dedup.params import PARAPHRASE_TREES, REWRITE_TREES, Params  # noqa: E402
from dedup.paraphrase import ENCODER  # noqa: E402
from dedup.trees import forest, load_forest  # noqa: E402

VECTORS = "glove100-50k-v1"
MAX_FALSE = 10
# v7: the second trees decide the pairs whose held-out first margin beats that of the SECOND_FLOOR-th highest
# different-story pair (1,555 of the pool's 127,045 pairs below the copy rule, 1,055 of its 1,137 same-story ones)
SECOND_FLOOR = 500
TREES = dict(max_iter=300, learning_rate=0.05, max_leaf_nodes=15, random_state=0)
# early stopping's validation split (v4 to v6 and v7's first trees: over 10,000 pairs), hence the trees, the floor and
# the second trees' pairs, depend on scikit-learn's version: this one reproduces rewrite_trees-l2r-dev-v3 bit for bit
# (pyproject's `fit` extra pins it); l2r-dev-v2 was fitted with an earlier one
FITTED_WITH = "1.9.1"
OUT = Path(__file__).resolve().parent.parent / "dedup" / "data"


def export(model, features: tuple[str, ...], offset: float, **more) -> dict[str, np.ndarray]:
    """The fitted trees as flat node arrays (see dedup.trees.Forest), with `more` (v7's second trees: encoder,
    floor)."""
    trees = [predictors[0].nodes for predictors in model._predictors]
    starts = np.cumsum([0] + [len(t) for t in trees[:-1]])
    nodes = np.concatenate(trees)
    shift = np.repeat(starts, [len(t) for t in trees])
    leaf = nodes["is_leaf"].astype(bool)
    return {"features": np.array(",".join(features)), "word_vectors": np.array(VECTORS),
            "feature": np.where(leaf, -1, nodes["feature_idx"]).astype(np.int64),
            "threshold": nodes["num_threshold"].astype(np.float64),
            "left": (nodes["left"] + shift).astype(np.int64), "right": (nodes["right"] + shift).astype(np.int64),
            "missing_left": nodes["missing_go_to_left"].astype(bool), "value": nodes["value"].astype(np.float64),
            "roots": starts.astype(np.int64), "baseline": np.array(float(np.ravel(model._baseline_prediction)[0])),
            "offset": np.array(offset), **{k: np.array(v) for k, v in more.items()}}


@dataclass(frozen=True)
class TrainingSet:
    """The pool's candidates the copy rule leaves below the threshold, as the model sees them."""
    pool: Pool
    truth: Truth
    params: Params
    a: np.ndarray  # pool rows of each candidate's documents
    b: np.ndarray
    copy_linked: np.ndarray  # candidates the copy rule links (bool, by candidate)
    gap: np.ndarray  # the candidates the model is asked about (indices into a, b)
    x: np.ndarray  # their features (`features`)
    features: tuple[str, ...]
    y: np.ndarray  # same story?
    groups: np.ndarray  # their story, for folds that keep a story on one side
    candidates: int
    held: np.ndarray  # gap pairs the caps for short texts hold down (bool, by gap pair)
    held_copy: np.ndarray  # candidates the copy rule would link but the caps hold down (v6 asks the trees)
    x_held_copy: np.ndarray  # their features
    template: np.ndarray  # candidates the copy rule links that v8's template check drops (bool, by candidate)


def training_set(corpora: Path, pairs_cache: Path | None, verifier: str = "v5") -> TrainingSet:
    """The quality pool ingested with every candidate kept (cached in `pairs_cache`), with the features `verifier`'s
    trees read of the candidates the copy rule leaves below `verify_threshold` (ambiguous pairs and pairs without
    texts left out)."""
    p = Params(verifier="v3")
    pool = load_pool(corpora, None)
    truth = build_truth(pool, 2)
    if pairs_cache and pairs_cache.exists():
        pairs = pq.read_table(pairs_cache)
    else:
        pairs = candidate_signals(pool, p)
        if pairs_cache:
            pq.write_table(pairs, pairs_cache)
    at = {d: i for i, d in enumerate(pool.ids)}
    a = np.array([at[d] for d in pairs["doc_a"].to_pylist()])
    b = np.array([at[d] for d in pairs["doc_b"].to_pylist()])
    ambiguous = {(min(i, j), max(i, j)) for i, j in truth.ambiguous.tolist()}
    clear = np.array([(min(i, j), max(i, j)) not in ambiguous for i, j in zip(a, b)])
    y = truth.story[a] == truth.story[b]
    col = {n: pairs[n].to_numpy(zero_copy_only=False).astype(np.float64)
           for n in (*verify.REWRITE_SIGNALS, "aligned")}
    col["ordered"] = np.where(col["jaccard"] >= verify.REORDERED_JACCARD, col["aligned"], col["ordered"])
    has = ~np.isnan(np.stack([col[n] for n in col], axis=1)).any(axis=1)
    gap = np.flatnonzero(clear & has & (col["ordered"] < p.verify_threshold))
    # the caps for short texts (dedup.verify) hold some of the copy rule's links down
    words = verify.Profiles(pool.texts, "v3", p.common_stems).words
    _, held = verify.short_caps(np.minimum(words[a], words[b]), col["aligned"], col["jaccard"], p.brief_words)
    copy = clear & has & (col["ordered"] >= p.verify_threshold)
    copy_linked, held_copy = copy & ~held, np.flatnonzero(copy & held)
    features = verify.TREE_FEATURES[verifier]

    def features_of(rows: np.ndarray) -> np.ndarray:
        _, inputs = verify.tree_inputs(pool.texts, a[rows], b[rows], {n: v[rows] for n, v in col.items()}, verifier,
                                       VECTORS)
        return np.column_stack([inputs[n] for n in features])

    # v8's template check, as ingest makes it (the shipped first trees, not fitted on the copy rule's links)
    template = np.zeros(len(a), bool)
    checked = np.flatnonzero(verify.below_reissue(pa.array(pool.texts), a, b, copy_linked & (
        np.minimum(words[a], words[b]) < verify.TEMPLATE_WORDS))) if verifier in verify.TEMPLATE_CHECK else []
    if len(checked):
        unlike = forest(REWRITE_TREES["v8"]).probability(features_of(checked)) < verify.TEMPLATE_PROBABILITY
        template[checked] = unlike
    return TrainingSet(pool, truth, p, a, b, copy_linked, gap, features_of(gap), features, y[gap], truth.story[a[gap]],
                       len(pairs), held[gap], held_copy, features_of(held_copy), template)


def components(data: TrainingSet, extra: np.ndarray, extra_copy: np.ndarray, template: bool) -> np.ndarray:
    """Each pool document's connected component under the copy rule's links (with `template`, less those v8's
    template check drops) plus the model's (`extra`, a mask over data.gap; `extra_copy`, over data.held_copy)."""
    parent = np.arange(len(data.pool.ids))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    copy = data.copy_linked & ~data.template if template else data.copy_linked
    links = np.concatenate([np.flatnonzero(copy), data.gap[extra], data.held_copy[extra_copy]])
    for i, j in zip(data.a[links].tolist(), data.b[links].tolist()):
        parent[root(i)] = root(j)
    return np.array([root(i) for i in range(len(parent))])


def component_recall(data: TrainingSet, extra: np.ndarray, extra_copy: np.ndarray,
                     template: bool = False) -> dict[str, float]:
    """Share of each model's rewrites in their original's connected component (`components`)."""
    root = components(data, extra, extra_copy, template)
    kinds = np.array([k or "" for k in data.pool.kind])
    return {kind.removeprefix("rewrite-"): float(np.mean(root[mine] == root[data.pool.original[mine]]))
            for kind in sorted({k for k in kinds if k.startswith("rewrite")}) for mine in [kinds == kind]}


def different_in_components(data: TrainingSet, extra: np.ndarray, extra_copy: np.ndarray, template: bool) -> int:
    """Different-story document pairs (ambiguous ones left out) within the connected components (`components`):
    what the benchmark's precision counts against a verifier, before average linkage splits clusters."""
    root = components(data, extra, extra_copy, template)
    story = data.truth.story
    ambiguous = {(min(i, j), max(i, j)) for i, j in data.truth.ambiguous.tolist()}
    order = np.argsort(root, kind="stable")
    count = 0
    for group in np.split(order, np.flatnonzero(np.diff(root[order])) + 1):
        if len(group) > 1 and len(np.unique(story[group])) > 1:
            count += sum(story[i] != story[j] and (i, j) not in ambiguous
                         for i, j in combinations(sorted(group.tolist()), 2))
    return count


def main() -> None:
    import sklearn
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, required=True)
    parser.add_argument("--verifier", choices=sorted(REWRITE_TREES), default="v9",
                        help="whose trees (default v9: v6's trees, then --write writes its second trees)")
    parser.add_argument("--write", action="store_true", help="write dedup/data/rewrite_trees-<the verifier's>.npz")
    parser.add_argument("--pairs-cache", type=Path, help="keep the pool's candidate pairs in this Parquet file")
    args = parser.parse_args()
    print(f"scikit-learn {sklearn.__version__} (the shipped trees: {FITTED_WITH})")
    data = training_set(args.corpora, args.pairs_cache, args.verifier)
    pool, p, a, b, gap = data.pool, data.params, data.a, data.b, data.gap
    x, yy, groups = data.x, data.y, data.groups
    print(f"candidates {data.candidates}, fitted on {len(gap)} below the copy rule ({int(yy.sum())} same story)")
    oof = np.zeros(len(gap))
    # the pairs v6 also asks (the copy rule's links the caps hold down), scored by the fold that did not see their
    # story
    oof_copy = np.zeros(len(data.held_copy))
    copy_story = data.truth.story[a[data.held_copy]]
    for fit_part, held in GroupKFold(5).split(x, yy, groups):
        fold = HistGradientBoostingClassifier(**TREES).fit(x[fit_part], yy[fit_part])
        oof[held] = fold.decision_function(x[held])
        unseen = ~np.isin(copy_story, groups[fit_part])
        oof_copy[unseen] = fold.decision_function(data.x_held_copy[unseen])
    cut = np.sort(oof[~yy])[::-1][MAX_FALSE]
    print(f"cut (margin of the {MAX_FALSE + 1}th different-story pair, held-out folds) {cut:.3f}: "
          f"same-story pairs above it {int((oof[yy] > cut).sum())}/{int(yy.sum())}")
    kinds = np.array([k or "" for k in pool.kind])
    for kind in sorted({k for k in kinds if k.startswith("rewrite")}):
        mine = np.isin(a[gap], np.flatnonzero(kinds == kind)) | np.isin(b[gap], np.flatnonzero(kinds == kind))
        print(f"  {kind}: pairs below the copy rule {int((mine & yy).sum())}, above the cut held-out "
              f"{int((mine & yy & (oof > cut)).sum())}")
    same_copy = data.truth.story[a[data.held_copy]] == data.truth.story[b[data.held_copy]]
    print(f"the copy rule's links the caps hold down: {len(same_copy)} ({int(same_copy.sum())} same story); above "
          f"the cut held-out: same story {int((same_copy & (oof_copy > cut)).sum())}, different "
          f"{int((~same_copy & (oof_copy > cut)).sum())}; gap pairs above the cut the caps hold down: same story "
          f"{int((data.held & yy & (oof > cut)).sum())}, different {int((data.held & ~yy & (oof > cut)).sum())}")
    # up to v5 the caps hold the trees' links down too; v6 asks the trees about the copy rule's held links
    copy_only = args.verifier in verify.COPY_ONLY_CAPS
    recall = component_recall(data, (oof > cut) & (copy_only | ~data.held), copy_only & (oof_copy > cut))
    alone = " (the first trees alone)" if args.verifier in PARAPHRASE_TREES else ""
    print(f"held out, rewrites in their original's component ({args.verifier}{alone}): " + ", ".join(
        f"{k} {v:.2f}" for k, v in recall.items()))
    if args.verifier in PARAPHRASE_TREES:
        second(data, oof, oof_copy, cut, args.write, args.verifier)
    elif args.write:
        write(x, yy, data.features, cut, p.verify_threshold, REWRITE_TREES[args.verifier])


def held_out(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Margins of trees fitted on folds grouped by story, each pair scored by the fold that did not see its story."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    m = np.zeros(len(y))
    for fit_part, held in GroupKFold(5).split(x, y, groups):
        m[held] = HistGradientBoostingClassifier(**TREES).fit(x[fit_part], y[fit_part]).decision_function(x[held])
    return m


@dataclass(frozen=True)
class SecondSet:
    """The pairs the second trees decide, as they see them: gap pairs (`zone`, indices into data.gap) and, for v9,
    the copy rule's links the caps hold down (`copy_zone`, indices into data.held_copy), rows in that order; and
    the gap links the first trees make (held out) among pairs from the floor the second are not asked about (v9:
    those that overlap like a re-issue)."""
    zone: np.ndarray
    copy_zone: np.ndarray
    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    first_gap: np.ndarray

    def links(self, data: TrainingSet, margins: np.ndarray, cut: float,
              copy_links: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(gap links, held-copy links) when the second trees link above `cut`; held copies outside `copy_zone`
        keep `copy_links` (the first trees')."""
        gap = self.first_gap.copy()
        gap[self.zone] = margins[:len(self.zone)] > cut
        held = copy_links.copy()
        held[self.copy_zone] = margins[len(self.zone):] > cut
        return gap, held


def second_set(data: TrainingSet, zone: np.ndarray, copy_zone: np.ndarray,
               first_gap: np.ndarray | None = None) -> SecondSet:
    """The first trees' inputs and the paraphrase encoder's sentence signals of the pairs the second trees decide."""
    rows = np.concatenate([data.gap[zone], data.held_copy[copy_zone]])
    first = np.vstack([data.x[zone], data.x_held_copy[copy_zone]])
    inputs = {n: first[:, j] for j, n in enumerate(data.features)}
    ia, ib = data.a[rows], data.b[rows]
    _, values = verify.paraphrase_inputs(data.pool.texts, ia, ib, inputs, ENCODER, VECTORS)
    story = data.truth.story
    return SecondSet(zone, copy_zone, np.column_stack([values[n] for n in verify.PARAPHRASE_FEATURES]),
                     story[ia] == story[ib], story[ia],
                     np.zeros(len(data.y), bool) if first_gap is None else first_gap)


def second(data: TrainingSet, oof: np.ndarray, oof_copy: np.ndarray, first_cut: float, save: bool,
           verifier: str) -> None:
    """v7's to v9's second trees: fitted on the pairs whose held-out first margin (`oof`) reaches the floor, over
    the first trees' inputs and the paraphrase encoder's sentence signals (dedup.verify.paraphrase_inputs); their cut
    is chosen on held-out folds as the first's was. The copy rule's links the caps hold down are the first trees' to
    lift (held out: `oof_copy` above `first_cut`) in v7 and v8; v9 fits the second trees on those above the floor
    as well, and they decide them. v8's and v9's cut: `lowest_cut`."""
    y = data.y
    floor = np.sort(oof[~y])[::-1][SECOND_FLOOR]
    first_links = oof_copy > first_cut
    pairs = second_set(data, np.flatnonzero(oof > floor), np.zeros(0, np.int64))
    print(f"second trees: {len(pairs.zone)} pairs from the floor (margin {floor:.3f}), {int(pairs.y.sum())} same story")
    m2 = held_out(pairs.x, pairs.y, pairs.groups)
    cut = np.sort(m2[~pairs.y])[::-1][MAX_FALSE]
    if verifier in verify.TEMPLATE_CHECK:
        budget = different_in_components(data, *pairs.links(data, m2, cut, first_links), template=False)
        dropped = data.copy_linked & data.template
        same = data.truth.story[data.a] == data.truth.story[data.b]
        print(f"template check: drops {int(dropped.sum())} of the copy rule's {int(data.copy_linked.sum())} links "
              f"({int((dropped & same).sum())} same story); v7's different-story pairs in components {budget}")
        if verifier in verify.SECOND_HELD:
            # the gap pairs and the caps' held links from the floor, less those that overlap like a re-issue
            zone, held = pairs.zone, np.flatnonzero(oof_copy > floor)
            rows = np.concatenate([data.gap[zone], data.held_copy[held]])
            unlike = verify.below_reissue(pa.array(data.pool.texts), data.a[rows], data.b[rows],
                                          np.ones(len(rows), bool))
            unlike, held_unlike = unlike[:len(zone)], unlike[len(zone):]
            first_gap = np.zeros(len(y), bool)
            first_gap[zone[~unlike]] = oof[zone[~unlike]] > first_cut
            pairs = second_set(data, zone[unlike], held[held_unlike], first_gap)
            print(f"  v9: of them, {int((~unlike).sum())} overlap like a re-issue (the first trees decide them: "
                  f"{int(first_gap.sum())} linked, held out); the copy rule's links the caps hold down from the "
                  f"floor, no re-issues: {len(pairs.copy_zone)} ({int(pairs.y[len(pairs.zone):].sum())} same story)")
            m2 = held_out(pairs.x, pairs.y, pairs.groups)
        cut = lowest_cut(data, pairs, m2, first_links, budget)
    links, copy_links = pairs.links(data, m2, cut, first_links)
    recall = component_recall(data, links, copy_links, template=verifier in verify.TEMPLATE_CHECK)
    print(f"cut {cut:.3f}; held out, rewrites in their original's component ({verifier}): " + ", ".join(
        f"{k} {v:.2f}" for k, v in recall.items()))
    print_losses(data, oof > floor, links, oof_copy > floor, copy_links)
    if save:
        first = forest(REWRITE_TREES[verifier])
        write(pairs.x, pairs.y, verify.PARAPHRASE_FEATURES, cut, data.params.verify_threshold,
              PARAPHRASE_TREES[verifier], encoder=ENCODER, floor=float(1 / (1 + np.exp(-(floor + first.offset)))))


def lowest_cut(data: TrainingSet, pairs: SecondSet, m2: np.ndarray, first_links: np.ndarray, budget: int) -> float:
    """The lowest of the second trees' held-out margins at which their links, with the copy rule's links less those
    the template check drops, leave no more different-story document pairs in connected components than `budget`
    (v7's: its cut, every copy-rule link)."""
    negatives = np.sort(m2[~pairs.y])[::-1]
    cut = negatives[MAX_FALSE]
    for margin in negatives[MAX_FALSE + 1:]:
        if different_in_components(data, *pairs.links(data, m2, margin, first_links), template=True) > budget:
            break
        cut = margin
    print(f"cut {cut:.3f}: admits {int((negatives > cut).sum())} held-out different-story pairs (v7's: {MAX_FALSE})")
    return float(cut)


def print_losses(data: TrainingSet, zone: np.ndarray, links: np.ndarray, copy_zone: np.ndarray,
                 copy_links: np.ndarray) -> None:
    """Where each model's rewrite/original pairs end, held out (`zone`, `links`: masks over data.gap; `copy_zone`,
    `copy_links` over data.held_copy): not a candidate, linked by the copy rule, left out of the fit (ambiguous, no
    text), below the floor, below the second trees' cut, linked by them (the caps' held links counted as the
    trees' pairs). A rewrite may still join its original's component through another rewrite of it, so these are
    the direct pairs only: where the next gain must come from."""
    candidate = {(min(i, j), max(i, j)): k for k, (i, j) in enumerate(zip(data.a.tolist(), data.b.tolist()))}
    decided = {int(k): (bool(z), bool(x)) for k, z, x in zip(data.gap, zone, links)}
    decided.update({int(k): (bool(z), bool(x)) for k, z, x in zip(data.held_copy, copy_zone, copy_links)})
    kinds = np.array([k or "" for k in data.pool.kind])
    print("direct rewrite/original pairs, held out:")
    for kind in sorted({k for k in kinds if k.startswith("rewrite")}):
        fate = dict.fromkeys(("not a candidate", "copy rule", "left out", "below the floor", "below the cut",
                              "linked"), 0)
        for r in np.flatnonzero(kinds == kind).tolist():
            o = int(data.pool.original[r])
            k = candidate.get((min(r, o), max(r, o)))
            above, linked = decided.get(k, (False, False))
            fate["not a candidate" if k is None else "copy rule" if data.copy_linked[k] else "left out"
                 if k not in decided else "linked" if linked else "below the cut" if above
                 else "below the floor"] += 1
        print(f"  {kind.removeprefix('rewrite-')}: " + ", ".join(f"{n} {c}" for n, c in fate.items()))


def write(x: np.ndarray, y: np.ndarray, features: tuple[str, ...], cut: float, threshold: float, version: str,
          **more) -> None:
    """Fit the shipped trees on every pair and write them as `version`, their margin moved so that the held-out
    `cut` reaches `threshold` (`more`: what second trees record besides)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(**TREES).fit(x, y)
    offset = float(np.log(threshold / (1 - threshold)) - cut) + 1e-6
    out = OUT / f"rewrite_trees-{version}.npz"
    np.savez_compressed(out, **export(model, features, offset, **more))
    shipped = load_forest(out)
    assert np.allclose(shipped.margin(x) - offset, model.decision_function(x))  # the walk is sklearn's
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
