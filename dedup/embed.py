"""Sentence vectors and word overlap, for the rewrite models of verifiers v4 to v6.

An LLM paraphrase replaces most of a sentence's words with others of the same meaning; sentence vectors (the
SIF-weighted mean of GloVe word vectors, Arora et al. 2017) stay close where stems do not. Alone they cannot tell a
rewrite from another outlet's report on the same event (both are "about" the same thing), so the model reads them
beside the lexical signals: what they add is that the rewrite's sentences find their counterparts *in order*.
Verifiers v5 and v6 add where the counterparts sit (STRUCTURE_SIGNALS): a rewrite follows its original one sentence
after another over the whole text, at the same relative places, while another outlet's report on the same event
shares the lead's facts but not the body's order; and how much of each text's rarer words, and of its words outside
the vocabulary (mostly names), the other holds (WORD_SIGNALS).
The vectors ship in the package (`dedup/data/word_vectors-<version>.npz`, made by scripts/make_word_vectors.py).
"""
from __future__ import annotations

import functools
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

TOKEN = r"[a-z]+(?:'[a-z]+)?|\d[\d,.]*"  # words (and figures, which have no vectors) of a lower-cased text
SENTENCE = r'(?<=[.!?"])\s+|\n+'  # where sentences end
STOP_WORDS = 100  # the most frequent words carry no meaning of their own; a sentence's vector leaves them out
SIF_A = 1e-3  # SIF's smoothing: a word of estimated frequency p weighs SIF_A / (SIF_A + p)
CHAIN_COSINES = (0.7, 0.6)  # sentences whose vectors are this close count as counterparts in the in-order chain
DATA = Path(__file__).with_name("data")
log = logging.getLogger(__name__)
EMBED_SIGNALS = ("vec_cover", "vec_cover_long", "vec_chain70", "vec_chain60")
# v5: the order of dedup.rewrite_kernels.structure_signals's output; README's `pairs` table says what each is
STRUCTURE_SIGNALS = ("vec_mutual", "vec_shift", "vec_late_chain", "vec_heavy_chain", "vec_soft50", "sentence_ratio",
                     "vec_soft40", "vec_soft60", "vec_shift60", "vec_verbatim", "vec_monotone", "vec_heavy_early",
                     "vec_heavy_late", "vec_leads")
WORD = r"[a-z]+"  # v5's words: letters only (figures are the copy rule's and the anchors' business)
WORD_SIGNALS = ("word_share", "word_share_long", "names_share", "names")
# v7: the sentence signals again, over a paraphrase encoder's vectors of the same sentences (sentence_ratio, the
# same either way, left out)
_SENTENCE_SIGNALS = (*EMBED_SIGNALS, *STRUCTURE_SIGNALS)
_PARAPHRASED = tuple(k for k, n in enumerate(_SENTENCE_SIGNALS) if n != "sentence_ratio")
PARAPHRASE_SIGNALS = tuple("para_" + _SENTENCE_SIGNALS[k].removeprefix("vec_") for k in _PARAPHRASED)


@dataclass(frozen=True)
class WordVectors:
    """Unit word vectors by word, with each word's weight in a sentence's mean and in a text's total."""
    index: dict[str, int]
    vectors: np.ndarray  # float32 (words, dims)
    sif: np.ndarray  # weight of the word in its sentence's vector
    info: np.ndarray  # -log of its estimated frequency relative to the STOP_WORDS-th word: a sentence's weight
    stop: frozenset[str]  # the STOP_WORDS most frequent words, left out of sentences and word sets


