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

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pyarrow as pa

from dedup.bands import jaccard_estimate
from dedup.normalize import WORD_CHAR, fold_batch, utf8_decode
from dedup.params import Params
from dedup.shingle import STOPWORDS, hash_set, in_set
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


_STOP_HASHES = hash_set(sorted(_fnv(w) for w in STOPWORDS))


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
                if i - start >= 2 and not in_set(stop, word):
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
    new_off = np.zeros(nsent + 1, dtype=np.int64)
    m = _sorted_distinct_runs(toks, offsets, out, new_off)
    return out[:m], new_off


@numba.njit(cache=True, nogil=True)
def _sorted_distinct_runs(toks: np.ndarray, offsets: np.ndarray, out: np.ndarray, new_off: np.ndarray) -> int:
    """Each run toks[offsets[s]:offsets[s + 1]] sorted and without repeats into `out`, one after another (run s
    ends at new_off[s + 1]); returns the length used. Sentences are short: each is insertion-sorted in place,
    where `np.unique` per sentence (a copy, a sort, a mask and the result) took two thirds of a profile and kept
    two threads from running much faster than one."""
    m = 0
    for s in range(offsets.shape[0] - 1):
        a0, a1 = offsets[s], offsets[s + 1]
        if a1 - a0 > 48:
            seg = np.unique(toks[a0:a1])
            out[m:m + seg.shape[0]] = seg
            m += seg.shape[0]
        else:
            k = m  # out[m:k] holds the run's distinct tokens so far, sorted
            for t in range(a0, a1):
                v = toks[t]
                j = k
                while j > m and out[j - 1] > v:
                    j -= 1
                if j > m and out[j - 1] == v:
                    continue
                for q in range(k, j, -1):
                    out[q] = out[q - 1]
                out[j] = v
                k += 1
            m = k
        new_off[s + 1] = m
    return m


PROFILE_BATCH = 2048  # texts folded at a time: bounds the folded copies held besides the profiles


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def _flatten(parts: list, dtype: type) -> np.ndarray:
    """numba: concatenation of a list of 1-D arrays."""
    total = 0
    for x in parts:
        total += x.shape[0]
    out = np.empty(total, dtype=dtype)
    k = 0
    for x in parts:
        out[k:k + x.shape[0]] = x
        k += x.shape[0]
    return out


@numba.njit(cache=True, nogil=True)
def _profile_texts(buf: np.ndarray, offsets: np.ndarray, table: np.ndarray, stop: np.ndarray, space: np.ndarray
                   ) -> tuple[np.ndarray, ...]:
    """Profiles of the folded texts packed in `buf` (see `_profile_part`), all in one call without the GIL."""
    n = offsets.shape[0] - 1
    toks, lens, sets = [np.empty(0, np.uint64)], [np.empty(0, np.int64)], [np.empty(0, np.uint64)]
    n_sents, words, n_sets = np.empty(n, np.int64), np.zeros(n, np.int64), np.empty(n, np.int64)
    for i in range(n):
        cps = utf8_decode(buf[offsets[i]:offsets[i + 1]])
        t, o = _profile(cps, table, stop)
        toks.append(t)
        lens.append(o[1:] - o[:-1])
        n_sents[i] = o.shape[0] - 1
        u = np.unique(t)
        sets.append(u)
        n_sets[i] = u.shape[0]
        inside = False
        for c in cps:  # whitespace-separated words, as str.split() counts them
            if space[c]:
                inside = False
            elif not inside:
                inside = True
                words[i] += 1
    return (_flatten(toks, np.uint64), _flatten(lens, np.int64), n_sents, words,
            _flatten(sets, np.uint64), n_sets)


SPACE: np.ndarray = np.zeros(0x110000, dtype=np.bool_)  # what str.split() splits on; U+3000 is the last such
SPACE[[c for c in range(0x3001) if chr(c).isspace()]] = True


def _profile_part(texts: list[str | None]) -> tuple[np.ndarray, ...]:
    """Profiles of a few texts: tokens, sentence lengths, sentences per text, whitespace words per text, and
    each text's distinct tokens with their count."""
    buf, offsets = fold_batch([t or "" for t in texts])
    return _profile_texts(buf, offsets, WORD_CHAR, _STOP_HASHES, SPACE)


class Profiles:
    """Profiles of many documents, flattened: tokens grouped by sentence (`sent_offsets`), sentences grouped by
    document (`doc_sents`), numbers per sentence, each document's distinct tokens (`doc_tokens`, `doc_offsets`)
    and the whitespace word count of each text. Built PROFILE_BATCH texts at a time on all cores (the kernel
    releases the GIL), so memory follows the profiles, not the texts."""

    def __init__(self, texts: pa.Array | pa.ChunkedArray | list[str | None]):
        parts = [texts[i:i + PROFILE_BATCH] for i in range(0, len(texts), PROFILE_BATCH)]
        parts = [p if isinstance(p, list) else p.to_pylist() for p in parts]
        with ThreadPoolExecutor(max_workers=numba.get_num_threads()) as ex:
            done = list(ex.map(_profile_part, parts))
        col = lambda k, dt: _cat([d[k] for d in done], dt)  # noqa: E731
        self.tokens = col(0, np.uint64)
        self.sent_offsets = _offsets(col(1, np.int64))
        self.doc_sents = _offsets(col(2, np.int64))
        self.words = col(3, np.int64)
        self.doc_tokens = col(4, np.uint64)
        self.doc_offsets = _offsets(col(5, np.int64))
        self.numbers = _numbers(self.tokens, self.sent_offsets)


