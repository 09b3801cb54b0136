"""Every parameter that decides what an index contains.

An index is only meaningful if all of its signatures, buckets and pair scores were made with the same settings,
so the full set is written to the manifest and compared on every reopen (`check_compatible`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from dedup.errors import DedupError

if TYPE_CHECKING:
    from dedup.trees import Forest

FORMAT_NAME = "dedup-index"
FORMAT_VERSION = 2

SHINGLE_KINDS = ("pair", "stem", "char", "word")
SHINGLERS = ("v1",)  # see dedup.shingle: its stop words and pair window decide every shingle, hence the buckets
VERIFIERS = ("v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10")
# see dedup.verify: v2 reads OCR look-alikes alike and wants sentences in order; v3 adds the rewrite model (anchors,
# figures, a looser in-order alignment); v4 replaces v3's regression by gradient-boosted trees (`rewrite_trees`) over
# the same signals and sentence-vector ones (dedup.embed); v5's trees also read where the counterpart sentences sit
# and the texts' shared rare words and names (dedup.embed); v6 reads v5's trees, but the caps for short texts hold
# down only the copy rule, not the trees (dedup.verify); v7 asks second trees (`paraphrase_trees`) about the pairs
# v6's trees rank near their cut, over a paraphrase encoder's sentence vectors as well (dedup.paraphrase); v8 also
# asks the first trees about the copy rule's links of short texts, and drops those they find unlike any copy (templated
# reports), which lets its second trees' cut admit more; v9's second trees also decide the copy rule's links that the
# caps for short texts hold down (v8 leaves those to the first trees), and no pair that overlaps like a re-issue
# (the first trees judge those); v10 is v9 whose caps for short texts do not hold down a verbatim excerpt of the other
# text (a brief re-issued from a longer report, a teaser of an article)

# Values of parameters an index made before they existed was made with (its manifest does not name them).
LEGACY = {"anchor_bands": 0, "anchor_rows": 2, "common_stems": "", "rewrite_model": (), "rewrite_trees": "",
          "paraphrase_trees": "", "window_days": 0, "period_days": 0, "retired_before": "", "purged_before": ""}
# Parameters a manifest names only when set: an index without a time window or a retirement keeps the manifest it
# had before they existed, so an older dedup still reads it (and refuses one with them, as unknown parameters).
UNLESS_SET = ("paraphrase_trees", "window_days", "period_days", "retired_before", "purged_before")
# The cutoffs `dedup retire` records (only it moves them); a caller's Params leaving them unset agrees with any index.
RETENTION = ("retired_before", "purged_before")

# The rewrite model of verifier v3 (see dedup.verify.rewrite_probability): intercept, then the weights of
# ordered, loose, anchors, figures, containment, jaccard; written by scripts/fit_rewrite_model.py.
REWRITE_MODEL = (-10.3819, 7.2248, -1.3328, 2.7644, 3.6038, -0.7686, 3.3507)
# The trees each verifier reads unless told otherwise (dedup/data/rewrite_trees-<version>.npz, written by
# scripts/fit_rewrite_trees.py); an index records the ones it was made with.
REWRITE_TREES = {"v4": "l2r-dev-v1", "v5": "l2r-dev-v2", "v6": "l2r-dev-v2", "v7": "l2r-dev-v2", "v8": "l2r-dev-v2",
                 "v9": "l2r-dev-v2", "v10": "l2r-dev-v2"}
# v7's to v10's second trees (the same kind of file; it also names the encoder and the first trees' floor it was
# fitted above): v7 and v8 one fit, v8's cut lower by the different-story links its template check drops; v9's fitted
# on the caps' held links as well, and read by v10 (the excerpts it releases from the caps go to the copy rule)
PARAPHRASE_TREES = {"v7": "l2r-dev-v3", "v8": "l2r-dev-v4", "v9": "l2r-dev-v5", "v10": "l2r-dev-v5"}


class ParamsError(DedupError, ValueError):
    """Parameters that are invalid on their own or do not match an existing index."""


@functools.lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising false positives + false negatives (weighted alike), as datasketch's `MinHashLSH`
    picks them: the first (b, r), b then r ascending, with the least error. Both errors integrate 1 − (1 − s^r)^b,
    a polynomial of degree b·r ≤ num_perm, so Gauss–Legendre with num_perm // 2 + 1 nodes is exact; all (b, r) at
    once take ~12 ms, where datasketch's `quad` per pair, with its import, held a new index's ingest ~0.1 s."""
    b, r = zip(*[(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)])
    b, r = np.array(b, np.float64)[:, None], np.array(r, np.float64)[:, None]
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 1)

    def integral(lo: float, hi: float, collide: bool) -> np.ndarray:
        s = (hi - lo) / 2 * x + (hi + lo) / 2
        p = 1 - (1 - s ** r) ** b  # probability that a pair of similarity s shares a band
        return (p if collide else 1 - p) @ w * (hi - lo) / 2

    error = 0.5 * integral(0.0, threshold, True) + 0.5 * integral(threshold, 1.0, False)
    best = int(np.argmin(error))
    return int(b[best, 0]), int(r[best, 0])


