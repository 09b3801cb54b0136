"""normalize → shingle → sketch → band: the fast kernels agree with the references and with datasketch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pytest
import xxhash
from datasketch import LeanMinHash, MinHash, MinHashLSH
from datasketch.lsh import _optimal_param

from dedup.chunked import CHUNKS_PER_THREAD
from dedup.bands import band_keys, bucket_key, degenerate, inverse_multipliers
from dedup.normalize import (CHAR_FOLD, FAST_FOLD, FOLD_SLOW, WORD_CHAR, fast_fold, fold, normalize_text,
                             squeeze, tokens)
from dedup.params import Params, ParamsError, optimal_bands
from dedup.shingle import STOP_HASHES, STOPWORDS, hash_set, in_set, shingles
from dedup.hashfunc import xxh32_packed, xxh32_spans
from dedup.sketch import EMPTY, permutations, sketch_batch
from dedup.verify import Profiles, rewrite_signals, score_pairs

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


def test_word_char_table_marks_letters_digits_and_marks_of_every_code_point() -> None:
    """WORD_CHAR is built from a regex over all code points at once; it must equal the definition, code point by
    code point: `isalnum()` or a combining mark (Mn, Mc, Me)."""
    want = np.array([chr(cp).isalnum() or unicodedata.category(chr(cp))[0] == "M" for cp in range(0x110000)])
    assert np.array_equal(WORD_CHAR.astype(bool), want)
    assert WORD_CHAR[ord("_")] == 0 and WORD_CHAR[0x0301] == 1 and WORD_CHAR[ord("٣")] == 1


@pytest.mark.parametrize("kind,size", [("pair", 4), ("pair", 6), ("stem", 4), ("stem", 6), ("char", 5), ("char", 3), ("word", 1), ("word", 5)])
def test_signatures_are_bit_identical_to_datasketch(articles: list[dict], kind: str, size: int) -> None:
    texts = [a["text"] for a in articles[::5]] + list(seed_texts()) + ["Ünïcödé 日本語 ﬁ", "a", "tiny text", "the of", "Straße strasse STRASSE été"]
    # leads (40 tokens) with one content word, and with two whose pairs reach past the lead
    texts += ["Straße " + "the of " * 30 + "market property rises again", "alpha beta " + "the " * 38 + "gamma delta"]
    # stems of 2 to 16 UTF-8 bytes next to each other: pairs packed in registers (up to 8 bytes a stem and 15 a
    # pair, split across both words at every offset) and pairs hashed from the buffer
    texts += ["ab ñabc xy ññab abcdefg ñññb ñññá прага ab 日本語で кіев abcd ñññññññ z1 日本 zz ёёёё ёёё qq ñññb ёё "
              "ññññ ёё ññab ёёёb"]
    sk = sketch_batch(texts, kind, size, 128, 7, lead_words=40)
    for text, sig, lead, n in zip(texts, sk.signatures, sk.lead, sk.shingles):
        for got, lead_words in ((sig, 0), (lead, 40)):
            sh = shingles(text, kind, size, lead_words)
            m = MinHash(num_perm=128, seed=7, hashfunc=xxhash.xxh32_intdigest)
            m.update_batch(sh)
            assert np.array_equal(got, m.hashvalues)
        assert n == len(shingles(text, kind, size))
    # the same texts as Arrow chunks (how ingest passes them: slices of the input's columns), each sketched with
    # its own buffers, the CPython-folded ones included
    chunked = pa.chunked_array([pa.array(texts[:7]), pa.array(texts[7:8]), pa.array(texts[8:])])
    ck = sketch_batch(chunked, kind, size, 128, 7, lead_words=40)
    for name in ("signatures", "lead", "words", "shingles"):
        assert np.array_equal(getattr(ck, name), getattr(sk, name)), name


def test_kernels_give_the_same_results_on_one_thread_and_on_several(articles: list[dict]) -> None:
    """The sketch and verify kernels run a chunk of items at a time on a pool of threads (`dedup.chunked`): every
    item is done once whatever the chunks, so one thread and several give the same signatures and scores."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core: no second thread to compare with")
    texts = [a["text"] for a in articles]
    pairs = np.arange(len(texts) - 1), np.arange(1, len(texts))
    runs = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        try:
            sk = sketch_batch(texts, "pair", 4, 192, 1, lead_words=150, anchor_perm=32, common_stems="news2000-v1")
            runs.append([sk.signatures, sk.lead, sk.anchors, sk.words, sk.shingles,
                         *score_pairs(Profiles(texts, "v3", "news2000-v1"), *pairs),
                         *rewrite_signals(Profiles(texts, "v3", "news2000-v1"), *pairs)])
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert len(texts) > 2 * CHUNKS_PER_THREAD and runs[0][0].shape == (len(texts), 192)
    assert (runs[0][0] != EMPTY).all(axis=1).sum() > 300 and runs[0][5].max() > 0.9  # real signatures and copies
    for one, several in zip(*runs):
        assert np.array_equal(one, several)


