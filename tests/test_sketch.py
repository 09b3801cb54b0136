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


@pytest.mark.parametrize("kind,size", [("stem", 4), ("stem", 6), ("char", 5), ("char", 3), ("word", 1), ("word", 5)])
def test_signatures_are_bit_identical_to_datasketch(articles: list[dict], kind: str, size: int) -> None:
    texts = [a["text"] for a in articles[::5]] + list(seed_texts()) + ["Ünïcödé 日本語 ﬁ", "a", "tiny text", "the of"]
    sk = sketch_batch(texts, kind, size, 128, 7, lead_words=40)
    for text, sig, lead, n in zip(texts, sk.signatures, sk.lead, sk.shingles):
        for got, lead_words in ((sig, 0), (lead, 40)):
            sh = shingles(text, kind, size, lead_words)
            m = MinHash(num_perm=128, seed=7, hashfunc=xxhash.xxh32_intdigest)
            m.update_batch(sh)
            assert np.array_equal(got, m.hashvalues)
        assert n == len(shingles(text, kind, size))


def test_stem_shingles_keep_content_word_stems() -> None:
    orig, copy = seed_texts()
    sh = shingles(orig, "stem", 4)
    assert sh[:6] == [b"unit", b"stat", b"vowe", b"frid", b"defe", b"ever"]  # "The", "to", "of" are stop words
    a, b = set(shingles(orig, "stem", 4)), set(shingles(copy, "stem", 4))
    c5a, c5b = set(shingles(orig, "char", 5)), set(shingles(copy, "char", 5))
    assert len(a & b) / len(a | b) > len(c5a & c5b) / len(c5a | c5b) + 0.1  # stems survive the round trip better


def test_stored_signatures_work_in_datasketch_lsh(articles: list[dict]) -> None:
    orig, copy = seed_texts()
    texts = [orig, copy] + [a["text"] for a in articles[:100]]
    sigs = sketch_batch(texts, "stem", 4, 128, 1).signatures
    lsh = MinHashLSH(threshold=0.3, num_perm=128)
    for i, s in enumerate(sigs):
        lsh.insert(str(i), LeanMinHash(seed=1, hashvalues=s, scheme="affine32"))
    assert "1" in lsh.query(LeanMinHash(seed=1, hashvalues=sigs[0], scheme="affine32"))


def test_band_keys_match_reference_and_datasketch_band_choice() -> None:
    p = Params()
    sk = sketch_batch(list(seed_texts()), p.shingle, p.shingle_size, 128, 1, p.lead_words)
    sigs = sk.signatures
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
