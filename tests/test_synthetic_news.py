"""scripts/synthetic_news.py, the benchmarks' corpus generator, on the sample articles: its text is the Markov chain's
(every three words in a row follow each other in some real sentence), its copies are its earlier documents with
sentences dropped, and a corpus is written once per set of parameters."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import synthetic_news as sn  # noqa: E402

N = 600
SHARE = 0.3


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[sn.Generator, Path, list[dict], Path]:
    gen = sn.Generator(ROOT / "data" / "articles", ["news_sample.jsonl"])
    cache = tmp_path_factory.mktemp("cache")
    path = gen.corpus(N, SHARE, cache)
    return gen, cache, pq.read_table(path).to_pylist(), path


def test_originals_are_walks_of_the_chain(made: tuple) -> None:
    gen, _, docs, _ = made
    triples = set()
    for sents in sn.load_sentences(gen.corpora, gen.names):
        for sent in sents:
            w = ["", ""] + sent.split() + [""]
            triples.update(zip(w, w[1:], w[2:]))
    words = {t[2] for t in triples}
    originals = [d["text"] for d in docs if not d["text"].startswith(sn.DATELINE)]
    assert len(originals) > N * 0.5
    for text in originals[:100]:
        w = text.split()
        assert all(x in words for x in w)
        # inside a sentence every word follows the two before it somewhere in the real text; across a sentence
        # boundary it starts a real sentence: so every triple is one or the other
        assert sum((a, b, c) in triples or ("", "", c) in triples or ("", b, c) in triples
                   for a, b, c in zip(w, w[1:], w[2:])) == len(w) - 2
        assert sn.CHARS <= len(text) < sn.CHARS + 2000


def test_copies_are_earlier_documents_with_sentences_dropped(made: tuple) -> None:
    _, _, docs, _ = made
    plan = sn.Plan.of(N, SHARE, sn.SEED + N + ord("d"))
    copies = [i for i in range(N) if plan.copy_of[i] >= 0]
    assert 0.2 * N < len(copies) < 0.4 * N and min(copies) >= sn.MIN_ORIGINALS
    for i in copies:
        src = docs[int(plan.copy_of[i])]["text"]
        text = docs[i]["text"]
        assert text.startswith(sn.DATELINE)
        kept, whole = sn.SENT.split(text[len(sn.DATELINE):]), sn.SENT.split(src)
        assert len(kept) <= len(whole)
        it = iter(whole)
        assert all(any(s == t for t in it) for s in kept), (i, "not the source's sentences in order")
    dropped = sum(len(sn.SENT.split(docs[int(plan.copy_of[i])]["text"])) for i in copies) / \
        sum(len(sn.SENT.split(docs[i]["text"][len(sn.DATELINE):])) for i in copies)
    assert 1.1 < dropped < 1.4  # a fifth of the sentences dropped


def test_corpus_is_cached_by_its_parameters(made: tuple) -> None:
    gen, cache, docs, path = made
    assert [d["id"] for d in docs] == [f"d{i:07d}" for i in range(N)]
    assert re.fullmatch(r"2026-\d\d-\d\d", docs[-1]["published_at"])
    before = path.stat().st_mtime_ns
    assert gen.corpus(N, SHARE, cache) == path and path.stat().st_mtime_ns == before
    other = gen.corpus(N, SHARE, cache, prefix="n")
    assert other != path
    assert [d["text"] for d in pq.read_table(other).to_pylist()][:3] != [d["text"] for d in docs][:3]
    # written again from nothing, the same parameters give the same corpus
    path.unlink()
    assert pq.read_table(gen.corpus(N, SHARE, cache)).to_pylist() == docs