def test_xxh32_of_packed_bytes_and_of_spans_equals_xxhash() -> None:
    rng = np.random.default_rng(5)
    for length in range(16):
        for _ in range(50):
            data = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
            lo, hi = (int.from_bytes(data[k:k + 8], "little") for k in (0, 8))
            assert xxh32_packed(np.uint64(lo), np.uint64(hi), length) == xxhash.xxh32_intdigest(data)
    # spans of 0 to 40 bytes at every offset of a padded buffer (branch-free below 16 bytes, xxh32 above)
    buf = rng.integers(0, 256, 300, dtype=np.uint8)
    starts = rng.integers(0, 240, 2000)
    ends = np.minimum(starts + rng.integers(0, 41, 2000), 284)
    want = [xxhash.xxh32_intdigest(buf[a:b].tobytes()) for a, b in zip(starts, ends)]
    assert xxh32_spans(buf, starts, ends).tolist() == want


def test_stem_shingles_keep_content_word_stems() -> None:
    orig, copy = seed_texts()
    sh = shingles(orig, "stem", 4)
    assert sh[:6] == [b"unit", b"stat", b"vowe", b"frid", b"defe", b"ever"]  # "The", "to", "of" are stop words
    a, b = set(shingles(orig, "stem", 4)), set(shingles(copy, "stem", 4))
    c5a, c5b = set(shingles(orig, "char", 5)), set(shingles(copy, "char", 5))
    assert len(a & b) / len(a | b) > len(c5a & c5b) / len(c5a | c5b) + 0.1  # stems survive the round trip better


def test_pair_shingles_are_unordered_stem_pairs_that_survive_translation(articles: list[dict]) -> None:
    orig, copy = seed_texts()
    assert shingles(orig, "pair", 4)[:4] == [b"stat unit", b"unit vowe", b"stat vowe", b"frid stat"]
    assert shingles("the market of property", "pair", 4) == shingles("property market", "pair", 4)
    assert shingles("Straße", "pair", 4) == [b"stra"]  # one content word: its stem alone
    a, b = set(shingles(orig, "pair", 4)), set(shingles(copy, "pair", 4))
    w5a, w5b = set(shingles(orig, "word", 5)), set(shingles(copy, "word", 5))
    assert len(a & b) / len(a | b) > 2 * len(w5a & w5b) / len(w5a | w5b)  # the MT copy keeps its pairs
    # unrelated real articles share few pairs, although they share many single stems
    texts = [x["text"] for x in articles[:60]]
    jac = lambda x, y: len(x & y) / len(x | y)  # noqa: E731
    pairs = [set(shingles(t, "pair", 4)) for t in texts]
    stems = [set(shingles(t, "stem", 4)) for t in texts]
    bg_pairs = np.mean([jac(pairs[i], pairs[j]) for i in range(60) for j in range(i)])
    bg_stems = np.mean([jac(stems[i], stems[j]) for i in range(60) for j in range(i)])
    assert bg_pairs < bg_stems / 4 and bg_pairs < 0.02


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
    sk = sketch_batch(list(seed_texts()), p.shingle, p.shingle_size, p.num_perm, p.seed, p.lead_words)
    sigs = sk.signatures
    a_inv, b = inverse_multipliers(p.num_perm, p.seed)
    keys, ok = band_keys(sigs, p.bands, p.rows, a_inv, b)
    for d in range(2):
        for i in range(p.bands):
            rows = slice(i * p.rows, (i + 1) * p.rows)
            assert int(keys[d, i]) == bucket_key(i, sigs[d, rows].tolist())
            assert ok[d, i] == (not degenerate(sigs[d, rows].tolist(), a_inv[rows].tolist(), b[rows].tolist()))
    # the seed pair shares at least one usable bucket under the default banding
    assert ((keys[0] == keys[1]) & ok[0]).any()