@dataclass(frozen=True)
class Params:
    """Settings of an index. Defaults are the tuned, recommended configuration (see README, Detection quality)."""

    normalizer: str = "nfkc-casefold-alnum-v1"
    shingle: str = "pair"
    shingle_size: int = 4
    shingler: str = "v1"
    lead_words: int = 150
    hash: str = "xxh32"
    scheme: str = "affine32"
    seed: int = 1
    num_perm: int = 192
    threshold: float = 0.1
    bands: int = 0
    rows: int = 0
    min_bands: int = 3
    # Anchor bands: MinHash of a text's rare stems (not among `common_stems`), which a rewrite keeps while it
    # replaces most word pairs; counted with the other bands towards min_bands.
    anchor_bands: int = 64
    anchor_rows: int = 2
    common_stems: str = "news2000-v1"
    # Verification and clustering: they change `pairs` and `clusters`, so they are part of the contract too.
    min_words: int = 25
    brief_words: int = 60
    verify_threshold: float = 0.7
    cluster_threshold: float = 0.3
    verifier: str = "v10"
    rewrite_model: tuple[float, ...] = REWRITE_MODEL
    rewrite_trees: str = ""  # v4 to v10: the verifier's own (REWRITE_TREES) unless set
    paraphrase_trees: str = ""  # v7 to v10: the verifier's own (PARAPHRASE_TREES) unless set
    # Time window (dedup.windows): pairs only of documents dated at most `window_days` apart (0 = no window), and
    # bucket files cut into periods of `period_days` (the window's length unless set) so a night reads few of them.
    window_days: int = 0
    period_days: int = 0
    # Retention (dedup.retire, dedup.windows.Retention): later batches index a document dated before
    # `retired_before` without buckets and reject one dated before `purged_before` ("YYYY-MM-DD HH:MM:SS" UTC,
    # "" = none), as if it had been there when `dedup retire` ran.
    retired_before: str = ""
    purged_before: str = ""

    def __post_init__(self) -> None:
        if self.shingle not in SHINGLE_KINDS:
            raise ParamsError(f"shingle must be one of {SHINGLE_KINDS}, got {self.shingle!r}")
        if self.shingler not in SHINGLERS:
            raise ParamsError(f"shingler must be one of {SHINGLERS} (this dedup's shingles), got {self.shingler!r}")
        if not 1 <= self.shingle_size <= 16:
            raise ParamsError(f"shingle_size must be in 1..16, got {self.shingle_size}")
        if self.hash != "xxh32":
            raise ParamsError(f"hash must be 'xxh32', got {self.hash!r}")
        if self.scheme != "affine32":
            raise ParamsError(f"scheme must be 'affine32', got {self.scheme!r}")
        if not 1 <= self.num_perm <= 1024:
            raise ParamsError(f"num_perm must be in 1..1024, got {self.num_perm}")
        if not 0.0 < self.threshold < 1.0:
            raise ParamsError(f"threshold must be in (0, 1), got {self.threshold}")
        if (self.bands == 0) != (self.rows == 0):
            raise ParamsError("give both bands and rows, or neither (then they follow from threshold)")
        if self.bands == 0:
            b, r = optimal_bands(self.threshold, self.num_perm)
            object.__setattr__(self, "bands", b)
            object.__setattr__(self, "rows", r)
        if self.bands * self.rows > self.num_perm:
            raise ParamsError(f"bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        if self.anchor_bands < 0 or self.anchor_rows < 1:
            raise ParamsError(f"anchor_bands must be >= 0 and anchor_rows >= 1, got {self.anchor_bands}, "
                              f"{self.anchor_rows}")
        if self.anchor_bands * self.anchor_rows > self.num_perm:
            raise ParamsError(f"anchor_bands*anchor_rows = {self.anchor_bands * self.anchor_rows} exceeds num_perm = "
                              f"{self.num_perm}")
        if self.anchor_bands and self.shingle not in ("pair", "stem"):
            raise ParamsError("anchor bands need stems: shingle must be 'pair' or 'stem' (or anchor_bands = 0)")
        if self.anchor_bands:
            from dedup.shingle import common_stems
            try:
                common_stems(self.common_stems)
            except ValueError as e:
                raise ParamsError(str(e)) from None
            if self.shingle_size not in (4, 5):
                raise ParamsError(f"anchor bands cut stems to 4 or 5 characters, got shingle_size {self.shingle_size}")
        if not 1 <= self.min_bands <= self.all_bands:
            raise ParamsError(f"min_bands must be in 1..{self.all_bands}, got {self.min_bands}")
        if self.lead_words < 0:
            raise ParamsError(f"lead_words must be >= 0 (0 = no lead bands), got {self.lead_words}")
        if self.min_words < 1:
            raise ParamsError(f"min_words must be >= 1, got {self.min_words}")
        if not 0.0 < self.cluster_threshold <= 1.0:
            raise ParamsError(f"cluster_threshold must be in (0, 1], got {self.cluster_threshold}")
        if self.verifier not in VERIFIERS:
            raise ParamsError(f"verifier must be one of {VERIFIERS}, got {self.verifier!r}")
        object.__setattr__(self, "rewrite_model", tuple(float(w) for w in self.rewrite_model))
        if self.verifier == "v3" and not (self.common_stems and len(self.rewrite_model) == len(REWRITE_MODEL)):
            raise ParamsError(f"verifier v3 needs common_stems and a rewrite_model of {len(REWRITE_MODEL)} numbers")
        if self.verifier in REWRITE_TREES:
            from dedup.verify import TREE_FEATURES
            if not self.common_stems:
                raise ParamsError(f"verifier {self.verifier} needs common_stems")
            trees = self._trees("rewrite_trees", REWRITE_TREES)
            unknown = [f for f in trees.features if f not in TREE_FEATURES[self.verifier]]
            if unknown:
                raise ParamsError(f"rewrite_trees {self.rewrite_trees!r} read signals verifier {self.verifier} does not "
                                  f"compute ({', '.join(unknown)})")
        if self.paraphrase_trees and self.verifier not in PARAPHRASE_TREES:
            raise ParamsError(f"paraphrase_trees is read by verifier {', '.join(PARAPHRASE_TREES)} only, not by "
                              f"{self.verifier}")
        if self.verifier in PARAPHRASE_TREES:
            from dedup.verify import PARAPHRASE_FEATURES
            second = self._trees("paraphrase_trees", PARAPHRASE_TREES)
            unknown = [f for f in second.features if f not in PARAPHRASE_FEATURES]
            if unknown or not second.encoder:
                raise ParamsError(f"paraphrase_trees {self.paraphrase_trees!r} are not second trees of verifier "
                                  f"{self.verifier} ({', '.join(unknown) or 'no encoder named'})")
        if not 0.0 < self.verify_threshold <= 1.0:
            raise ParamsError(f"verify_threshold must be in (0, 1], got {self.verify_threshold}")
        if self.window_days < 0 or self.period_days < 0:
            raise ParamsError(f"window_days and period_days must be >= 0, got {self.window_days}, {self.period_days}")
        if self.period_days and not self.window_days:
            raise ParamsError("period_days needs a window (window_days)")
        if self.window_days and not self.period_days:
            object.__setattr__(self, "period_days", self.window_days)
        for name in RETENTION:
            if getattr(self, name):
                object.__setattr__(self, name, _utc_text(name, getattr(self, name)))
        if self.purged_before and not self.purged_before <= self.retired_before:
            raise ParamsError(f"purged_before {self.purged_before!r} needs retired_before at or after it, got "
                              f"{self.retired_before!r}")

    def _trees(self, name: str, defaults: dict[str, str]) -> Forest:
        """The shipped trees the parameter `name` names, set to the verifier's own (`defaults`) unless given."""
        from dedup.trees import forest
        if not getattr(self, name):
            object.__setattr__(self, name, defaults[self.verifier])
        try:
            return forest(getattr(self, name))
        except ValueError as e:
            raise ParamsError(str(e)) from None

    @property
    def all_bands(self) -> int:
        """Bands a document has: whole text (0..bands-1), lead (bands..2*bands-1), anchors (after them)."""
        return 2 * self.bands + self.anchor_bands

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def manifest_dict(self) -> dict:
        """`to_dict` without the parameters of UNLESS_SET left unset, 0 or "" (what the manifest records)."""
        return {k: v for k, v in self.to_dict().items() if not (k in UNLESS_SET and not v)}

    @classmethod
    def from_dict(cls, d: dict) -> Params:
        d = {"shingler": "v1", **d}  # indexes made before the shingler was recorded were made with v1
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ParamsError(f"unknown parameters in manifest: {sorted(unknown)}")
        return cls(**{**LEGACY, **d})

    def check_requested(self, requested: dict) -> None:
        """Refuse to mix: a requested value that differs from this (stored) one would make old and new
        signatures, buckets or pairs incomparable. `requested` holds only what the caller set explicitly."""
        mine = self.to_dict()
        requested = {k: v for k, v in requested.items() if not (k in RETENTION and not v)}
        unknown = set(requested) - set(mine)
        if unknown:
            raise ParamsError(f"unknown parameters: {sorted(unknown)}")
        diff = [f"{k}: index has {mine[k]!r}, requested {v!r}" for k, v in requested.items() if mine[k] != v]
        if diff:
            raise ParamsError("parameters differ from the existing index (" + "; ".join(diff) + ")")


def _utc_text(name: str, value: str) -> str:
    """A recorded cutoff in one form, "YYYY-MM-DD HH:MM:SS" in UTC, so that two compare as text and as dates."""
    try:
        at = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ParamsError(f"{name} must be an ISO date (2024-01-01 or 2024-01-01 00:00:00), got {value!r}") from None
    if at.tzinfo is not None:
        at = at.astimezone(timezone.utc).replace(tzinfo=None)
    return at.isoformat(sep=" ")
