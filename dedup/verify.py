"""Stage 7: verification of candidate pairs.

The LSH stage is deliberately loose; this stage decides which candidates are copies of one story. It works on
a *profile* of each document: its sentences, each reduced to the set of its content words (stop words dropped,
words cut to their first 5 characters so that inflections and translation variants still meet; numbers read
as their digits, so "10,000" and "10.000" agree). A copy — reprinted, abridged, with sentences dropped or reordered, or machine-translated and back —
keeps a counterpart for almost every one of its sentences; a different article about the same event shares
names and a few quotes, but few sentences. A templated report (earnings, money-market notes) matches sentence by
sentence except for its numbers, so sentences whose numbers disagree do not count as matches.

Scores per pair (all in [0, 1]):
- `aligned`: share of the shorter document's content words that sit in sentences with a counterpart in the
  other document (Dice ≥ SENT_MATCH on content words, and the same numbers; a token that starts with a digit
  is read as a number, with OCR look-alikes such as O/0 and l/1 mended);
- `jaccard`, `containment`: of the two documents' content-word sets;
- `score` = `aligned`, except for *briefs* (the shorter text under `brief_words` words): a two-sentence dividend
  notice aligns with every other notice of its template, so a brief must be near-identical (aligned ≥ 0.95 and
  content-word Jaccard ≥ 0.8) or its score is capped at 0.2; a short text (under 100 words) needs aligned ≥ 0.8
  and Jaccard ≥ 0.3;
- the pair is `linked` when score ≥ `verify_threshold`.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from dedup.normalize import WORD_CHAR, fold_batch
from dedup.params import Params
from dedup.shingle import STOPWORDS
from dedup.store import positions

SENT_MATCH = 0.5
KEEP_SCORE = 0.2  # candidate pairs scoring below this are not stored: they are neither links nor near misses
BRIEF_ALIGNED, BRIEF_JACCARD = 0.95, 0.8          # shorter text under brief_words: near-identical only
SHORT_WORDS, SHORT_ALIGNED, SHORT_JACCARD = 100, 0.8, 0.3  # under 100 words: most sentences must align
PREFIX = 5
MIN_SENT_WORDS = 3


def _fnv(word: str) -> int:
    """FNV-1a over code points: the token hash of the profile kernel, for the stop-word table."""
    h = 0xCBF29CE484222325
    for ch in word:
        h = ((h ^ ord(ch)) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


_STOP_HASHES = np.array(sorted(_fnv(w) for w in STOPWORDS), dtype=np.uint64)


@numba.njit(cache=True, nogil=True)
def _is_boundary(cps: np.ndarray, i: int) -> bool:
    """Sentence end at i: . ! ? followed by space/quote/end, or a blank line."""
    c = cps[i]
    n = cps.shape[0]
    if c == 46 or c == 33 or c == 63:  # . ! ?
        j = i + 1
        while j < n and (cps[j] == 34 or cps[j] == 39 or cps[j] == 0x201D or cps[j] == 0x2019 or cps[j] == 41):
            j += 1
        return j >= n or cps[j] == 32 or cps[j] == 10 or cps[j] == 9 or cps[j] == 13
    if c == 10:
        j = i + 1
        while j < n and (cps[j] == 32 or cps[j] == 9 or cps[j] == 13):
            j += 1
        return j < n and cps[j] == 10
    return False


@numba.njit(cache=True, nogil=True, inline="always")
def _digit(c: int) -> int:
    """Digit value of a (case-folded) character, reading OCR look-alikes o→0, l/i→1, s→5, b→8 as digits;
    -1 otherwise. Only used inside tokens that start with a real digit."""
    if 48 <= c <= 57:
        return c - 48
    if c == 111:
        return 0
    if c == 108 or c == 105:
        return 1
    if c == 115:
        return 5
    if c == 98:
        return 8
    return -1


@numba.njit(cache=True, nogil=True)
def _profile(cps: np.ndarray, table: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Content-word hashes grouped by sentence (sorted and distinct within each) and sentence offsets.

    Numbers carry the top bit set so sentences can compare them separately."""
    n = cps.shape[0]
    toks = np.empty(n // 2 + 2, dtype=np.uint64)
    sent_of = np.empty(n // 2 + 2, dtype=np.int64)
    nt = 0
    sent = 0
    sent_start_tok = 0
    i = 0
    while i < n:
        if table[cps[i]]:
            start = i
            word = np.uint64(0xCBF29CE484222325)
            pref = word
            num = word
            n_digits = 0
            while True:
                while i < n and table[cps[i]]:
                    c = cps[i]
                    word = (word ^ np.uint64(c)) * np.uint64(0x100000001B3)
                    if i - start < PREFIX:
                        pref = word
                    d = _digit(c)
                    if d >= 0:
                        n_digits += 1
                        num = (num ^ np.uint64(48 + d)) * np.uint64(0x100000001B3)
                    i += 1
                # a number continues across . or , between digits; separators are not hashed, so that
                # 10,000 and 10.000 (a translation's format) are the same number
                if 48 <= cps[start] <= 57 and i + 1 < n and (cps[i] == 46 or cps[i] == 44) \
                        and 48 <= cps[i + 1] <= 57:
                    i += 1
                    continue
                break
            if 48 <= cps[start] <= 57 and 2 * n_digits >= i - start:
                # a number: starts with a digit, at least half digits ("600m", "1980s", "1O" read by OCR)
                toks[nt] = num | np.uint64(1 << 63)
                sent_of[nt] = sent
                nt += 1
            else:
                k = np.searchsorted(stop, word)
                if i - start >= 2 and not (k < stop.shape[0] and stop[k] == word):
                    toks[nt] = pref & np.uint64(0x7FFFFFFFFFFFFFFF)
                    sent_of[nt] = sent
                    nt += 1
            continue
        if _is_boundary(cps, i) and nt - sent_start_tok >= MIN_SENT_WORDS:
            sent += 1
            sent_start_tok = nt
        i += 1
    if nt == 0:
        return np.empty(0, dtype=np.uint64), np.zeros(1, dtype=np.int64)
    nsent = sent + 1
    if sent > 0 and nt - sent_start_tok < MIN_SENT_WORDS:  # a short tail joins the previous sentence
        sent_of[sent_start_tok:nt] = sent - 1
        nsent = sent
    offsets = np.zeros(nsent + 1, dtype=np.int64)
    for t in range(nt):
        offsets[sent_of[t] + 1] += 1
    offsets = np.cumsum(offsets)
    out = np.empty(nt, dtype=np.uint64)
    m = 0
    new_off = np.zeros(nsent + 1, dtype=np.int64)
    for s in range(nsent):
        seg = np.unique(toks[offsets[s]:offsets[s + 1]])
        out[m:m + seg.shape[0]] = seg
        m += seg.shape[0]
        new_off[s + 1] = m
    return out[:m], new_off


class Profiles:
    """Profiles of many documents, flattened: tokens, per-document sentence offsets."""

    def __init__(self, texts: list[str]):
        buf, offsets = fold_batch(texts)
        toks, sent_offs, doc_sent = [], [np.zeros(1, dtype=np.int64)], np.zeros(len(texts) + 1, dtype=np.int64)
        base = 0
        for i in range(len(texts)):
            t, o = _profile(buf[offsets[i]:offsets[i + 1]], WORD_CHAR, _STOP_HASHES)
            toks.append(t)
            sent_offs.append(o[1:] + base)
            base += t.shape[0]
            doc_sent[i + 1] = doc_sent[i] + o.shape[0] - 1
        self.tokens = np.concatenate(toks) if toks else np.empty(0, dtype=np.uint64)
        self.sent_offsets = np.concatenate(sent_offs)
        self.doc_sents = doc_sent


@numba.njit(cache=True, nogil=True, inline="always")
def _inter(t: np.ndarray, a0: int, a1: int, b0: int, b1: int) -> tuple[int, int, int, int, int]:
    """Sorted-merge intersection of t[a0:a1] and t[b0:b1]: (common words, common numbers, numbers in a,
    numbers in b, words in a)."""
    i, j = a0, b0
    cw = cn = 0
    while i < a1 and j < b1:
        if t[i] == t[j]:
            if t[i] >> np.uint64(63):
                cn += 1
            else:
                cw += 1
            i += 1
            j += 1
        elif t[i] < t[j]:
            i += 1
        else:
            j += 1
    na = nb = 0
    for k in range(a0, a1):
        if t[k] >> np.uint64(63):
            na += 1
    for k in range(b0, b1):
        if t[k] >> np.uint64(63):
            nb += 1
    return cw, cn, na, nb, (a1 - a0) - na


@numba.njit(cache=True, nogil=True, parallel=True)
def _score_kernel(t, so, ds, ia, ib, aligned, jac, con):
    for k in numba.prange(ia.shape[0]):
        a, b = ia[k], ib[k]
        sa0, sa1, sb0, sb1 = ds[a], ds[a + 1], ds[b], ds[b + 1]
        A = np.unique(t[so[sa0]:so[sa1]])
        both = np.concatenate((A, np.unique(t[so[sb0]:so[sb1]])))
        cw, cn, _, _, _ = _inter(both, 0, A.shape[0], A.shape[0], both.shape[0])
        inter = cw + cn
        size_b = both.shape[0] - A.shape[0]
        union = A.shape[0] + size_b - inter
        jac[k] = inter / union if union else 0.0
        small = min(A.shape[0], size_b)
        con[k] = inter / small if small else 0.0
        # shorter document by content words is the one whose sentences must find counterparts
        if so[sa1] - so[sa0] > so[sb1] - so[sb0]:
            sa0, sa1, sb0, sb1 = sb0, sb1, sa0, sa1
        total = 0
        matched = 0
        for s in range(sa0, sa1):
            a0, a1 = so[s], so[s + 1]
            size = a1 - a0
            total += size
            if size == 0:
                continue
            for r in range(sb0, sb1):
                b0, b1 = so[r], so[r + 1]
                cw, cn, na, nb, wa = _inter(t, a0, a1, b0, b1)
                wb = (b1 - b0) - nb
                if wa + wb == 0 or 2.0 * cw / (wa + wb) < SENT_MATCH:
                    continue
                if cn < max(na, nb):
                    continue  # same template, different figures
                matched += size
                break
        aligned[k] = matched / total if total else 0.0


def score_pairs(profiles: Profiles, ia: np.ndarray, ib: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(aligned, jaccard, containment) for each pair (ia[k], ib[k]) of profiled documents."""
    n = len(ia)
    aligned, jac, con = (np.zeros(n, dtype=np.float32) for _ in range(3))
    if n:
        _score_kernel(profiles.tokens, profiles.sent_offsets, profiles.doc_sents, ia.astype(np.int64),
                      ib.astype(np.int64), aligned, jac, con)
    return aligned, jac, con


def verify_pairs(cands: pa.Table, docs: pa.Table, p: Params) -> pa.Table:
    """Score candidate pairs (doc_a, doc_b) using `docs` (doc_id, text, minhash) and decide which are linked.

    A document stored without text (`--no-store-text`) can only be judged by its MinHash estimate."""
    ia, ib = positions(cands["doc_a"], docs["doc_id"]), positions(cands["doc_b"], docs["doc_id"])
    sigs = np.asarray(docs["minhash"].combine_chunks().flatten().to_numpy(), dtype=np.uint32).reshape(-1, p.num_perm)
    est = (sigs[ia] == sigs[ib]).mean(axis=1).astype(np.float32)
    texts = docs["text"].to_pylist()
    has_text = np.array([t is not None for t in texts], dtype=bool)
    aligned, jac, con = score_pairs(Profiles([t or "" for t in texts]), ia, ib)
    both = has_text[ia] & has_text[ib]
    score = np.where(both, aligned, est).astype(np.float32)
    # briefs (a few sentences) align too easily with other items of the same template: they must be near-identical
    words = np.array([len(t.split()) if t else 0 for t in texts])
    shorter = np.minimum(words[ia], words[ib])
    brief = both & (shorter < p.brief_words) & ((aligned < BRIEF_ALIGNED) | (jac < BRIEF_JACCARD))
    short = both & (shorter < SHORT_WORDS) & ((aligned < SHORT_ALIGNED) | (jac < SHORT_JACCARD))
    score = np.where(brief | short, np.minimum(score, KEEP_SCORE), score)
    return pa.table({
        "doc_a": cands["doc_a"], "doc_b": cands["doc_b"], "jaccard_est": est,
        "jaccard": np.where(both, jac, np.nan).astype(np.float32),
        "containment": np.where(both, con, np.nan).astype(np.float32),
        "aligned": np.where(both, aligned, np.nan).astype(np.float32),
        "score": score, "linked": score >= p.verify_threshold,
    })