def test_band_choice_and_permutations_are_datasketchs() -> None:
    """dedup computes both itself (neither import datasketch); they must stay what datasketch picks and draws."""
    for num_perm in (16, 100, 128, 192, 256):
        for t in (0.02, 0.1, 0.3, 0.5, 0.7, 0.8, 0.95):
            # MinHashLSH's own choice (it refuses b = 1, which a high threshold with few permutations picks)
            assert optimal_bands(t, num_perm) == _optimal_param(t, num_perm, 0.5, 0.5), (t, num_perm)
    for num_perm, seed in ((192, 1), (128, 7), (1, 0), (1024, 123)):
        a, b = permutations(num_perm, seed)
        expected = MinHash(num_perm=num_perm, seed=seed).permutations
        assert a.dtype == b.dtype == np.uint32
        assert a.tolist() == expected[0].tolist() and b.tolist() == expected[1].tolist()


def test_degenerate_bands_are_those_held_by_one_shingle() -> None:
    """A band whose minima all come from one shingle is recognised from the signature alone."""
    p = Params()
    one = sketch_batch(["Chancellor"], "pair", 4, p.num_perm, p.seed).signatures  # a single shingle: "chan"
    a_inv, b = inverse_multipliers(p.num_perm, p.seed)
    _, ok = band_keys(one, p.bands, p.rows, a_inv, b)
    assert not ok.any()
    orig, _ = seed_texts()
    _, ok = band_keys(sketch_batch([orig], "pair", 4, p.num_perm, p.seed).signatures, p.bands, p.rows, a_inv, b)
    assert 0.9 < ok.mean() < 1.0 or ok.all()  # a long text has many shingles: few or no degenerate bands


def test_params_validation() -> None:
    with pytest.raises(ParamsError):
        Params(shingle="sentence")
    with pytest.raises(ParamsError):
        Params(bands=20, rows=10)
    with pytest.raises(ParamsError):
        Params(bands=4)


def test_hash_set_holds_exactly_its_members() -> None:
    """The stop-word sets of the kernels: a slot of its own for each member, found by a multiplier, so members
    whose low bits agree must all be found, and nothing else."""
    rng = np.random.default_rng(3)
    members = sorted({int(x) for x in rng.integers(1, 2**64 - 1, 170, dtype=np.uint64)} | {1, 1 + 1024, 1 + 2048})
    table = hash_set(members)
    probes = members + [int(x) for x in rng.integers(1, 2**64 - 1, 2000, dtype=np.uint64)] + [2, 1 + 4096]
    assert [in_set(table, np.uint64(h)) for h in probes] == [h in set(members) for h in probes]
    assert not in_set(table, np.uint64(0))  # the mark of an empty slot is no member
    stops = [xxhash.xxh32_intdigest(w.encode()) for w in STOPWORDS]
    assert all(in_set(STOP_HASHES, np.uint64(h)) for h in stops)


def test_kernel_folding_equals_cpython_for_every_code_point_it_folds() -> None:
    """The kernel folds texts made of Latin-1, Latin Extended and General Punctuation itself (FAST_FOLD); every
    such code point, alone and between letters, must normalize exactly as NFKC + casefold in CPython does, and
    texts with any other code point must be left to CPython."""
    fast = [cp for cp in range(len(FAST_FOLD)) if FAST_FOLD[cp] != FOLD_SLOW]
    assert len(fast) > 1000 and {ord("É"), 0x201C, ord("Ж"), 0xFFFD} <= set(fast) and ord("ß") not in fast
    # verification's table keeps each character's own fold (punctuation too), so it has none that expand
    chars = [cp for cp in range(len(CHAR_FOLD)) if CHAR_FOLD[cp] != FOLD_SLOW]
    assert all(chr(CHAR_FOLD[cp]) == fold(chr(cp)) for cp in chars) and ord(".") in chars and 0x2026 not in chars
    # no two of them compose or reorder under NFKC: folding one by one equals folding the whole text
    both = sorted(set(fast) | set(chars))
    nfkc = {cp: unicodedata.normalize("NFKC", chr(cp)) for cp in both}
    for x in both:
        for y in both:
            assert unicodedata.normalize("NFKC", chr(x) + chr(y)) == nfkc[x] + nfkc[y], (hex(x), hex(y))

    def kernel_norm(text: str) -> str | None:
        cps = np.array([ord(c) for c in text], dtype=np.uint32)
        if not fast_fold(cps, FAST_FOLD):
            return None
        out = np.empty(len(cps), dtype=np.uint32)
        return "".join(map(chr, out[:squeeze(cps, WORD_CHAR, out)]))

    for cp in fast:
        c = chr(cp)
        for text in (c, f"Ab{c}cD{c}{c} {c}x", f"{c}É…“Q”"):
            assert kernel_norm(text) == normalize_text(text), hex(cp)
    for text in ("Straße", "ﬁne", "日本", "e\u0301", "ΐ", "½", "Ünïcödé 日本語"):
        assert kernel_norm(text) is None