@numba.njit(cache=True, nogil=True, inline="always")
def _common(t: np.ndarray, a0: int, a1: int, b0: int, b1: int) -> tuple[int, int]:
    """Sorted-merge intersection of t[a0:a1] and t[b0:b1]: (common words, common numbers). Numbers carry the
    top bit, so they sort after the words."""
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
    return cw, cn


@numba.njit(cache=True, nogil=True)
def _numbers(t: np.ndarray, so: np.ndarray) -> np.ndarray:
    """Numbers per sentence."""
    out = np.zeros(so.shape[0] - 1, dtype=np.int64)
    for s in range(out.shape[0]):
        for k in range(so[s], so[s + 1]):
            if t[k] >> np.uint64(63):
                out[s] += 1
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _aligned(t, so, nums, sa0, sa1, sb0, sb1):
    """Share of the content words of sentences sa0..sa1 that sit in a sentence with a counterpart among
    sb0..sb1."""
    total = 0
    matched = 0
    for s in range(sa0, sa1):
        a0, a1 = so[s], so[s + 1]
        size = a1 - a0
        total += size
        if size == 0:
            continue
        na = nums[s]
        wa = size - na
        for r in range(sb0, sb1):
            b0, b1 = so[r], so[r + 1]
            nb = nums[r]
            wb = (b1 - b0) - nb
            if wa + wb == 0 or 2.0 * min(wa, wb) < SENT_MATCH * (wa + wb):
                continue  # Dice >= SENT_MATCH is out of reach for sentences this different in size
            cw, cn = _common(t, a0, a1, b0, b1)
            if 2.0 * cw / (wa + wb) < SENT_MATCH:
                continue
            if cn < max(na, nb):
                continue  # same template, different figures
            matched += size
            break
    return matched / total if total else 0.0


@numba.njit(cache=True, nogil=True, parallel=True)
def _score_kernel(t, so, ds, nums, dt, do, ia, ib, aligned, jac, con):
    for k in numba.prange(ia.shape[0]):
        a, b = ia[k], ib[k]
        cw, cn = _common(dt, do[a], do[a + 1], do[b], do[b + 1])
        inter = cw + cn
        size_a, size_b = do[a + 1] - do[a], do[b + 1] - do[b]
        union = size_a + size_b - inter
        jac[k] = inter / union if union else 0.0
        small = min(size_a, size_b)
        con[k] = inter / small if small else 0.0
        sa0, sa1, sb0, sb1 = ds[a], ds[a + 1], ds[b], ds[b + 1]
        # the shorter document (by content words) is the one whose sentences must find counterparts; between
        # two of one length the better direction counts, so the score does not depend on the pair's order
        words_a, words_b = so[sa1] - so[sa0], so[sb1] - so[sb0]
        if words_a > words_b:
            aligned[k] = _aligned(t, so, nums, sb0, sb1, sa0, sa1)
        elif words_a < words_b:
            aligned[k] = _aligned(t, so, nums, sa0, sa1, sb0, sb1)
        else:
            aligned[k] = max(_aligned(t, so, nums, sa0, sa1, sb0, sb1), _aligned(t, so, nums, sb0, sb1, sa0, sa1))


def score_pairs(profiles: Profiles, ia: np.ndarray, ib: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(aligned, jaccard, containment) for each pair (ia[k], ib[k]) of profiled documents."""
    n = len(ia)
    aligned, jac, con = (np.zeros(n, dtype=np.float32) for _ in range(3))
    if n:
        p = profiles
        _score_kernel(p.tokens, p.sent_offsets, p.doc_sents, p.numbers, p.doc_tokens, p.doc_offsets,
                      ia.astype(np.int64), ib.astype(np.int64), aligned, jac, con)
    return aligned, jac, con


def verify_pairs(cands: pa.Table, docs: pa.Table, p: Params) -> pa.Table:
    """Score candidate pairs (doc_a, doc_b, bands: whole-text bands shared) using `docs` (doc_id, text) and
    decide which are linked.

    A document stored without text (`--no-store-text`) can only be judged by the MinHash estimate."""
    ia, ib = positions(cands["doc_a"], docs["doc_id"]), positions(cands["doc_b"], docs["doc_id"])
    est = jaccard_estimate(cands["bands"].to_numpy(zero_copy_only=False), p).astype(np.float32)
    has_text = docs["text"].is_valid().to_numpy(zero_copy_only=False)
    prof = Profiles(docs["text"])
    aligned, jac, con = score_pairs(prof, ia, ib)
    both = has_text[ia] & has_text[ib]
    score = np.where(both, aligned, est).astype(np.float32)
    # briefs (a few sentences) align too easily with other items of the same template: they must be near-identical
    shorter = np.minimum(prof.words[ia], prof.words[ib])
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
