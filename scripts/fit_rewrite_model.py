"""Fit verifier v3's rewrite model: the logistic regression whose coefficients `Params.rewrite_model` holds.

The quality benchmark's pool (natural news, planted machine-translated and edited copies, and the development half
of the L2R rewrites) is ingested with default settings, keeping every candidate pair with its signals
(`REWRITE_SIGNALS`). The model is fitted on the candidates the copy rule does not link already (its score is
below `verify_threshold`): rewrites of one story against different stories that met in the candidate stage —
same-event articles (WikiRef, NewsArticles), templated reports (Reuters), follow-ups. Pairs the benchmark's truth
calls ambiguous are left out. L2-regularised Newton iterations, a few dozen lines: no learning library needed.
The intercept is then lowered until at most MAX_FALSE fitted different-story pairs reach `verify_threshold`:
the model adds links only where it is nearly sure.

    python scripts/fit_rewrite_model.py --corpora ../shared/corpora [--write]

`--write` puts the coefficients into `dedup/params.py` (`REWRITE_MODEL`); the benchmark then measures them.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_quality import build_truth, load_pool  # noqa: E402

import dedup  # noqa: E402
from dedup import verify  # noqa: E402
from dedup.params import Params  # noqa: E402

PARAMS = Path(__file__).resolve().parent.parent / "dedup" / "params.py"
L2 = 1.0
MAX_FALSE = 10


def fit(x: np.ndarray, y: np.ndarray, l2: float = L2, iterations: int = 50) -> np.ndarray:
    """Logistic regression weights (intercept first) by Newton's method, the intercept not regularised."""
    x1 = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(x1.shape[1])
    reg = np.full(x1.shape[1], l2)
    reg[0] = 0.0
    for _ in range(iterations):
        prob = 1.0 / (1.0 + np.exp(-x1 @ w))
        grad = x1.T @ (prob - y) + reg * w
        hess = (x1 * (prob * (1 - prob))[:, None]).T @ x1 + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def candidate_signals(pool, params: Params, keep_all: float = -1.0) -> pa.Table:
    """Every candidate pair of the pool with its signals (pairs scoring under KEEP_SCORE are normally dropped)."""
    score_module = importlib.import_module("dedup.batch.score")
    kept = score_module.KEEP_SCORE
    score_module.KEEP_SCORE = keep_all
    try:
        with tempfile.TemporaryDirectory(prefix="dedup-fit-") as tmp:
            dedup.ingest([pa.table({"id": pool.ids, "text": pool.texts})], Path(tmp) / "index", params)
            return dedup.Index(Path(tmp) / "index").table("pairs")
    finally:
        score_module.KEEP_SCORE = kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, required=True)
    parser.add_argument("--write", action="store_true", help="write the coefficients into dedup/params.py")
    args = parser.parse_args()
    p = Params(verifier="v3")  # the rewrite signals are only computed by v3
    pool = load_pool(args.corpora, None)
    truth = build_truth(pool, 2)
    pairs = candidate_signals(pool, p)
    at = {d: i for i, d in enumerate(pool.ids)}
    a = np.array([at[d] for d in pairs["doc_a"].to_pylist()])
    b = np.array([at[d] for d in pairs["doc_b"].to_pylist()])
    ambiguous = {(min(i, j), max(i, j)) for i, j in truth.ambiguous.tolist()}
    clear = np.array([(min(i, j), max(i, j)) not in ambiguous for i, j in zip(a, b)])
    y = (truth.story[a] == truth.story[b]).astype(np.float64)
    col = {n: pairs[n].to_numpy(zero_copy_only=False).astype(np.float64) for n in verify.REWRITE_SIGNALS
           if n != "ordered"}
    jac = col["jaccard"]
    aligned = pairs["aligned"].to_numpy(zero_copy_only=False)
    col["ordered"] = np.where(jac >= verify.REORDERED_JACCARD, aligned,
                              pairs["ordered"].to_numpy(zero_copy_only=False))
    x = np.stack([col[n] for n in verify.REWRITE_SIGNALS], axis=1)
    has = ~np.isnan(x).any(axis=1)
    gap = clear & has & (col["ordered"] < p.verify_threshold)
    w = fit(x[gap], y[gap])
    # precision first: the intercept moves down until at most MAX_FALSE of the fitted different-story pairs would
    # reach verify_threshold (the copy rule already holds the pool's precision at ~0.99)
    z = x[gap] @ w[1:] + w[0]
    cut = np.log(p.verify_threshold / (1 - p.verify_threshold))
    worst = np.sort(z[y[gap] == 0])[::-1]
    if len(worst) > MAX_FALSE and worst[MAX_FALSE] >= cut:
        w[0] -= worst[MAX_FALSE] - cut + 1e-6
    prob = 1.0 / (1.0 + np.exp(-(w[0] + x[has] @ w[1:])))
    print(f"candidates {len(pairs)}, with texts {has.sum()}, fitted on {gap.sum()} ({int(y[gap].sum())} same story)")
    print("coefficients:", ", ".join(f"{n}={v:.3f}" for n, v in zip(("intercept", *verify.REWRITE_SIGNALS), w)))
    yy, gg = y[has], gap[has]
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        hit = prob >= t
        print(f"  p >= {t}: gap pairs linked {int((hit & gg & (yy == 1)).sum())}/{int((gg & (yy == 1)).sum())},"
              f" false {int((hit & gg & (yy == 0)).sum())}")
    kinds = np.array([k or "" for k in pool.kind])
    for kind in sorted({k for k in kinds if k.startswith("rewrite")}):
        copies = np.flatnonzero(kinds == kind)
        mine = np.isin(a, copies) | np.isin(b, copies)
        true_pairs = mine & (y == 1)
        linked = true_pairs & has & np.isin(np.arange(len(a)), np.flatnonzero(has)[prob >= p.verify_threshold])
        linked |= true_pairs & (col["ordered"] >= p.verify_threshold)
        print(f"  {kind}: candidates with the original {int(true_pairs.sum())}/{len(copies)}, linked {int(linked.sum())}")
    if args.write:
        text = PARAMS.read_text(encoding="utf-8")
        line = "REWRITE_MODEL = (" + ", ".join(f"{v:.4f}" for v in w) + ")"
        PARAMS.write_text(re.sub(r"REWRITE_MODEL = \([^)]*\)", line, text), encoding="utf-8")
        print(f"wrote {line} into {PARAMS}")


if __name__ == "__main__":
    main()
