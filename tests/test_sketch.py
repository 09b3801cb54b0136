"""normalize → shingle → sketch → band: the fast kernels agree with the references and with datasketch."""

from __future__ import annotations

import numpy as np
import pytest
import xxhash
from datasketch import LeanMinHash, MinHash, MinHashLSH

from dedup.bands import band_keys, bucket_key
from dedup.normalize import normalize_text, tokens
from dedup.params import Params, ParamsError, optimal_bands
from dedup.shingle import shingles
from dedup.sketch import sketch_batch
from dedup.verify import profiles

from conftest import ARTICLES, SEED_COPY, SEED_ORIGINAL


def seed_texts() -> tuple[str, str]:
    orig = (ARTICLES / "seeds" / f"{SEED_ORIGINAL}.txt").read_text("utf-8")
    copy = (ARTICLES / "seeds" / f"{SEED_COPY}.txt").read_text("utf-8")
    return orig, copy


def test_normalize_folds_unicode_case_and_punctuation_on_real_text() -> None:
    orig, _ = seed_texts()
    norm = normalize_text(orig)
    assert "“every inch of nato territory,”" in orig.lower()
    assert "vowed friday to defend every inch of nato territory after" in norm
    assert "moscow s full scale invasion" in norm  # curly apostrophe and hyphen become separators
    assert norm == norm.casefold() and "  " not in norm and norm == norm.strip()
    assert normalize_text("Straße ﬁne ＡＢＣ") == "strasse fine abc"  # casefold + NFKC compatibility forms
    assert tokens("U.S.-led") == ["u", "s", "led"]


@pytest.mark.parametrize("kind,size", [("char", 5), ("char", 3), ("word", 1), ("word", 5)])
def test_signatures_are_bit_identical_to_datasketch(articles: list[dict], kind: str, size: int) -> None:
    texts = [a["text"] for a in articles[:60]] + list(seed_texts()) + ["Ünïcödé 日本語 ﬁ", "a", "tiny text"]
    sigs, words, n_sh = sketch_batch(texts, kind, size, 128, 7)
    for text, sig, n in zip(texts, sigs, n_sh):
        sh = shingles(text, kind, size)
        m = MinHash(num_perm=128, seed=7, hashfunc=xxhash.xxh32_intdigest)
        m.update_batch(sh)
        assert np.array_equal(sig, m.hashvalues)
        assert n == len(sh)


def test_stored_signatures_work_in_datasketch_lsh(articles: list[dict]) -> None:
    orig, copy = seed_texts()
    texts = [orig, copy] + [a["text"] for a in articles[:100]]
    sigs, _, _ = sketch_batch(texts, "char", 5, 128, 1)
    lsh = MinHashLSH(threshold=0.3, num_perm=128)
    for i, s in enumerate(sigs):
        lsh.insert(str(i), LeanMinHash(seed=1, hashvalues=s, scheme="affine32"))
    assert "1" in lsh.query(LeanMinHash(seed=1, hashvalues=sigs[0], scheme="affine32"))


def test_profiles_match_reference_shingle_sets(articles: list[dict]) -> None:
    texts = [a["text"] for a in articles[:20]]
    for text, prof in zip(texts, profiles(texts, "char", 5)):
        ref = np.unique(np.array([xxhash.xxh32_intdigest(s) for s in shingles(text, "char", 5)], dtype=np.uint32))
        assert np.array_equal(prof, ref)


def test_band_keys_match_reference_and_datasketch_band_choice() -> None:
    sigs, _, _ = sketch_batch(list(seed_texts()), "char", 5, 128, 1)
    p = Params()
    keys = band_keys(sigs, p.bands, p.rows)
    for d in range(2):
        for b in range(p.bands):
            assert int(keys[d, b]) == bucket_key(b, sigs[d, b * p.rows:(b + 1) * p.rows].tolist())
    for t in (0.3, 0.5, 0.8):
        lsh = MinHashLSH(threshold=t, num_perm=128)
        assert optimal_bands(t, 128) == (lsh.b, lsh.r)
    # the seed pair shares at least one bucket under the default banding
    assert (keys[0] == keys[1]).any()


def test_params_validation() -> None:
    with pytest.raises(ParamsError):
        Params(shingle="sentence")
    with pytest.raises(ParamsError):
        Params(bands=20, rows=10)
    with pytest.raises(ParamsError):
        Params(bands=4)
