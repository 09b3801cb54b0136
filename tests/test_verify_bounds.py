"""Pairs that certainly score below KEEP_SCORE are left out unscored when only the stored pairs are wanted (as
ingest does): on the real text of data/ and tests/rewrites/, the stored pairs are the same, every column equal."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import load_articles, load_truth

from dedup.params import Params
from dedup.store import positions
from dedup.verify import KEEP_SCORE, Profiles, _unstored, copy_may_keep, score_pairs, verify_pairs

REWRITES = Path(__file__).parent / "rewrites" / "l2r_sample.jsonl"


@pytest.fixture(scope="module")
def pairs() -> tuple[pa.Table, pa.Table]:
    """(candidates, documents): the sample's articles and the rewrites; every pair of one story of the sample,
    every pair among the rewrites (originals, rewrites, other stories) and 20 random partners for each article
    (mostly unrelated, as most candidates are)."""
    articles = load_articles()
    rewrites = [json.loads(line) for line in REWRITES.open(encoding="utf-8")]
    truth = load_truth()
    stories: dict[str, list[str]] = {}
    for r in articles:
        stories.setdefault(truth.get(r["id"], r["id"]), []).append(r["id"])
    groups = [*stories.values(), [r["id"] for r in rewrites]]
    found = {(x, y) for g in groups for x in g for y in g if x < y}
    rng = random.Random(18)
    ids = [r["id"] for r in articles]
    found |= {(min(x, y), max(x, y)) for x in ids for y in rng.sample(ids, 20) if x != y}
    a, b = zip(*sorted(found))
    cands = pa.table({"doc_a": a, "doc_b": b, "bands": pa.array(rng.choices(range(3, 40), k=len(a)), pa.int32())})
    return cands, pa.table({"doc_id": ids + [r["id"] for r in rewrites],
                            "text": [r["text"] for r in articles + rewrites]})


@pytest.mark.parametrize("verifier", ["v2", "v3", "v5", "v6", "v7", "v8", "v9", "v10"])
def test_stored_only_gives_the_stored_pairs_of_a_full_scoring(pairs: tuple[pa.Table, pa.Table], verifier: str
                                                             ) -> None:
    cands, docs = pairs
    p = Params(verifier=verifier)
    full, some = verify_pairs(cands, docs, p), verify_pairs(cands, docs, p, stored_only=True)
    stored = full.filter(pc.greater_equal(full["score"], KEEP_SCORE))
    assert stored.num_rows >= 75 and (verifier in ("v2", "v3") or "rewrite" in stored["rule"].to_pylist())
    assert some.filter(pc.greater_equal(some["score"], KEEP_SCORE)).equals(stored)
    ia, ib = positions(cands["doc_a"], docs["doc_id"]), positions(cands["doc_b"], docs["doc_id"])
    prof = Profiles(docs["text"], verifier, p.common_stems)
    left_out = _unstored(prof, ia, ib, np.ones(len(ia), bool), p)
    if verifier == "v3":  # its regression reads every signal: nothing is left out
        assert not left_out.any()
    else:  # most unrelated pairs are left out
        assert left_out.mean() > 0.5 and some.num_rows == len(ia) - left_out.sum()


def test_the_bound_never_falls_below_the_aligned_share(pairs: tuple[pa.Table, pa.Table]) -> None:
    """`copy_may_keep` is False only where `aligned` (which bounds every copy-rule score) is below KEEP_SCORE, and
    it is False for most of these pairs, by OCR class (v2, v6) or letter by letter (v1)."""
    cands, docs = pairs
    ia, ib = positions(cands["doc_a"], docs["doc_id"]), positions(cands["doc_b"], docs["doc_id"])
    for verifier in ("v1", "v2", "v6"):
        prof = Profiles(docs["text"], verifier, Params().common_stems)
        aligned = score_pairs(prof, ia, ib)[0]
        may = copy_may_keep(prof, ia, ib)
        assert (aligned[~may] < KEEP_SCORE).all()
        assert (~may).sum() > len(ia) // 2