@functools.cache
def word_vectors(version: str) -> WordVectors:
    with np.load(DATA / f"word_vectors-{version}.npz") as data:
        words = str(data["words"]).split("\n")
        vectors = data["vectors"].astype(np.float32) / 127.0
    rank = np.arange(len(words), dtype=np.float64)
    freq = 1.0 / (rank + 50.0) / np.log(8000.0)  # Zipf's law over GloVe's ~400k-word vocabulary
    return WordVectors({w: i for i, w in enumerate(words) if i >= STOP_WORDS}, vectors,
                       (SIF_A / (SIF_A + freq)).astype(np.float32),
                       np.log((rank + 50.0) / (STOP_WORDS + 50.0)).clip(0).astype(np.float32),
                       frozenset(words[:STOP_WORDS]))


@dataclass(frozen=True)
class Sentences:
    """A text's sentence vectors (unit rows) and each sentence's weight (the information of its known words)."""
    vectors: np.ndarray
    weights: np.ndarray


def _known(text: str, wv: WordVectors) -> list[tuple[str, list[int]]]:
    """Each sentence of the lower-cased text that has a word with a vector, and those words' numbers."""
    get = wv.index.get
    found = ((s, [i for i in map(get, re.findall(TOKEN, s)) if i is not None])
             for s in re.split(SENTENCE, text.lower()))
    return [(s.strip(), known) for s, known in found if known]


def sentences(text: str, wv: WordVectors) -> Sentences:
    ids: list[int] = []
    starts: list[int] = []
    for _, known in _known(text, wv):
        starts.append(len(ids))
        ids += known
    dims = wv.vectors.shape[1]
    if not ids:
        return Sentences(np.zeros((0, dims), np.float32), np.zeros(0))
    at = np.array(ids)
    rows = np.add.reduceat(wv.vectors[at] * wv.sif[at, None], starts, axis=0)
    norms = np.linalg.norm(rows, axis=1)
    weights = np.add.reduceat(wv.info[at].astype(np.float64), starts)
    keep = norms > 0
    return Sentences((rows[keep] / norms[keep, None]).astype(np.float32), weights[keep])


def _sentence_signals(vectors: np.ndarray, weights: np.ndarray, offsets: np.ndarray, la: np.ndarray, lb: np.ndarray,
                      structure: bool) -> np.ndarray:
    """EMBED_SIGNALS (and with `structure`, STRUCTURE_SIGNALS) as columns, for each pair (la[k], lb[k]) of documents
    whose sentences are rows offsets[d]:offsets[d + 1] of the unit `vectors`, weighing `weights`; NaN where either
    has no sentence."""
    from dedup.rewrite_kernels import pair_signals, structure_signals

    out = np.full((len(la), len(EMBED_SIGNALS)), np.nan)
    more = np.full((len(la), len(STRUCTURE_SIGNALS) if structure else 0), np.nan)
    if len(la) and offsets[-1]:
        pair_signals(vectors, weights, offsets, la, lb, *CHAIN_COSINES, out)
        if structure:
            structure_signals(vectors, weights, offsets, la, lb, more)
    return np.hstack([out, more])


def embedding_signals(texts: Sequence[str | None], ia: np.ndarray, ib: np.ndarray, version: str,
                      structure: bool = False) -> dict[str, np.ndarray]:
    """EMBED_SIGNALS (and with `structure`, STRUCTURE_SIGNALS) of each pair (texts[ia[k]], texts[ib[k]]), the
    lighter text (by sentence weight) first: how much of each text's weight finds a close sentence in the other,
    the in-order chains (and where the counterparts sit). NaN without texts."""
    wv = word_vectors(version)
    docs, local = np.unique(np.concatenate([ia, ib]), return_inverse=True)
    found = [sentences(texts[d] or "", wv) for d in docs.tolist()]
    offsets = np.zeros(len(docs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(s.weights) for s in found])
    names = EMBED_SIGNALS + (STRUCTURE_SIGNALS if structure else ())
    vectors = np.concatenate([s.vectors for s in found]) if found else np.zeros((0, wv.vectors.shape[1]), np.float32)
    weights = np.concatenate([s.weights for s in found]) if found else np.zeros(0)
    out = _sentence_signals(vectors, weights, offsets, local[:len(ia)], local[len(ia):], structure)
    return {name: out[:, k].astype(np.float32) for k, name in enumerate(names)}


