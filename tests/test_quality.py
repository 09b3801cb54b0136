"""Detection quality on real text: every kind of copy is found, hard negatives and short texts stay apart,
and clusters do not chain stories together. Copies are made here from committed real articles (edits) or
committed Apertium round trips (data/articles/news_copies.jsonl)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dedup
from dedup.cluster import _average_linkage, components, partition
from dedup.shingle import STOPWORDS
from dedup.verify import Profiles, _sorted_distinct_runs, score_pairs

SENT = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    return [s for s in SENT.split(text.strip()) if s]


def abridge(text: str, share: float) -> str:
    s = sentences(text)
    return " ".join(s[: max(1, int(len(s) * share))])


def drop(text: str, share: float, rng: random.Random) -> str:
    s = sentences(text)
    keep = sorted(rng.sample(range(len(s)), max(1, int(len(s) * (1 - share)))))
    return " ".join(s[i] for i in keep)


def reorder(text: str, rng: random.Random) -> str:
    paras = [p for p in text.split("\n\n") if p.strip()] if "\n\n" in text else sentences(text)
    rng.shuffle(paras)
    return "\n\n".join(paras)


def ocr(text: str, rate: float, rng: random.Random) -> str:
    swaps = {"m": "rn", "l": "1", "O": "0", "e": "c", "i": "l", "S": "5"}
    out = []
    for ch in text:
        r = rng.random()
        if r < rate / 2 and ch in swaps:
            out.append(swaps[ch])
        elif r < rate / 2 + rate / 4 and ch.isalpha():
            continue
        else:
            out.append(ch)
    return "".join(out)


BOILERPLATE = ("Copyright 2026 Global Wire Services. All rights reserved. This material may not be published, "
               "broadcast, rewritten or redistributed. Click here to subscribe to our daily newsletter and follow "
               "us for the latest breaking news and analysis.")


def dateline(text: str) -> str:
    return "LONDON (Global Wire) - " + text + "\n\n" + BOILERPLATE


def edited_copies(articles: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """Six kinds of edited copies of real BBC/NewsArticles articles (and MT + edit combinations)."""
    rng = random.Random(7)
    originals = [a for a in articles if a["source"] in ("bbc", "www.cnn.com", "www.bbc.co.uk")
                 and len(a["text"].split()) > 250][:8]
    mt = {a["id"].split("~")[0]: a for a in articles if "~mt-" in a["id"]}
    kinds = {
        "abridge": lambda t: abridge(t, 0.55),
        "drop": lambda t: drop(t, 0.3, rng),
        "reorder": lambda t: reorder(t, rng),
        "ocr": lambda t: ocr(t, 0.03, rng),
        "dateline": dateline,
    }
    copies, origin = [], {}
    for o in originals:
        for kind, f in kinds.items():
            cid = f"{o['id']}~{kind}"
            copies.append({"id": cid, "text": f(o["text"]), "title": o["title"]})
            origin[cid] = o["id"]
    for oid, m in list(mt.items())[:6]:
        for kind, f in (("mt+abridge", lambda t: abridge(t, 0.6)), ("mt+drop", lambda t: drop(t, 0.3, rng))):
            cid = f"{m['id']}~{kind}"
            copies.append({"id": cid, "text": f(m["text"]), "title": m["title"]})
            origin[cid] = oid
    return copies, origin


@pytest.fixture(scope="module")
def quality_index(tmp_path_factory: pytest.TempPathFactory, articles: list[dict]) -> tuple[Path, dict[str, str]]:
    copies, origin = edited_copies(articles)
    path = tmp_path_factory.mktemp("quality") / "idx"
    dedup.ingest([pa.Table.from_pylist(articles), pa.Table.from_pylist(copies)], path)
    return path, origin


def clusters_of(path: Path) -> dict[str, int]:
    return {r["doc_id"]: r["cluster_id"] for r in dedup.Index(path).assignments().to_pylist()}


def test_every_copy_kind_joins_its_original(quality_index: tuple[Path, dict[str, str]]) -> None:
    path, origin = quality_index
    cl = clusters_of(path)
    missed = [c for c, o in origin.items() if cl[c] != cl[o]]
    assert not missed
    kinds = {c.rsplit("~", 1)[1] for c in origin}
    assert kinds == {"abridge", "drop", "reorder", "ocr", "dateline", "mt+abridge", "mt+drop"}


def test_sample_partition_equals_truth(quality_index: tuple[Path, dict[str, str]], truth: dict[str, str]) -> None:
    """Originals, Apertium copies and the seed pair: exactly the labelled stories, nothing merged."""
    path, origin = quality_index
    cl = clusters_of(path)
    story = {d: truth[origin.get(d, d)] if origin.get(d, d) in truth else d for d in cl}
    pred = {frozenset(p) for c in set(cl.values()) for p in [[d for d in cl if cl[d] == c]] if len(p) > 1}
    true_groups: dict[str, set[str]] = {}
    for d, s in story.items():
        true_groups.setdefault(s, set()).add(d)
    assert pred == {frozenset(g) for g in true_groups.values() if len(g) > 1}


def test_same_event_articles_stay_apart(quality_index: tuple[Path, dict[str, str]], articles: list[dict]) -> None:
    """WikiRef: 8 different articles on each of 5 events — share names and facts, are not copies."""
    path, _ = quality_index
    cl = clusters_of(path)
    wiki = [a["id"] for a in articles if a["source"] == "wikiref"]
    assert len(wiki) == 40
    assert len({cl[w] for w in wiki}) == 40
    linked = dedup.Index(path).sql(
        "SELECT count(*) AS n FROM pairs WHERE linked AND doc_a LIKE 'wikiref-%' AND doc_b LIKE 'wikiref-%'")
    assert linked["n"][0].as_py() == 0


def test_templated_reports_with_different_figures_are_not_copies(articles: list[dict]) -> None:
    """Two Reuters money-market notes share their template sentence by sentence but not their figures."""
    by_id = {a["id"]: a["text"] for a in articles}
    a, b = by_id["reuters-6359"], by_id["reuters-913"]
    prof = Profiles([a, b, a.replace("Bank of England", "central bank")])
    aligned, _, jac, con = score_pairs(prof, np.array([0, 0]), np.array([1, 2]))
    assert con[0] > 0.6           # word overlap alone would call them copies
    assert aligned[0] < 0.2       # sentences do not align once figures must agree
    assert aligned[1] == 1.0      # while a light edit of the same report aligns fully


def test_short_texts_are_indexed_but_never_clustered(tmp_path: Path) -> None:
    short = ["View comments", "Shr 12 cts vs 10 cts Net 1.2 mln vs 1.0 mln Revs 10.5 mln vs 9.8 mln"]
    rows = [{"id": f"s{i}-{j}", "text": t} for i, t in enumerate(short) for j in range(3)]
    s = dedup.ingest([pa.Table.from_pylist(rows)], tmp_path / "idx")
    assert s.indexed == 6 and s.clusters == 0
    ix = dedup.Index(tmp_path / "idx")
    assert ix.sql("SELECT count(*) AS n FROM buckets")["n"][0].as_py() == 0
    assert ix.sql("SELECT max(size) AS m FROM clusters")["m"][0].as_py() == 1


def test_no_chaining_through_a_hub(tmp_path: Path, articles: list[dict]) -> None:
    """A document stitched from the first halves of two stories links to each, but must not merge them."""
    bbc = [a for a in articles if a["source"] == "bbc" and len(a["text"].split()) > 300]
    x, y = bbc[0], bbc[1]
    hub = {"id": "hub", "text": abridge(x["text"], 0.5) + "\n\n" + abridge(y["text"], 0.5)}
    rows = [x, y, hub, {"id": "x-copy", "text": drop(x["text"], 0.2, random.Random(1))},
            {"id": "y-copy", "text": drop(y["text"], 0.2, random.Random(2))}]
    dedup.ingest([pa.Table.from_pylist(rows)], tmp_path / "idx")
    cl = clusters_of(tmp_path / "idx")
    assert cl[x["id"]] == cl["x-copy"] and cl[y["id"]] == cl["y-copy"]
    assert cl[x["id"]] != cl[y["id"]]


def test_groups_close_throughout_are_kept_whole_as_linkage_keeps_them(
        quality_index: tuple[Path, dict[str, str]]) -> None:
    """Average linkage runs only on components where some two documents scored under `cluster_threshold` (or were
    never scored); the others stay whole. On the quality sample's real scored pairs, also with pairs taken away
    or scored low, or groups chained by a bridge, the partition must be the one linkage on every component gives."""
    pairs = pq.read_table(Path(quality_index[0]) / "tables" / "pairs").to_pylist()
    ids = sorted({p["doc_a"] for p in pairs} | {p["doc_b"] for p in pairs})
    at = {d: i for i, d in enumerate(ids)}
    ia = np.array([at[p["doc_a"]] for p in pairs])
    ib = np.array([at[p["doc_b"]] for p in pairs])
    score = np.array([p["score"] for p in pairs], dtype=np.float32)
    p = dedup.Params()

    def reference(ia: np.ndarray, ib: np.ndarray, score: np.ndarray) -> set[frozenset[int]]:
        labels = components(len(ids), ia[score >= p.verify_threshold], ib[score >= p.verify_threshold])
        groups = []
        for c in np.unique(labels):
            nodes = np.flatnonzero(labels == c)
            inside = np.isin(ia, nodes) & np.isin(ib, nodes)
            sub = (_average_linkage(len(nodes), np.searchsorted(nodes, ia[inside]), np.searchsorted(nodes, ib[inside]),
                                    score[inside], p.cluster_threshold) if len(nodes) >= 3 else np.zeros(len(nodes)))
            groups += [frozenset(nodes[sub == s].tolist()) for s in np.unique(sub)]
        return set(groups)

    def fast(ia: np.ndarray, ib: np.ndarray, score: np.ndarray) -> set[frozenset[int]]:
        labels = partition(len(ids), ia, ib, score, p.verify_threshold, p.cluster_threshold)
        return {frozenset(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)}

    rng = np.random.default_rng(3)
    linked = np.flatnonzero(score >= p.verify_threshold)
    fewer = np.ones(len(ia), dtype=bool)
    fewer[rng.choice(linked, len(linked) // 4, replace=False)] = False
    low = score.copy()
    low[rng.choice(linked, len(linked) // 4, replace=False)] = p.cluster_threshold / 2
    # and bridges: one strong link between two groups chains them, as a round-up quoting both would; every other
    # pair across a bridge is scored, but low, so that those components are complete
    groups = sorted((g for g in reference(ia, ib, score) if len(g) >= 3), key=min)
    bridges = np.array([[min(g), min(h)] for g, h in zip(groups[::2], groups[1::2])])
    across = np.array([[x, y] for g, h in zip(groups[::2], groups[1::2]) for x in g for y in h
                       if (x, y) != (min(g), min(h))])
    bridged = (np.concatenate([ia, bridges[:, 0], across[:, 0]]), np.concatenate([ib, bridges[:, 1], across[:, 1]]),
               np.concatenate([score, np.full(len(bridges), 0.9, np.float32), np.full(len(across), 0.05, np.float32)]))
    split = 0
    for a, b, s in [(ia, ib, score), (ia[fewer], ib[fewer], score[fewer]), (ia, ib, low), bridged]:
        expected = reference(a, b, s)
        assert fast(a, b, s) == expected
        linked_only = s >= p.verify_threshold
        split += len(expected) - len(np.unique(components(len(ids), a[linked_only], b[linked_only])))
    assert len(groups) >= 4 and split >= len(bridges)  # groups kept whole, and groups linkage split


def test_scores_do_not_depend_on_the_order_of_a_pair(articles: list[dict]) -> None:
    """A pair's scores are a property of the two texts: (a, b) and (b, a) score alike, also when both have the
    same number of content words, where which one must find counterparts for its sentences is a choice (the
    Galician round trip of newsarticles-2829 aligns 1.0 one way, 0.987 the other)."""
    by_id = {a["id"]: a["text"] for a in articles}
    texts = [by_id["newsarticles-2829"], by_id["newsarticles-2829~mt-gl"], *list(by_id.values())[:60]]
    prof = Profiles(texts)
    rng = np.random.default_rng(7)
    ia = np.concatenate([[0], rng.integers(0, len(texts), 300)])
    ib = np.concatenate([[1], rng.integers(0, len(texts), 300)])
    forward, backward = score_pairs(prof, ia, ib), score_pairs(prof, ib, ia)
    for f, b in zip(forward, backward):
        np.testing.assert_array_equal(f, b)


def test_profile_word_counts_are_those_of_str_split(articles: list[dict]) -> None:
    """Briefs and short texts are told by whitespace words, counted in the profile kernel: they must be the
    counts of str.split(), over every whitespace code point (the table lists those up to U+3000)."""
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    texts = [a["text"] for a in articles[:40]] + ["a" + s + "b  c" + s for s in spaces] + ["", "  \n\t "]
    assert Profiles(texts).words.tolist() == [len(t.split()) for t in texts]


def test_profiles_of_stored_texts_equal_those_of_python_strings(articles: list[dict]) -> None:
    """Verification reads stored texts from Arrow's buffers and folds them in the kernel (`CHAR_FOLD`), leaving
    texts with other characters to CPython: every profile must be the one CPython's folding gives, with
    punctuation kept (sentence ends, hyphens at line ends, separators in figures), also for texts the kernel
    cannot fold ("ß", "…" between figures, "½", CJK, combining marks) placed among the others, and nulls."""
    texts = [a["text"] for a in articles[:40]]
    awkward = ["Straße … 5…6 und ½ Tasse. Noch ein Satz hier!", None, "", "日本語のテキスト。 Next one here now.",
               "Ünïcödé — “quoted.” Then ‼ more words here.", "Cafe\u0301 x‥y, 1,5 and 2.004 announ-\nced ‹›",
               "Grèce: ΑΘΉΝΑ, Москва. ЁЖ 10.000 £5 €7 ﬁne."]
    mixed = texts[:20] + awkward + texts[20:]
    # two chunks, the second a slice (its offsets do not start at 0), as rows read from two row groups
    chunked = pa.chunked_array([pa.array(mixed[:23]), pa.array(["x"] * 3 + mixed[23:]).slice(3)])
    for verifier in ("v1", "v2"):
        kernel, python = Profiles(chunked, verifier), Profiles(mixed, verifier)
        for name in ("tokens", "sent_offsets", "doc_sents", "numbers", "doc_tokens", "doc_offsets", "words"):
            np.testing.assert_array_equal(getattr(kernel, name), getattr(python, name), err_msg=f"{verifier} {name}")
        assert kernel.doc_sents[-1] > 200  # real sentences were compared, not empty profiles


def test_profile_sentences_hold_their_distinct_tokens_sorted(articles: list[dict]) -> None:
    """Each sentence of a profile holds its distinct token hashes, sorted (sentence matching merges them): the
    in-place sort of short sentences must give what np.unique gives, on real articles and on random runs of every
    length around the switch to np.unique, with repeats and number tokens (top bit set)."""
    prof = Profiles([a["text"] for a in articles[:60]])
    so = prof.sent_offsets
    for s in range(len(so) - 1):
        seg = prof.tokens[so[s]:so[s + 1]]
        assert len(seg) and np.array_equal(seg, np.unique(seg))
    rng = np.random.default_rng(3)
    lens = rng.integers(0, 80, 400)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    toks = rng.integers(0, 40, offsets[-1]).astype(np.uint64) | (rng.integers(0, 2, offsets[-1]).astype(np.uint64)
                                                                  << np.uint64(63))
    out, new_off = np.empty(len(toks), np.uint64), np.zeros(len(offsets), np.int64)
    m = _sorted_distinct_runs(toks, offsets, out, new_off)
    want = [np.unique(toks[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
    assert m == sum(len(w) for w in want)
    assert all(np.array_equal(out[new_off[s]:new_off[s + 1]], w) for s, w in enumerate(want))


def not_copies() -> list[tuple[dict, dict]]:
    """Real pairs a reader judged different stories (tests/pairs/not_copies.jsonl): two companies in one
    Reuters template, a denial and the later confirmation, a strike ballot and the talks after it."""
    with open(Path(__file__).parent / "pairs" / "not_copies.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return list(zip(rows[::2], rows[1::2]))


def test_sentences_out_of_order_are_not_a_copy(tmp_path: Path) -> None:
    """Each of these pairs shares most of its sentences (in any order: aligned ≥ 0.65), so verifier v1 linked
    it; a follow-up or a sister item tells them in another order, which v2 asks of a copy. With default
    settings none is linked; with v1 (kept for indexes made with it) each one is."""
    pairs = not_copies()
    texts = [d["text"] for pair in pairs for d in pair]
    ia, ib = np.arange(0, len(texts), 2), np.arange(1, len(texts), 2)
    aligned, ordered, _, _ = score_pairs(Profiles(texts), ia, ib)
    assert (aligned >= 0.65).all() and (ordered < 0.7).all()
    rows = [{"id": d["id"], "text": d["text"]} for pair in pairs for d in pair]
    for params, linked in [(None, 0), (dedup.Params(verifier="v1", verify_threshold=0.65), len(pairs))]:
        path = tmp_path / f"idx-{linked}"
        dedup.ingest([pa.Table.from_pylist(rows)], path, params)
        n = dedup.Index(path).sql("SELECT count(*) AS n FROM pairs WHERE linked")["n"][0].as_py()
        assert n == linked
        cl = clusters_of(path)
        assert all((cl[a["id"]] == cl[b["id"]]) == bool(linked) for a, b in pairs)


def ocr_look_alikes(text: str, rng: random.Random) -> str:
    """Scanner confusions inside words (m→rn, l→1, e→c, d→cl, h→li; 30 % of those letters) and words broken by a
    hyphen at a line end."""
    swaps = {"m": "rn", "l": "1", "e": "c", "d": "cl", "h": "li"}
    out = []
    for word in text.split(" "):
        chars = [word[0]] + [swaps[c] if c in swaps and rng.random() < 0.3 else c for c in word[1:]] if word else []
        if len(chars) > 6 and rng.random() < 0.2:
            chars.insert(3, "-\n")
        out.append("".join(chars))
    return " ".join(out)


def test_ocr_look_alikes_are_read_alike(articles: list[dict]) -> None:
    """A scanned copy spells many words with look-alikes and breaks some across lines. Read by OCR class (v2),
    nearly every content word of the original is found in it and its sentences align; read letter by letter (v1),
    a quarter of the words are lost."""
    rng = random.Random(5)
    originals = [a["text"] for a in articles if a["source"] == "bbc"][:20]
    texts = originals + [ocr_look_alikes(t, rng) for t in originals]
    ia, ib = np.arange(20), np.arange(20, 40)
    for verifier, words_kept, mean_aligned in [("v2", lambda s: s.min() >= 0.93, lambda a: a >= 0.95),
                                               ("v1", lambda s: s.max() < 0.8, lambda a: a < 0.8)]:
        prof = Profiles(texts, verifier)
        tokens = [prof.doc_tokens[prof.doc_offsets[i]:prof.doc_offsets[i + 1]] for i in range(40)]
        share = np.array([len(np.intersect1d(tokens[i], tokens[i + 20])) / len(tokens[i]) for i in range(20)])
        assert words_kept(share), (verifier, share)
        assert mean_aligned(score_pairs(prof, ia, ib)[0].mean()), verifier


def test_stop_words_are_dropped_in_both_spellings() -> None:
    """The stop-word tables are hashed as the kernel reads words, letter by letter and by OCR class."""
    text = " ".join(sorted(STOPWORDS))
    for verifier in ("v1", "v2"):
        assert Profiles([text], verifier).doc_tokens.size == 0


def test_a_figure_that_lost_a_digit_still_agrees(articles: list[dict]) -> None:
    """OCR drops characters, digits too: "2004" read as "204" must not make a sentence of the copy a different
    figure (v2), while a template's other figure still does: "2005", "20" (two digits lost), and "4" against "24"
    (a figure of two digits is too short to tell)."""
    text = next(a["text"] for a in articles if a["source"] == "bbc" and " 2004 " in a["text"])
    sentence = next(s for s in sentences(text) if " 2004 " in s and len(s.split()) > 8)
    texts = [sentence.replace(" 2004 ", f" {figure} ") for figure in ("2004", "204", "2005", "20", "24", "4")]
    ia, ib = np.array([0, 0, 0, 4]), np.array([1, 2, 3, 5])
    assert score_pairs(Profiles(texts, "v2"), ia, ib)[0].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert score_pairs(Profiles(texts, "v1"), ia, ib)[0].tolist() == [0.0, 0.0, 0.0, 0.0]
