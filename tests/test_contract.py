"""The index contract: every constant that changes buckets or pairs is pinned by a version the manifest records
(`shingler`, `verifier`; the other settings are parameters of their own), so that an index never mixes
documents shingled or pairs verified two ways.

`tests/contract.json` holds, per version, a digest of the constants it pins. Changing one of them without a
new version fails here: give the new behaviour a new version (an index records its own and keeps it), then
record the new version's digest."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import pytest

import dedup
from dedup.params import Params, ParamsError
from dedup.trees import shipped

RECORDED = Path(__file__).resolve().parent / "contract.json"

# Which module constants each version pins, by name. Verification reads shingle's stop words too.
PINNED = {
    "shingler": {"dedup.shingle": ["STOPWORDS", "PAIR_WINDOW", "KINDS"]},
    "verifier": {"dedup.verify": ["SENT_MATCH", "REORDERED_JACCARD", "KEEP_SCORE", "PREFIX", "MAX_CODED_DIGITS",
                                  "MIN_SENT_WORDS", "OCR_PAIRS", "OCR_CLASS"],
                 "dedup.shingle": ["STOPWORDS"]},
}
# what a later version pins besides its kind's constants: verifier v3's rewrite signals
PINNED_TOO = {"verifier v3": {"dedup.verify": ["ANCHOR_WEIGHT", "LOOSE_MATCH", "REWRITE_SIGNALS"]},
              "verifier v4": {"dedup.verify": ["ANCHOR_WEIGHT", "LOOSE_MATCH", "REWRITE_SIGNALS",
                                               "REWRITE_MIN_ANCHORS"],
                              "dedup.embed": ["TOKEN", "SENTENCE", "STOP_WORDS", "SIF_A", "CHAIN_COSINES",
                                              "EMBED_SIGNALS"]}}
# v5: v4's, and its structure and word signals
PINNED_TOO["verifier v5"] = {
    "dedup.verify": PINNED_TOO["verifier v4"]["dedup.verify"],
    "dedup.embed": [*PINNED_TOO["verifier v4"]["dedup.embed"], "STRUCTURE_SIGNALS", "WORD", "WORD_SIGNALS"],
    "dedup.rewrite_kernels": ["MUTUAL_COSINE", "PLACED_COSINE", "VERBATIM_COSINE", "SOFT_FLOORS"]}
# v6: v5's, and the caps for short texts, which hold down only its copy rule
PINNED_TOO["verifier v6"] = {**PINNED_TOO["verifier v5"], "dedup.verify": [
    *PINNED_TOO["verifier v5"]["dedup.verify"], "BRIEF_ALIGNED", "BRIEF_JACCARD", "SHORT_WORDS", "SHORT_ALIGNED",
    "SHORT_JACCARD"]}
# v7: v6's, and the paraphrase signals its second trees read (the encoder and the trees are pinned by their files)
PINNED_TOO["verifier v7"] = {**PINNED_TOO["verifier v6"],
                             "dedup.embed": [*PINNED_TOO["verifier v6"]["dedup.embed"], "PARAPHRASE_SIGNALS"],
                             "dedup.paraphrase": ["MAX_TOKENS"]}
# v8: v7's, and its template check
PINNED_TOO["verifier v8"] = {**PINNED_TOO["verifier v7"], "dedup.verify": [
    *PINNED_TOO["verifier v7"]["dedup.verify"], "TEMPLATE_WORDS", "TEMPLATE_PROBABILITY", "TEMPLATE_GRAMS",
    "TEMPLATE_GRAM_CONTAINMENT", "TEMPLATE_GRAM_JACCARD"]}
# v9: v8's (which pairs its second trees decide is its own code; its trees are pinned by their file)
PINNED_TOO["verifier v9"] = PINNED_TOO["verifier v8"]
# v10: v9's, and which excerpts its caps for short texts release
PINNED_TOO["verifier v10"] = {**PINNED_TOO["verifier v9"], "dedup.verify": [
    *PINNED_TOO["verifier v9"]["dedup.verify"], "EXCERPT_ALIGNED", "EXCERPT_CONTAINMENT"]}


def digest(kind: str, version: str | None = None) -> str:
    pinned = [(module, name) for module, names in PINNED[kind].items() for name in names]
    pinned += [(module, name) for module, names in PINNED_TOO.get(f"{kind} {version}", {}).items() for name in names]
    values = {f"{module}.{name}": getattr(importlib.import_module(module), name) for module, name in pinned}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=list).encode()).hexdigest()


@pytest.mark.parametrize("kind, version", [("shingler", "v1"), ("verifier", "v2"), ("verifier", "v3"),
                                           ("verifier", "v4"), ("verifier", "v5"),
                                           ("verifier", "v6"), ("verifier", "v7"), ("verifier", "v8"),
                                           ("verifier", "v9"), ("verifier", "v10")])
def test_pinned_constants_change_only_with_their_version(kind: str, version: str) -> None:
    key, now = f"{kind} {version}", digest(kind, version)
    recorded = json.loads(RECORDED.read_text("utf-8"))
    assert key in recorded, f"no digest recorded for {key}: add \"{key}\": \"{now}\" to {RECORDED.name}"
    assert recorded[key] == now, (
        f"constants pinned by {key} changed ({', '.join(n for ns in PINNED[kind].values() for n in ns)}): indexes "
        f"made with {key} would change meaning. Give the change a new {kind} version, or restore the constants")


def test_manifest_records_the_versions(tmp_path: Path) -> None:
    dedup.ingest([Path(__file__).resolve().parent.parent / "data" / "articles" / "seeds"], tmp_path / "idx")
    params = json.loads((tmp_path / "idx" / "manifest.json").read_text("utf-8"))["params"]
    assert {k: params[k] for k in PINNED} == {k: getattr(Params(), k) for k in PINNED}


def test_an_index_from_before_the_shingler_was_recorded_reads_as_v1() -> None:
    old = json.loads((Path(__file__).resolve().parent / "format_v1" / "idx" / "manifest.json").read_text("utf-8"))
    assert "shingler" not in old["params"]
    assert Params.from_dict(old["params"]).shingler == "v1"


def test_a_version_this_dedup_does_not_implement_is_refused() -> None:
    with pytest.raises(ParamsError, match="shingler"):
        Params.from_dict({**Params().to_dict(), "shingler": "v9"})


@pytest.mark.parametrize("kind, module, name, value", [("verifier", "dedup.verify", "SENT_MATCH", 0.55),
                                                       ("shingler", "dedup.shingle", "PAIR_WINDOW", 3)])
def test_the_digest_sees_a_changed_constant(kind: str, module: str, name: str, value: object,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    before = digest(kind)
    monkeypatch.setattr(importlib.import_module(module), name, value)
    assert digest(kind) != before


def test_common_stems_change_only_with_their_version() -> None:
    """The shipped common stems decide anchor buckets and v3's anchors: their file is pinned by the version name
    an index records (`common_stems`)."""
    from dedup.shingle import COMMON_STEMS_FILE

    version = Params().common_stems
    key, now = f"common_stems {version}", hashlib.sha256(COMMON_STEMS_FILE.read_bytes()).hexdigest()
    recorded = json.loads(RECORDED.read_text("utf-8"))
    assert recorded.get(key) == now, f"{COMMON_STEMS_FILE.name} changed: give it a new version ({key}: {now})"


@pytest.mark.parametrize("version", shipped())
def test_shipped_model_files_change_only_with_their_version(version: str) -> None:
    """The trees of verifiers v4 to v9 (`rewrite_trees`, `paraphrase_trees`, which name their word vectors and
    the second trees of v7 to v9 their paraphrase encoder) decide pairs: every shipped trees file, its vectors and its
    encoder are pinned by the versions an index records."""
    from dedup.trees import DATA, forest

    recorded = json.loads(RECORDED.read_text("utf-8"))
    trees = forest(version)
    for key, name in ((f"rewrite_trees {version}", f"rewrite_trees-{version}.npz"),
                      (f"word_vectors {trees.word_vectors}", f"word_vectors-{trees.word_vectors}.npz"),
                      *([(f"paraphrase_encoder {trees.encoder}", f"paraphrase-{trees.encoder}.npz")]
                        if trees.encoder else [])):
        now = hashlib.sha256((DATA / name).read_bytes()).hexdigest()
        assert recorded.get(key) == now, f"{name} changed: give it a new version ({key}: {now})"


def test_each_verifier_reads_its_own_trees_unless_told() -> None:
    """A new index records the trees its verifier reads; trees that read signals a verifier lacks are refused."""
    from dedup.params import REWRITE_TREES

    assert {v: Params(verifier=v).rewrite_trees for v in REWRITE_TREES} == REWRITE_TREES
    with pytest.raises(ParamsError, match="does not compute"):
        Params(verifier="v4", rewrite_trees=REWRITE_TREES["v5"])


def test_v7_to_v10_read_their_second_trees_and_no_other_verifier_does() -> None:
    """v7 to v10 record the second trees they read (they name the paraphrase encoder); first trees are no second ones,
    and a verifier without second trees refuses them."""
    from dedup.params import PARAPHRASE_TREES

    assert Params(verifier="v7").paraphrase_trees == PARAPHRASE_TREES["v7"]
    assert Params(verifier="v8").paraphrase_trees == PARAPHRASE_TREES["v8"] != PARAPHRASE_TREES["v7"]
    assert Params(verifier="v9").paraphrase_trees == PARAPHRASE_TREES["v9"] != PARAPHRASE_TREES["v8"]
    assert Params(verifier="v10").paraphrase_trees == PARAPHRASE_TREES["v9"]
    assert Params(verifier="v6").paraphrase_trees == ""
    with pytest.raises(ParamsError, match="not second trees"):
        Params(verifier="v7", paraphrase_trees=Params(verifier="v7").rewrite_trees)
    with pytest.raises(ParamsError, match="verifier v7, v8, v9, v10 only"):
        Params(verifier="v6", paraphrase_trees=PARAPHRASE_TREES["v7"])