def word_signals(texts: Sequence[str | None], ia: np.ndarray, ib: np.ndarray, version: str) -> dict[str, np.ndarray]:
    """WORD_SIGNALS of each pair, the lighter text (by the information of its distinct words) first: the share of
    its words' information (a rarer word weighs more) found in the other, the same share of the heavier text's, the
    share of its words outside the vocabulary (names, mostly) found in the other, and how many such words both
    have. NaN without texts."""
    from dedup.rewrite_kernels import word_overlap

    wv = word_vectors(version)
    unknown = float(wv.info.max()) + 1.0
    others: dict[str, int] = {}  # words outside the vocabulary, numbered after it
    docs, local = np.unique(np.concatenate([ia, ib]), return_inverse=True)
    ids = []
    for d in docs.tolist():
        words = set(re.findall(WORD, (texts[d] or "").lower())) - wv.stop
        known = [wv.index.get(w, -1) for w in words]
        ids.append(np.unique(np.array([i if i >= 0 else len(wv.info) + others.setdefault(w, len(others))
                                       for i, w in zip(known, words)], np.int64)))
    offsets = np.zeros(len(docs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(x) for x in ids])
    words = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    info = np.where(words < len(wv.info), wv.info[np.minimum(words, len(wv.info) - 1)], unknown).astype(np.float64)
    out = np.full((len(ia), len(WORD_SIGNALS)), np.nan)
    if len(ia):
        word_overlap(words, info, offsets, unknown, local[:len(ia)], local[len(ia):], out)
    has = np.array([t is not None for t in texts])
    out[~(has[ia] & has[ib])] = np.nan
    return {name: out[:, k].astype(np.float32) for k, name in enumerate(WORD_SIGNALS)}


def paraphrase_signals(texts: Sequence[str | None], ia: np.ndarray, ib: np.ndarray, encoder: str,
                       version: str) -> dict[str, np.ndarray]:
    """PARAPHRASE_SIGNALS of each pair: EMBED_SIGNALS and STRUCTURE_SIGNALS over the sentence vectors of the
    paraphrase encoder `encoder` (dedup.paraphrase) instead of GloVe's, for the same sentences with the same
    weights (word vectors `version`). A transformer reads a sentence's words in context, so a paraphrase that
    replaces most of them stays close where averaged word vectors drift towards any text on the topic. A
    sentence's vector depends on that sentence alone (dedup.paraphrase), so a pair's signals do not depend on what
    else is verified with it. NaN without texts."""
    from dedup.paraphrase import encoder as load_encoder

    wv = word_vectors(version)
    docs, local = np.unique(np.concatenate([ia, ib]), return_inverse=True)
    found = [_known(texts[d], wv) if texts[d] is not None else [] for d in docs.tolist()]
    offsets = np.zeros(len(docs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(f) for f in found])
    said = [s for f in found for s, _ in f]
    weights = np.array([float(wv.info[np.array(known)].sum()) for f in found for _, known in f])
    vectors = np.zeros((0, 1), np.float32)
    if said:
        # a sentence that recurs (a copy's kept sentences, a dateline) is encoded once
        started = time.perf_counter()
        distinct, at = np.unique(np.array(said, dtype=object), return_inverse=True)
        vectors = load_encoder(encoder).encode(distinct.tolist())[at]
        # the encoder can be most of a night's verify time (other outlets' reports of one event reach it): `-v`
        # says how much it read
        log.debug("paraphrase encoder: %d pairs, %d texts, %d sentences, %.1f s", len(ia), len(docs),
                  len(distinct), time.perf_counter() - started)
    out = _sentence_signals(vectors, weights, offsets, local[:len(ia)], local[len(ia):], True)
    return {name: out[:, k].astype(np.float32) for k, name in zip(_PARAPHRASED, PARAPHRASE_SIGNALS)}
