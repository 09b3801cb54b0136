"""The rewrite models of verifiers v4 to v7: gradient-boosted trees, shipped as plain arrays and evaluated in NumPy.

Fitted by scripts/fit_rewrite_trees.py (scikit-learn, at fit time only) and stored as
`dedup/data/rewrite_trees-<version>.npz`: every node of every tree (feature, threshold, children, the side
missing values take, the leaf value), the features' names, the version of the word vectors its sentence signals
were made with, and `offset`, which moves the margin so that the model's chosen cut lands on
`verify_threshold` (the fit script picks the cut that lets at most a few different stories through). v7's second
trees also name the paraphrase encoder their sentence signals were made with and `floor`, the first trees'
probability from which a pair is theirs to decide.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np


DATA = Path(__file__).with_name("data")


@dataclass(frozen=True)
class Forest:
    features: tuple[str, ...]
    word_vectors: str
    feature: np.ndarray  # int64 per node; -1 at a leaf
    threshold: np.ndarray  # float64 per node: a value <= threshold goes left
    left: np.ndarray  # int64 per node (global node numbers)
    right: np.ndarray
    missing_left: np.ndarray  # bool per node: where a NaN goes
    value: np.ndarray  # float64 per node (leaves)
    roots: np.ndarray  # int64 per tree
    baseline: float
    offset: float
    encoder: str = ""  # second trees (v7): the paraphrase encoder (dedup.paraphrase)
    floor: float = float("nan")  # second trees: they decide the pairs the first trees give at least this probability

    def margin(self, x: np.ndarray) -> np.ndarray:
        """Raw score (log-odds + offset) of each row of x (rows, len(features))."""
        from dedup.rewrite_kernels import forest_margin

        out = np.full(len(x), self.baseline + self.offset)
        forest_margin(np.ascontiguousarray(x, np.float64), self.feature, self.threshold, self.left, self.right,
                      self.missing_left, self.value, self.roots, out)
        return out

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.margin(x)))


@functools.cache
def forest(version: str) -> Forest:
    """The shipped forest `version`; ValueError if this dedup does not have it."""
    path = DATA / f"rewrite_trees-{version}.npz"
    if not path.is_file():
        raise ValueError(f"unknown rewrite_trees {version!r} (this dedup ships: {', '.join(shipped()) or 'none'})")
    return load_forest(path)


def load_forest(path: Path) -> Forest:
    with np.load(path) as d:
        return Forest(tuple(str(d["features"]).split(",")), str(d["word_vectors"]), d["feature"], d["threshold"],
                      d["left"], d["right"], d["missing_left"], d["value"], d["roots"], float(d["baseline"]),
                      float(d["offset"]), str(d["encoder"]) if "encoder" in d else "",
                      float(d["floor"]) if "floor" in d else float("nan"))


def shipped() -> list[str]:
    return sorted(p.name[len("rewrite_trees-"):-len(".npz")] for p in DATA.glob("rewrite_trees-*.npz"))