IMPORT_ONLY = """
import json, os, sys
before = dict(os.environ)
import dedup
loaded = open("/proc/self/maps").read()
print(json.dumps({"environ_changed": dict(os.environ) != before, "libgomp": "libgomp" in loaded}))
"""

IMPORT_LIGHT = """
import json, sys, types
import dedup
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"duckdb", "numba", "pyarrow", "scipy"})
from dedup.ingest import Summary  # the module named like the API function, and with it every stage's module
import dedup.normalize as n
print(json.dumps({"heavy": heavy, "tables": [f.cache_info().currsize for f in (n.word_char, n.fast_fold_table,
                                                                              n.char_fold_table)],
                  "ingest": isinstance(dedup.ingest, types.FunctionType), "Summary": dedup.Summary is Summary,
                  "missing": sorted(set(dedup.__all__) - set(dir(dedup))),
                  "submodule": dedup.store.compact.__module__}))
"""

JOB = """
import json, os, sys
import dedup
dedup.ingest([sys.argv[1]], sys.argv[2])
print(json.dumps({"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}))
"""


def test_import_leaves_the_process_alone() -> None:
    """`import dedup` changes no environment variable and loads no OpenMP runtime (numba loads it at the first
    parallel kernel, so a job that starts later can still choose how its threads wait)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", IMPORT_ONLY], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"environ_changed": False, "libgomp": False}


def test_import_is_light() -> None:
    """`import dedup` loads none of DuckDB, numba, Arrow and SciPy (the API names are imported on first use), no
    module builds its Unicode tables when imported (they are built at first use), and importing the module
    `dedup.ingest` leaves `dedup.ingest` the function; submodules are attributes as before (`dedup.store.compact`)."""
    out = subprocess.run([sys.executable, "-c", IMPORT_LIGHT], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"heavy": [], "tables": [0, 0, 0], "ingest": True, "Summary": True,
                                      "missing": [], "submodule": "dedup.store.compact"}


@pytest.mark.parametrize("chosen", [None, "ACTIVE"])
def test_a_job_makes_spinning_threads_wait_unless_the_user_chose(chosen: str | None, tmp_path) -> None:
    """numba's OpenMP threads would spin on a core for milliseconds after each parallel kernel, taking cores from
    ingest's threads: an ingest sets OpenMP's wait policy when it starts, before OpenMP is loaded, unless the
    user chose."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if chosen:
        env["OMP_WAIT_POLICY"] = chosen
    seeds = Path(__file__).resolve().parent.parent / "data" / "articles" / "seeds"
    out = subprocess.run([sys.executable, "-c", JOB, str(seeds), str(tmp_path / "idx")], env=env,
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == {"OMP_WAIT_POLICY": chosen or "PASSIVE"}


def test_kernel_caches_go_when_any_source_file_changes(tmp_path) -> None:
    """numba re-checks only each cached kernel's own file, not those of the functions it inlined: after a change
    to shingle.py alone, verify's cached kernel ran the old stop-word lookup on the new table (and looped). When a
    job starts, any change to the package's sources (subpackages included) drops every cached kernel; an
    unchanged package keeps them, and importing alone touches nothing."""
    import dedup

    pkg = tmp_path / "dedup"
    shutil.copytree(os.path.dirname(dedup.__file__), pkg, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def run(code: str) -> str:
        return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    def start_job() -> str:
        return run("import dedup, dedup.runtime; dedup.runtime.prepare_process(); print(dedup.__file__)")

    assert start_job() == str(pkg / "__init__.py")
    cached = [pkg / "__pycache__" / "verify._profile_texts-288.py311.nbi",  # as numba names its index files
              pkg / "batch" / "__pycache__" / "score.group_cuts-17.py311.nbi"]
    for f in cached:
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"")
    start_job()
    assert all(f.exists() for f in cached)
    (pkg / "shingle.py").write_text((pkg / "shingle.py").read_text("utf-8") + "\n# changed\n", "utf-8")
    run("import dedup")
    assert all(f.exists() for f in cached)
    start_job()
    assert not any(f.exists() for f in cached)
