"""Stage 7: verification of candidate pairs.

The LSH stage is deliberately loose; this stage decides which candidates are copies of one story. It works on
a *profile* of each document: its sentences, each reduced to the set of its content words (stop words dropped,
words cut to their first 5 characters so that inflections and translation variants still meet; numbers read
as their digits, so "10,000" and "10.000" agree). A copy — reprinted, abridged, with sentences dropped or
reordered, scanned, or machine-translated and back — keeps a counterpart for almost every one of its sentences,
in the same order; a different article about the same event shares names and a few quotes, but few sentences;
a follow-up or a rewrite by another desk shares more, but tells it in another order. A templated report
(earnings, money-market notes) matches sentence by sentence except for its numbers, so sentences whose numbers
disagree do not count as matches.

Verifier v2 (the default) reads words by OCR class (`OCR_PAIRS`, `OCR_CLASS`: "rn" is "m", "1" is "l"), joins
words broken by a hyphen at a line end, forgives a figure that lost one of its 3+ digits ("2004" and "204"), and
asks for sentences in order. v1 (indexes made before) reads letter by letter and in any order.

Scores per pair (all in [0, 1]):
- `aligned`: share of the shorter document's content words that sit in sentences with a counterpart in the
  other document, in any order (Dice ≥ SENT_MATCH on content words, and the same numbers; a token that starts
  with a digit is read as a number, with OCR look-alikes such as O/0 and l/1 mended);
- `ordered` (not stored): the same share counting only the heaviest chain of sentences whose counterparts
  come one after another;
- `jaccard`, `containment`: of the two documents' content-word sets;
- `score` = `ordered` (v2; `aligned` when the two texts hold nearly the same words, jaccard ≥
  REORDERED_JACCARD: paragraphs moved) or `aligned` (v1), except for *briefs* (the shorter text under
  `brief_words` words): a two-sentence dividend notice aligns with every other notice of its template, so a brief
  must be near-identical (aligned ≥ 0.95 and content-word Jaccard ≥ 0.8) or its score is capped at 0.2; a short
  text (under 100 words) needs aligned ≥ 0.8 and Jaccard ≥ 0.3 (v6 caps only the copy rule's score: its rewrite
  trees may still link a short pair, see `verify_pairs`);
- the pair is `linked` when score ≥ `verify_threshold`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
import pyarrow as pa

from dedup.bands import jaccard_estimate
from dedup.chunked import run_chunked
from dedup.embed import EMBED_SIGNALS, PARAPHRASE_SIGNALS, STRUCTURE_SIGNALS, WORD_SIGNALS
from dedup.normalize import (char_fold_table, fast_fold, fold, fold_batch, unfoldable, utf8_buffers, utf8_decode,
                             word_char)
from dedup.params import Params
from dedup.shingle import NO_ANCHORS, STOPWORDS, common_stems, hash_set, in_set
from dedup.store import positions

if TYPE_CHECKING:
    from dedup.trees import Forest

SENT_MATCH = 0.5
REORDERED_JACCARD = 0.9  # v2: texts this alike in content words are one text, whatever the order of paragraphs
KEEP_SCORE = 0.2  # candidate pairs scoring below this are not stored: they are neither links nor near misses
BRIEF_ALIGNED, BRIEF_JACCARD = 0.95, 0.8          # shorter text under brief_words: near-identical only
SHORT_WORDS, SHORT_ALIGNED, SHORT_JACCARD = 100, 0.8, 0.3  # under 100 words: most sentences must align
PREFIX = 5
MAX_CODED_DIGITS = 17  # v2 number tokens: 1 and up to 17 digits in decimal stay below bit 62
MIN_SENT_WORDS = 3
ANCHOR_WEIGHT = 3  # v3: an anchor or a number weighs this many common words in the loose alignment
LOOSE_MATCH = 0.25  # v3: a sentence's counterpart holds at least this share of its weight


# OCR look-alikes (verifier v2). A scanned copy reads "rn" where the original has "m", "1" for "l", "c" for "e";
# both texts of a pair spell each word by class, so the two spellings meet. Pairs are read first, and a pair
# stands for the class of its look-alike ("li" -> "h" -> "b"). Tokens that start with a digit are numbers and keep
# their characters (see `_digit`).
OCR_PAIRS = {"rn": "m", "cl": "d", "vv": "w", "ii": "u", "li": "h", "ri": "n"}
OCR_CLASS = {"0": "o", "1": "l", "i": "l", "5": "s", "8": "b", "c": "e", "t": "f", "h": "b", "u": "v"}
_OCR_ONE = np.arange(128, dtype=np.int64)
_OCR_ONE[[ord(c) for c in OCR_CLASS]] = [ord(c) for c in OCR_CLASS.values()]
_OCR_TWO = np.zeros((128, 128), dtype=np.int64)  # class of each look-alike pair, 0 for the others
for (_a, _b), _to in OCR_PAIRS.items():
    _OCR_TWO[ord(_a), ord(_b)] = _OCR_ONE[ord(_to)]
FNV_OFFSET, FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3
# v3 words: a 62-bit hash, bit 62 set for an anchor (a word not among the common ones); numbers carry bit 63
WORD_BITS, ANCHOR_BIT = 0x3FFFFFFFFFFFFFFF, 1 << 62


@numba.njit(cache=True, nogil=True, inline="always")
def _ocr_char(cps: np.ndarray, i: int, n: int, one: np.ndarray, two: np.ndarray) -> tuple[int, int]:
    """(class of the character at i, characters it takes: 2 for a look-alike pair such as "rn")."""
    c = np.int64(cps[i])
    if c >= 128:
        return c, 1
    if i + 1 < n and cps[i + 1] < 128 and two[c, cps[i + 1]]:
        return two[c, cps[i + 1]], 2
    return one[c], 1


@numba.njit(cache=True)
def _word_hash(cps: np.ndarray, ocr: bool, one: np.ndarray, two: np.ndarray) -> np.uint64:
    """FNV-1a of a word as the profile kernel hashes it (by OCR class when `ocr`): for the stop-word tables."""
    h = np.uint64(FNV_OFFSET)
    i, n = 0, cps.shape[0]
    while i < n:
        c, step = _ocr_char(cps, i, n, one, two) if ocr else (np.int64(cps[i]), 1)
        h = (h ^ np.uint64(c)) * np.uint64(FNV_PRIME)
        i += step
    return h


def ocr_prefix(word: str, limit: int = PREFIX) -> str:
    """The first `limit` characters of a (folded) word read by OCR class, as the profile kernel reads a word."""
    out, i, n = [], 0, len(word)
    while i < n and len(out) < limit:
        c = ord(word[i])
        if c < 128 and i + 1 < n and ord(word[i + 1]) < 128 and _OCR_TWO[c, ord(word[i + 1])]:
            out.append(chr(_OCR_TWO[c, ord(word[i + 1])]))
            i += 2
        else:
            out.append(chr(_OCR_ONE[c]) if c < 128 else word[i])
            i += 1
    return "".join(out)


@functools.cache
def _common_hashes(version: str) -> np.ndarray:
    """The verifier's common words (`common_stems`' "verify" list, already read by OCR class) as the profile kernel
    hashes a word's prefix: the words that are not anchors."""
    return hash_set(sorted({int(_word_hash(np.array([ord(c) for c in w], np.uint32), False, _OCR_ONE, _OCR_TWO))
                            & WORD_BITS for w in common_stems(version)["verify"]}))


@functools.cache
def _stop_hashes(ocr: bool) -> np.ndarray:
    """Stop words as the profile kernel hashes them (built on first use: `dedup sql` need not compile it)."""
    return hash_set(sorted({int(_word_hash(np.array([ord(c) for c in w], np.uint32), ocr, _OCR_ONE, _OCR_TWO))
                            for w in STOPWORDS}))


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


@numba.njit(cache=True, nogil=True, inline="always")
def _hyphen_break(cps: np.ndarray, i: int, table: np.ndarray) -> int:
    """Where a word resumes after the hyphen at i when the hyphen ends a line (spaces, a line break, white
    space, then a letter), else i."""
    n = cps.shape[0]
    j = i + 1
    while j < n and (cps[j] == 32 or cps[j] == 9 or cps[j] == 13):
        j += 1
    if j >= n or cps[j] != 10:
        return i
    while j < n and (cps[j] == 32 or cps[j] == 9 or cps[j] == 13 or cps[j] == 10):
        j += 1
    return j if j < n and table[cps[j]] and not 48 <= cps[j] <= 57 else i


@numba.njit(cache=True, nogil=True)
def _profile(cps: np.ndarray, table: np.ndarray, stop: np.ndarray, ocr: bool, one: np.ndarray, two: np.ndarray,
             common: np.ndarray, anchors: bool) -> tuple[np.ndarray, np.ndarray]:
    """Content-word hashes grouped by sentence (sorted and distinct within each) and sentence offsets.

    Numbers carry the top bit set so sentences can compare them separately. With `ocr`, words are spelled by OCR
    class (`_ocr_char`) and a word broken by a hyphen at a line end is read whole. With `anchors` (v3), a word
    keeps 62 bits of its hash and bit 62 marks an anchor, a word not in the `common` table."""
    n = cps.shape[0]
    toks = np.empty(n // 2 + 2, dtype=np.uint64)
    sent_of = np.empty(n // 2 + 2, dtype=np.int64)
    nt = 0
    sent = 0
    sent_start_tok = 0
    i = np.int64(0)  # not the literal 0: numba would also compile _is_boundary for i = Literal[int](0)
    while i < n:
        if table[cps[i]]:
            start = i
            numeric = 48 <= cps[start] <= 57
            by_class = ocr and not numeric
            word = np.uint64(FNV_OFFSET)
            pref = word
            num = word
            n_digits = chars = 0
            code = 1  # v2: the digits in decimal after a leading 1 (so that "004" keeps its zeros)
            while True:
                while i < n and table[cps[i]]:
                    c, step = _ocr_char(cps, i, n, one, two) if by_class else (np.int64(cps[i]), 1)
                    word = (word ^ np.uint64(c)) * np.uint64(FNV_PRIME)
                    chars += 1
                    if chars <= PREFIX:
                        pref = word
                    d = _digit(c) if numeric else -1  # only a token that starts with a digit can be a number
                    if d >= 0:
                        n_digits += 1
                        num = (num ^ np.uint64(48 + d)) * np.uint64(FNV_PRIME)
                        code = code * 10 + d if n_digits <= MAX_CODED_DIGITS else code
                    i += step
                # a number continues across . or , between digits; separators are not hashed, so that
                # 10,000 and 10.000 (a translation's format) are the same number
                if numeric and i + 1 < n and (cps[i] == 46 or cps[i] == 44) and 48 <= cps[i + 1] <= 57:
                    i += 1
                    continue
                if by_class and i < n and cps[i] == 45:
                    j = _hyphen_break(cps, i, table)  # "announ-\nced": one word
                    if j > i:
                        i = j
                        continue
                break
            if numeric and 2 * n_digits >= i - start:
                # a number: starts with a digit, at least half digits ("600m", "1980s", "1O" read by OCR)
                # v2 keeps short numbers' digits, so that alignment can forgive a digit lost to OCR
                coded = ocr and n_digits <= MAX_CODED_DIGITS
                toks[nt] = (np.uint64(code) if coded else num | np.uint64(1 << 62)) | np.uint64(1 << 63)
                sent_of[nt] = sent
                nt += 1
            else:
                if chars >= 2 and not in_set(stop, word):
                    if anchors:
                        pref &= np.uint64(WORD_BITS)
                        toks[nt] = pref if in_set(common, pref) else pref | np.uint64(ANCHOR_BIT)
                    else:
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


# texts a kernel call profiles: the unit of work of the threads (and of the folded copies held). Small enough that
# the last ones even out between the threads: 10k texts in 0.29-0.31 s on two cores at 2048, 0.24 s at 1024.
PROFILE_BATCH = 1024


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
def _profile_texts(buf: np.ndarray, offsets: np.ndarray, fold: np.ndarray, alt: np.ndarray, alt_offsets: np.ndarray,
                   alt_of: np.ndarray, table: np.ndarray, stop: np.ndarray, space: np.ndarray, ocr: bool,
                   one: np.ndarray, two: np.ndarray, common: np.ndarray, anchors: bool) -> tuple[np.ndarray, ...]:
    """Profiles of the texts packed in `buf` (see `_profile_part`), all in one call without the GIL. With a `fold`
    table the texts come as they are and are folded here, except text i with alt_of[i] = k ≥ 0, which comes
    folded by CPython as text k of `alt`; without one, they all come folded."""
    n = offsets.shape[0] - 1
    toks, lens, sets = [np.empty(0, np.uint64)], [np.empty(0, np.int64)], [np.empty(0, np.uint64)]
    n_sents, words, n_sets = np.empty(n, np.int64), np.zeros(n, np.int64), np.empty(n, np.int64)
    for i in range(n):
        k = alt_of[i] if alt_of.shape[0] else -1
        if k >= 0:
            cps = utf8_decode(alt[alt_offsets[k]:alt_offsets[k + 1]])
        else:
            cps = utf8_decode(buf[offsets[i]:offsets[i + 1]])
            if fold.shape[0]:
                fast_fold(cps, fold)
        t, o = _profile(cps, table, stop, ocr, one, two, common, anchors)
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


def _profile_part(texts: pa.Array | list[str | None], ocr: bool, common: str) -> tuple[np.ndarray, ...]:
    """Profiles of a few texts: tokens, sentence lengths, sentences per text, whitespace words per text, and
    each text's distinct tokens with their count. Arrow texts are folded by the kernel (`CHAR_FOLD`), straight
    from Arrow's buffers, and only the few it cannot fold by CPython (10k stored texts: 0.3-0.6 s of CPU
    holding the GIL to make and fold Python strings, against ~0.01 s)."""
    none = np.empty(0, np.int64)
    if isinstance(texts, list):
        buf, offsets = fold_batch([t or "" for t in texts])
        alt, alt_offsets, alt_of, fold = np.empty(0, np.uint8), none, none, np.empty(0, np.uint32)
    else:
        offsets, buf = utf8_buffers(texts.fill_null("") if texts.null_count else texts)
        slow = np.flatnonzero(unfoldable(buf, offsets, char_fold_table()))
        alt, alt_offsets = fold_batch([texts[int(i)].as_py() for i in slow])
        alt_of = np.full(len(texts), -1, np.int64)
        alt_of[slow] = np.arange(len(slow))
        fold = char_fold_table()
    return _profile_texts(buf, offsets, fold, alt, alt_offsets, alt_of, word_char(), _stop_hashes(ocr), SPACE, ocr,
                          _OCR_ONE, _OCR_TWO, _common_hashes(common) if common else NO_ANCHORS, bool(common))


class Profiles:
    """Profiles of many documents, flattened: tokens grouped by sentence (`sent_offsets`), sentences grouped by
    document (`doc_sents`), numbers per sentence, each document's distinct tokens (`doc_tokens`, `doc_offsets`)
    and the whitespace word count of each text. Built PROFILE_BATCH texts at a time on all cores (the kernel
    releases the GIL), so memory follows the profiles, not the texts."""

    def __init__(self, texts: pa.Array | pa.ChunkedArray | list[str | None], verifier: str = "v2",
                 common_stems: str = ""):
        self.v2 = verifier != "v1"  # OCR classes in the profiles, lost digits forgiven in scoring (v2, v3)
        self.anchors = verifier in REWRITE_VERIFIERS  # anchors marked (v3: the common words of `common_stems` are not)
        common = common_stems if self.anchors else ""
        if self.anchors and not common:
            raise ValueError(f"verifier {verifier} needs the version of its common stems")
        chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
        parts = [c[i:i + PROFILE_BATCH] for c in chunks for i in range(0, len(c), PROFILE_BATCH)]
        with ThreadPoolExecutor(max_workers=numba.get_num_threads()) as ex:
            done = list(ex.map(_profile_part, parts, [self.v2] * len(parts), [common] * len(parts)))
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
def _one_lost(x: np.uint64, y: np.uint64) -> bool:
    """Coded number y is coded number x with one of its 3+ digits lost ("2004" and "204", "28.52" and "28.2")."""
    if x < np.uint64(1000):  # the leading 1 and fewer than 3 digits
        return False
    for p in range(MAX_CODED_DIGITS):
        power = np.uint64(10) ** np.uint64(p)
        if power * np.uint64(10) > x:  # past the digits: only the leading 1 is left
            return False
        if (x // (power * np.uint64(10))) * power + x % power == y:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _figures_close(t: np.ndarray, a0: int, a1: int, b0: int, b1: int) -> bool:
    """Whether the numbers two sentences do not share pair up, each with one that lost or gained a digit (an OCR
    copy drops characters; a template's figures differ in more than that)."""
    top, long = np.uint64(1 << 63), np.uint64(1 << 62)
    only_a, only_b = np.empty(a1 - a0, np.uint64), np.empty(b1 - b0, np.uint64)
    na = nb = 0
    i, j = a0, b0
    while i < a1 and not t[i] & top:  # words come first, numbers (top bit) after them
        i += 1
    while j < b1 and not t[j] & top:
        j += 1
    while i < a1 or j < b1:
        if i < a1 and j < b1 and t[i] == t[j]:
            i += 1
            j += 1
        elif j >= b1 or (i < a1 and t[i] < t[j]):
            only_a[na] = t[i]
            na += 1
            i += 1
        else:
            only_b[nb] = t[j]
            nb += 1
            j += 1
    if na != nb:
        return False
    used = np.zeros(nb, np.bool_)
    for x in range(na):
        u = only_a[x]
        found = False
        for y in range(nb):
            v = only_b[y]
            if not used[y] and not (u | v) & long and (_one_lost(u ^ top, v ^ top) or _one_lost(v ^ top, u ^ top)):
                used[y] = found = True
                break
        if not found:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _alignment(t, so, nums, sa0, sa1, sb0, sb1, lost_digit: bool) -> tuple[float, float]:
    """Shares of the content words of sentences sa0..sa1 that sit in a sentence with a counterpart among
    sb0..sb1: in any order (`aligned`), and in the same order (`ordered`: the heaviest chain of sentences whose best
    counterparts come one after another). With `lost_digit` (v2), figures that differ by one lost digit agree."""
    n = sa1 - sa0
    best = np.full(n, -1, np.int64)  # position of each sentence's best counterpart
    weight = np.empty(n, np.int64)
    total = matched = 0
    for x in range(n):
        s = sa0 + x
        a0, a1 = so[s], so[s + 1]
        size = a1 - a0
        weight[x] = size
        total += size
        na = nums[s]
        wa = size - na
        top = 0.0
        for r in range(sb0, sb1):
            b0, b1 = so[r], so[r + 1]
            nb = nums[r]
            wb = (b1 - b0) - nb
            if wa + wb == 0 or 2.0 * min(wa, wb) < SENT_MATCH * (wa + wb):
                continue  # Dice >= SENT_MATCH is out of reach for sentences this different in size
            cw, cn = _common(t, a0, a1, b0, b1)
            dice = 2.0 * cw / (wa + wb)
            if dice < SENT_MATCH or dice <= top:
                continue  # too different, or not the best
            if cn < max(na, nb) and not (lost_digit and _figures_close(t, a0, a1, b0, b1)):
                continue  # the same template with different figures
            top = dice
            best[x] = r
            if dice == 1.0:
                break
        if best[x] >= 0:
            matched += size
    chain = np.zeros(n, np.int64)  # heaviest in-order chain ending at each sentence
    longest = 0
    for x in range(n):
        if best[x] < 0:
            continue
        before = 0
        for y in range(x):
            if 0 <= best[y] < best[x] and chain[y] > before:
                before = chain[y]
        chain[x] = before + weight[x]
        longest = max(longest, chain[x])
    if not total:
        return 0.0, 0.0
    return matched / total, longest / total


@numba.njit(cache=True, nogil=True)
def _score_kernel(lo, hi, t, so, ds, nums, dt, do, ia, ib, lost_digit, aligned, ordered, jac, con):
    for k in range(lo, hi):
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
        # two of one length the better direction counts, so the scores do not depend on the pair's order
        words_a, words_b = so[sa1] - so[sa0], so[sb1] - so[sb0]
        if words_a > words_b:
            aligned[k], ordered[k] = _alignment(t, so, nums, sb0, sb1, sa0, sa1, lost_digit)
        elif words_a < words_b:
            aligned[k], ordered[k] = _alignment(t, so, nums, sa0, sa1, sb0, sb1, lost_digit)
        else:
            al1, or1 = _alignment(t, so, nums, sa0, sa1, sb0, sb1, lost_digit)
            al2, or2 = _alignment(t, so, nums, sb0, sb1, sa0, sa1, lost_digit)
            aligned[k], ordered[k] = max(al1, al2), max(or1, or2)


@numba.njit(cache=True, nogil=True)
def _may_align(t, so, nums, sa0, sa1, dt, b0, b1, need) -> bool:
    """Whether `_alignment` of sentences sa0..sa1 against the document whose distinct tokens are dt[b0:b1] may
    reach an aligned share of `need`. A bound from the words each sentence shares with the other *document*: one of
    wa words has a counterpart only with Dice >= SENT_MATCH and a size that passes `_alignment`'s test, so it
    shares at least SENT_MATCH / (2 - SENT_MATCH) of its words (a third) with the other document."""
    total = so[sa1] - so[sa0]
    reach = (need - 1e-6) * total  # the bound errs towards "may": a pair it keeps is scored as before
    if reach <= 0:
        return True
    other = dt[b0:b1]
    matched = 0
    for s in range(sa0, sa1):
        size = so[s + 1] - so[s]
        wa = size - nums[s]
        shared = 0
        for x in range(so[s], so[s] + wa):  # its words: numbers (top bit) sort after them and do not count
            at = np.searchsorted(other, t[x])
            if at < other.shape[0] and other[at] == t[x]:
                shared += 1
        if wa and shared * (2.0 - SENT_MATCH) >= SENT_MATCH * wa - 1e-9:
            matched += size
            if matched >= reach:
                return True
    return False


@numba.njit(cache=True, nogil=True)
def _may_keep_kernel(lo, hi, t, so, ds, nums, dt, do, ia, ib, need, out):
    """out[k]: whether pair k's `aligned` may reach `need` (`_may_align` in the direction `_score_kernel` takes)."""
    for k in range(lo, hi):
        a, b = ia[k], ib[k]
        words_a, words_b = so[ds[a + 1]] - so[ds[a]], so[ds[b + 1]] - so[ds[b]]
        out[k] = ((words_a <= words_b and _may_align(t, so, nums, ds[a], ds[a + 1], dt, do[b], do[b + 1], need))
                  or (words_b <= words_a and _may_align(t, so, nums, ds[b], ds[b + 1], dt, do[a], do[a + 1], need)))


def copy_may_keep(profiles: Profiles, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Mask of the pairs (ia[k], ib[k]) whose copy-rule score may reach KEEP_SCORE: `aligned` bounds it (`ordered`
    counts a subset of the aligned sentences), and `_may_align` bounds `aligned` from the words each sentence
    shares with the other document, in a fraction of `score_pairs`' time. The others score below KEEP_SCORE."""
    out = np.zeros(len(ia), np.bool_)
    if len(ia):
        p = profiles
        run_chunked(_may_keep_kernel, len(ia), p.tokens, p.sent_offsets, p.doc_sents, p.numbers, p.doc_tokens,
                    p.doc_offsets, ia.astype(np.int64), ib.astype(np.int64), KEEP_SCORE, out)
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _weight(x: np.uint64) -> int:
    """Weight of a v3 token in the rewrite signals: anchors and numbers, which a rewrite keeps, count ANCHOR_WEIGHT
    times a common word, which it is free to replace."""
    return ANCHOR_WEIGHT if x >> np.uint64(62) else 1


@numba.njit(cache=True, nogil=True)
def _shared_weight(t: np.ndarray, a0: int, a1: int, b0: int, b1: int) -> tuple[int, int, int]:
    """(weight of the tokens t[a0:a1] and t[b0:b1] share, anchors shared, numbers shared)."""
    i, j = a0, b0
    w = anchors = numbers = 0
    while i < a1 and j < b1:
        if t[i] == t[j]:
            w += _weight(t[i])
            if t[i] >> np.uint64(63):
                numbers += 1
            elif t[i] >> np.uint64(62):
                anchors += 1
            i += 1
            j += 1
        elif t[i] < t[j]:
            i += 1
        else:
            j += 1
    return w, anchors, numbers


@numba.njit(cache=True, nogil=True)
def _kinds(t: np.ndarray, a0: int, a1: int) -> tuple[int, int, int]:
    """(weight, anchors, numbers) of the tokens t[a0:a1]."""
    w = anchors = numbers = 0
    for k in range(a0, a1):
        w += _weight(t[k])
        if t[k] >> np.uint64(63):
            numbers += 1
        elif t[k] >> np.uint64(62):
            anchors += 1
    return w, anchors, numbers


@numba.njit(cache=True, nogil=True)
def _loose_order(t, so, sa0, sa1, sb0, sb1) -> float:
    """Share of the weight of sentences sa0..sa1 that a paraphrase keeps in order: each sentence's best
    counterpart among sb0..sb1 is the one holding most of its weight (anchors and numbers count ANCHOR_WEIGHT
    times), and the heaviest chain of sentences whose counterparts never go back counts, each sentence by the
    weight its counterpart holds. Two sentences may have one counterpart (a rewrite merges sentences); a share
    under LOOSE_MATCH is no counterpart."""
    n = sa1 - sa0
    best = np.full(n, -1, np.int64)
    gain = np.zeros(n, np.float64)
    total = 0.0
    for x in range(n):
        s = sa0 + x
        w = _kinds(t, so[s], so[s + 1])[0]
        total += w
        top = 0
        for r in range(sb0, sb1):
            c = _shared_weight(t, so[s], so[s + 1], so[r], so[r + 1])[0]
            if c > top:
                top = c
                best[x] = r
        if w == 0 or top < LOOSE_MATCH * w:
            best[x] = -1
        else:
            gain[x] = top
    chain = np.zeros(n, np.float64)
    longest = 0.0
    for x in range(n):
        if best[x] < 0:
            continue
        before = 0.0
        for y in range(x):
            if 0 <= best[y] <= best[x] and chain[y] > before:
                before = chain[y]
        chain[x] = before + gain[x]
        longest = max(longest, chain[x])
    return longest / total if total else 0.0


@numba.njit(cache=True, nogil=True)
def _rewrite_kernel(lo, hi, t, so, ds, dt, do, ia, ib, kept, min_anchors, anchors, figures, loose):
    """The rewrite signals of pairs lo..hi-1: `anchors`, `figures` (each the share of the fewer a document has that
    the other has too) and `loose` (`_loose_order`, from the document with fewer content words), the dearest, only
    for the pairs `kept` or sharing at least `min_anchors` (NaN for the others)."""
    for k in range(lo, hi):
        a, b = ia[k], ib[k]
        _, shared_anchors, shared_numbers = _shared_weight(dt, do[a], do[a + 1], do[b], do[b + 1])
        _, anchors_a, numbers_a = _kinds(dt, do[a], do[a + 1])
        _, anchors_b, numbers_b = _kinds(dt, do[b], do[b + 1])
        fewer = min(anchors_a, anchors_b)
        anchors[k] = shared_anchors / fewer if fewer else 0.0
        fewer = min(numbers_a, numbers_b)
        figures[k] = shared_numbers / fewer if fewer else 0.0
        if not kept[k] and anchors[k] < min_anchors:
            loose[k] = np.nan
            continue
        sa0, sa1, sb0, sb1 = ds[a], ds[a + 1], ds[b], ds[b + 1]
        words_a, words_b = so[sa1] - so[sa0], so[sb1] - so[sb0]
        if words_a > words_b:
            loose[k] = _loose_order(t, so, sb0, sb1, sa0, sa1)
        elif words_a < words_b:
            loose[k] = _loose_order(t, so, sa0, sa1, sb0, sb1)
        else:
            loose[k] = max(_loose_order(t, so, sa0, sa1, sb0, sb1), _loose_order(t, so, sb0, sb1, sa0, sa1))


def rewrite_signals(profiles: Profiles, ia: np.ndarray, ib: np.ndarray, kept: np.ndarray | None = None,
                    min_anchors: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(anchors, figures, loose) for each pair (ia[k], ib[k]) of documents profiled by verifier v3; with `kept` (a
    mask), `loose` only for those pairs and the ones sharing at least `min_anchors` of their anchors (NaN for the
    others: its alignment of every sentence against every other is most of the cost)."""
    n = len(ia)
    anchors, figures, loose = (np.zeros(n, dtype=np.float32) for _ in range(3))
    if n:
        p = profiles
        run_chunked(_rewrite_kernel, n, p.tokens, p.sent_offsets, p.doc_sents, p.doc_tokens, p.doc_offsets,
                    ia.astype(np.int64), ib.astype(np.int64), np.ones(n, np.bool_) if kept is None else kept,
                    min_anchors, anchors, figures, loose)
    return anchors, figures, loose


def score_pairs(profiles: Profiles, ia: np.ndarray, ib: np.ndarray) -> tuple[np.ndarray, ...]:
    """(aligned, ordered, jaccard, containment) for each pair (ia[k], ib[k]) of profiled documents."""
    n = len(ia)
    aligned, ordered, jac, con = (np.zeros(n, dtype=np.float32) for _ in range(4))
    if n:
        p = profiles
        run_chunked(_score_kernel, n, p.tokens, p.sent_offsets, p.doc_sents, p.numbers, p.doc_tokens, p.doc_offsets,
                    ia.astype(np.int64), ib.astype(np.int64), p.v2, aligned, ordered, jac, con)
    return aligned, ordered, jac, con


def rewrite_probability(p: Params, signals: dict[str, np.ndarray]) -> np.ndarray:
    """The rewrite model: a logistic regression over the pair's signals, with the coefficients the index
    records (`Params.rewrite_model`: intercept, then one weight per name of REWRITE_SIGNALS), fitted by
    `scripts/fit_rewrite_model.py` on the development rewrites and the quality pool's hard negatives."""
    w = np.asarray(p.rewrite_model, np.float64)
    z = w[0] + sum(w[1 + k] * signals[name].astype(np.float64) for k, name in enumerate(REWRITE_SIGNALS))
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


REWRITE_SIGNALS = ("ordered", "loose", "anchors", "figures", "containment", "jaccard")
REWRITE_MIN_ANCHORS = 0.2  # v4 to v7: pairs sharing a smaller share of their anchors are not asked to the trees
REWRITE_PART = 20_000  # v4 to v7: pairs whose sentence vectors are computed together
# the signals each verifier's trees may read (a trees file names those it reads)
TREE_FEATURES = {"v4": (*REWRITE_SIGNALS, "aligned", *EMBED_SIGNALS, "chars_short", "chars_long")}
TREE_FEATURES["v5"] = (*TREE_FEATURES["v4"], *STRUCTURE_SIGNALS, *WORD_SIGNALS)
# the signals of the trees' own (stored in `pairs` for the pairs they were asked about)
TREE_SIGNALS = {"v4": EMBED_SIGNALS, "v5": (*EMBED_SIGNALS, *STRUCTURE_SIGNALS, *WORD_SIGNALS)}
# v6 reads v5's signals and trees; the caps for short texts hold down its copy rule only (see verify_pairs); so
# does v7's first opinion
TREE_FEATURES["v6"], TREE_SIGNALS["v6"] = TREE_FEATURES["v5"], TREE_SIGNALS["v5"]
TREE_FEATURES["v7"], TREE_SIGNALS["v7"] = TREE_FEATURES["v5"], TREE_SIGNALS["v5"]
TREE_FEATURES["v8"], TREE_SIGNALS["v8"] = TREE_FEATURES["v5"], TREE_SIGNALS["v5"]
TREE_FEATURES["v9"], TREE_SIGNALS["v9"] = TREE_FEATURES["v5"], TREE_SIGNALS["v5"]
TREE_FEATURES["v10"], TREE_SIGNALS["v10"] = TREE_FEATURES["v5"], TREE_SIGNALS["v5"]
# v7's second trees may read the first's inputs and the paraphrase encoder's sentence signals
PARAPHRASE_FEATURES = (*TREE_FEATURES["v7"], *PARAPHRASE_SIGNALS)
# the verifiers with a rewrite model beside the copy rule (their profiles mark anchors), and those whose caps for
# short texts hold down only the copy rule's score
REWRITE_VERIFIERS = ("v3", *TREE_SIGNALS)
COPY_ONLY_CAPS = ("v6", "v7", "v8", "v9", "v10")
# v8's template check: the copy rule's links between texts this short (whitespace words, the shorter) are also
# asked to the first trees, and dropped below this probability. Items of one template (crude postings of two oil
# companies, two weeks' T-bill notices) align sentence by sentence, but nothing else about them looks like a copy.
# Pairs whose character 5-gram sets overlap this much (containment or Jaccard: a report re-issued with a correction
# or a paragraph more) are not asked: the trees' fit left pairs at 0.8 or 0.5 out as ambiguous, so they never saw
# one; a re-issue's corrected headline can take it just under 0.8 (0.79 read), templates read stay under 0.74.
TEMPLATE_WORDS, TEMPLATE_PROBABILITY = 200, 0.01
TEMPLATE_GRAMS, TEMPLATE_GRAM_CONTAINMENT, TEMPLATE_GRAM_JACCARD = 5, 0.75, 0.5
TEMPLATE_CHECK = ("v8", "v9", "v10")
# v9: the second trees also decide the copy rule's links the caps hold down (short texts: a summary, a rewrite of a
# brief), and decide no pair that overlaps like a re-issue (`below_reissue`), which the first trees judge as up to
# v6. The trees' fits left out the different-story pairs that overlap that much (ambiguous) but kept the same-story
# ones, so they take any such pair for a copy: v8's second trees link USDA's daily tables of two days, and v9's,
# asked, would link the Fed's customer-repurchase notices of two days (one billion dlrs or two).
SECOND_HELD = ("v9", "v10")
# v10: the caps for short texts do not hold down a pair whose shorter text is a verbatim excerpt of the other: nearly
# every sentence aligned, every figure of the one with fewer shared, and nearly all its character n-grams in the
# other. Items of one template differ in their figures or dates; a brief cut from a longer report (re-issued on a
# wire, a teaser of an article) does not. Read on Reuters-21578 and NewsArticles 2017: docs/rewrites.md, "Verifier v10".
EXCERPT_ALIGNED, EXCERPT_CONTAINMENT = 0.95, 0.95
EXCERPTS = ("v10",)


def _grams(text: str) -> set[str]:
    """The character TEMPLATE_GRAMS-grams of a text, folded (`dedup.normalize.fold`), white space collapsed."""
    t = " ".join(fold(text).split())
    return {t[k:k + TEMPLATE_GRAMS] for k in range(max(1, len(t) - TEMPLATE_GRAMS + 1))}


@dataclass(frozen=True)
class GramOverlap:
    """How much two texts' character n-gram sets (`_grams`) share: counts, so the re-issue test is exact."""
    shared: int
    smaller: int
    union: int

    @property
    def containment(self) -> float:
        return self.shared / max(self.smaller, 1)

    @property
    def jaccard(self) -> float:
        return self.shared / max(self.union, 1)

    @property
    def reissue(self) -> bool:
        """Overlapping like a report re-issued with a correction or a paragraph more."""
        return (self.shared >= TEMPLATE_GRAM_CONTAINMENT * self.smaller
                or self.shared >= TEMPLATE_GRAM_JACCARD * self.union)


def _overlap(a: set[str], b: set[str]) -> GramOverlap:
    shared = len(a & b)
    return GramOverlap(shared, min(len(a), len(b)), len(a) + len(b) - shared)


def gram_overlap(text_a: str, text_b: str) -> GramOverlap:
    """The character n-gram overlap `below_reissue` reads, of two texts (for `dedup explain`)."""
    return _overlap(_grams(text_a), _grams(text_b))


@dataclass(frozen=True)
class Overlaps:
    """The character n-gram overlap of some pairs (NaN where not measured), and which of them overlap like a
    re-issued report."""
    containment: np.ndarray
    jaccard: np.ndarray
    reissue: np.ndarray


def gram_overlaps(texts: pa.Array | pa.ChunkedArray, ia: np.ndarray, ib: np.ndarray, which: np.ndarray) -> Overlaps:
    """The character n-gram overlap of the pairs (ia, ib) of `texts` that the mask `which` selects."""
    containment, jaccard = np.full(len(ia), np.nan), np.full(len(ia), np.nan)  # float64: a share on a bound stays on it
    reissue = np.zeros(len(ia), np.bool_)
    k = np.flatnonzero(which)
    if len(k):
        needed = np.unique(np.concatenate([ia[k], ib[k]]))
        grams = dict(zip(needed.tolist(), map(_grams, texts.take(pa.array(needed)).to_pylist())))
        for j, x, y in zip(k.tolist(), ia[k].tolist(), ib[k].tolist()):
            o = _overlap(grams[x], grams[y])
            containment[j], jaccard[j], reissue[j] = o.containment, o.jaccard, o.reissue
    return Overlaps(containment, jaccard, reissue)


def below_reissue(texts: pa.Array | pa.ChunkedArray, ia: np.ndarray, ib: np.ndarray,
                  links: np.ndarray) -> np.ndarray:
    """Which of `links` (a mask over the pairs (ia, ib) of `texts`) overlap less than a re-issued report
    (character n-gram containment and Jaccard): those the trees may judge, having been fitted on such pairs of both
    kinds. v8's template check asks the first trees about the copy rule's links among them; v9's second
    trees decide only pairs among them."""
    return links & ~gram_overlaps(texts, ia, ib, links).reissue


def _measure_overlaps(columns: dict[str, np.ndarray], texts: pa.Array | pa.ChunkedArray, ia: np.ndarray,
                      ib: np.ndarray, which: np.ndarray) -> Overlaps:
    """The character n-gram overlap of the pairs `which` selects, also put in `columns` (`pairs` keeps it: it
    decides which trees judge a pair, and whether the caps hold it)."""
    o = gram_overlaps(texts, ia, ib, which)
    columns["char_containment"] = np.fmax(columns["char_containment"], o.containment)
    columns["char_jaccard"] = np.fmax(columns["char_jaccard"], o.jaccard)
    return o


def excerpt_candidates(held: np.ndarray, aligned: np.ndarray, figures: np.ndarray) -> np.ndarray:
    """v10: the pairs the caps hold whose shorter text may be a verbatim excerpt of the other (its sentences aligned,
    every figure of the text with fewer shared, at least one): their character n-grams decide."""
    return held & (aligned >= EXCERPT_ALIGNED) & (figures >= 1.0)


def tree_inputs(texts: list[str], ia: np.ndarray, ib: np.ndarray, signals: dict[str, np.ndarray], verifier: str,
                word_vectors: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(the trees' own signals, every input the trees may read) of the pairs (ia, ib) of `texts`, given their
    lexical `signals`: the sentence signals and (v5 to v7) the word overlap of dedup.embed, and the two texts'
    lengths (log characters; short reports need more evidence). Ingest and scripts/fit_rewrite_trees.py both
    assemble them here, so the trees are fitted on what they read."""
    from dedup.embed import embedding_signals, word_signals
    structure = verifier != "v4"  # v5 to v7 read where the sentences sit and the words shared
    own = embedding_signals(texts, ia, ib, word_vectors, structure=structure)
    if structure:
        own.update(word_signals(texts, ia, ib, word_vectors))
    return own, {**signals, **own, **_lengths(texts, ia, ib)}


def _lengths(texts: list[str], ia: np.ndarray, ib: np.ndarray) -> dict[str, np.ndarray]:
    """The two texts' lengths (log characters), shorter and longer."""
    chars = np.log(np.maximum(np.array([len(t) for t in texts], np.int64), 1))
    return {"chars_short": np.minimum(chars[ia], chars[ib]), "chars_long": np.maximum(chars[ia], chars[ib])}


def paraphrase_inputs(texts: list[str], ia: np.ndarray, ib: np.ndarray, inputs: dict[str, np.ndarray],
                      encoder: str, word_vectors: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(the paraphrase signals, every input v7's second trees may read) of the pairs (ia, ib) of `texts`, given
    what the first trees read of them (`inputs`, lengths aside). Ingest and the fit script both assemble them here."""
    from dedup.embed import paraphrase_signals
    own = paraphrase_signals(texts, ia, ib, encoder, word_vectors)
    return own, {**inputs, **_lengths(texts, ia, ib), **own}


def _ask(trees: Forest, names: tuple[str, ...], signals: dict[str, np.ndarray], texts: pa.Array | pa.ChunkedArray,
         ia: np.ndarray, ib: np.ndarray, ask: np.ndarray, inputs: Callable) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`trees`' probability for the pairs `ask` selects (NaN elsewhere), and the signals `names` of their own that
    `inputs(texts, ia, ib, signals)` computed for them, in parts, so that only one part's texts and sentence
    vectors are held at a time."""
    own = {name: np.full(len(ia), np.nan, np.float32) for name in names}
    prob = np.full(len(ia), np.nan, np.float32)
    asked = np.flatnonzero(ask)
    for start in range(0, len(asked), REWRITE_PART):
        k = asked[start:start + REWRITE_PART]
        needed = np.unique(np.concatenate([ia[k], ib[k]]))
        where = np.full(len(texts), -1, np.int64)
        where[needed] = np.arange(len(needed))
        found, values = inputs(texts.take(pa.array(needed)).to_pylist(), where[ia[k]], where[ib[k]],
                               {n: v[k] for n, v in signals.items()})
        for name, v in found.items():
            own[name][k] = v
        prob[k] = trees.probability(np.column_stack([values[n] for n in trees.features]))
    return prob, own


def rewrite_trees(p: Params, signals: dict[str, np.ndarray], texts: pa.Array | pa.ChunkedArray, ia: np.ndarray,
                  ib: np.ndarray, ask: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The rewrite probability of verifiers v4 to v7 (v7: its first opinion) for the pairs `ask` selects (NaN
    elsewhere), and the signals of its own it read (TREE_SIGNALS): the trees `p.rewrite_trees` over
    `tree_inputs`."""
    from dedup.trees import forest
    trees = forest(p.rewrite_trees)
    return _ask(trees, TREE_SIGNALS[p.verifier], signals, texts, ia, ib, ask,
                lambda t, ja, jb, s: tree_inputs(t, ja, jb, s, p.verifier, trees.word_vectors))


def paraphrase_trees(p: Params, inputs: dict[str, np.ndarray], texts: pa.Array | pa.ChunkedArray, ia: np.ndarray,
                     ib: np.ndarray, ask: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """v7's second opinion, for the pairs `ask` selects (NaN elsewhere): the probability of the trees
    `p.paraphrase_trees` over what the first trees read (`inputs`) and the paraphrase encoder's sentence signals,
    and those signals. The encoder runs a transformer over every sentence, so only the pairs the first trees rank
    near or above their cut are asked."""
    from dedup.trees import forest
    trees = forest(p.paraphrase_trees)
    return _ask(trees, PARAPHRASE_SIGNALS, inputs, texts, ia, ib, ask,
                lambda t, ja, jb, s: paraphrase_inputs(t, ja, jb, s, trees.encoder, trees.word_vectors))


def _floor(p: Params) -> float:
    from dedup.trees import forest
    return forest(p.paraphrase_trees).floor


def short_caps(shorter: np.ndarray, aligned: np.ndarray, jac: np.ndarray, brief_words: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(brief, held): the pairs whose shorter text (`shorter` whitespace words) the caps for short texts hold
    down, and of those the briefs. Briefs (a few sentences) align too easily with other items of their template,
    so they must be near-identical; a short text must have most of its sentences aligned."""
    brief = (shorter < brief_words) & ((aligned < BRIEF_ALIGNED) | (jac < BRIEF_JACCARD))
    return brief, brief | ((shorter < SHORT_WORDS) & ((aligned < SHORT_ALIGNED) | (jac < SHORT_JACCARD)))


def _hold(score: np.ndarray, held: np.ndarray, brief: np.ndarray, rule: np.ndarray) -> np.ndarray:
    """`score` capped at KEEP_SCORE where the caps for short texts hold it down (`held`), which `rule` then names
    ("brief", else "short") where the cap changed it."""
    capped = held & (score > KEEP_SCORE)
    rule[capped] = np.where(brief[capped], "brief", "short")
    return np.where(held, np.minimum(score, KEEP_SCORE), score)


def _unstored(prof: Profiles, ia: np.ndarray, ib: np.ndarray, both: np.ndarray, p: Params) -> np.ndarray:
    """Mask of the pairs (both texts profiled) that certainly score below KEEP_SCORE: the copy rule cannot reach it
    (`copy_may_keep`) and, with trees, the pair shares too few anchors for them to be asked (the test of
    `verify_pairs`, on the same values). v3's regression may lift any pair: none."""
    out = np.zeros(len(ia), np.bool_)
    if p.verifier == "v3":
        return out
    out[both] = ~copy_may_keep(prof, ia[both], ib[both])
    if p.verifier in TREE_SIGNALS:
        low = np.flatnonzero(out)
        anchors = rewrite_signals(prof, ia[low], ib[low], np.zeros(len(low), np.bool_), np.inf)[0]
        out[low] = ~(anchors >= REWRITE_MIN_ANCHORS)
    return out


def verify_pairs(cands: pa.Table, docs: pa.Table, p: Params, stored_only: bool = False) -> pa.Table:
    """Score candidate pairs (doc_a, doc_b, bands: whole-text bands shared) using `docs` (doc_id, text) and
    decide which are linked. With `stored_only`, the pairs that certainly score below KEEP_SCORE (`_unstored`),
    which `pairs` does not store, are left out unscored: most chance candidates, at a fraction of their cost.

    A document stored without text (`--no-store-text`) can only be judged by the MinHash estimate. Verifier v3
    links a pair when the copy rule (v2: sentences in order) or the rewrite model says so: `score` is the larger
    of the two, and `rule` names the one that decided ("copy", "rewrite"; "brief" and "short" where the caps for
    short texts held the score down; "estimate" without texts).

    The caps for short texts hold templated briefs apart, whose sentences align with every other item of their
    template. Up to v5 they hold down the pair's score whatever decided it; v6 holds down only the copy rule's
    and asks the trees about the pairs it held down, since the trees were fitted on short pairs too and their cut
    was chosen with them (scripts/fit_rewrite_trees.py: on held-out folds no different-story pair the caps held
    down scored above it). v8 also asks the first trees about the copy rule's links between short texts that are not
    re-issues of one report (`below_reissue`) and unlinks those they give under TEMPLATE_PROBABILITY (rule
    "template"): items of one template align sentence by sentence like copies. v9's second trees also decide the
    links the caps held down that the first trees rank from the floor, and no pair that overlaps like a re-issue.
    v10's caps release a pair whose shorter text is a verbatim excerpt of the other (`excerpt_candidates`, then
    character n-gram containment ≥ EXCERPT_CONTAINMENT): the copy rule decides it."""
    ia, ib = positions(cands["doc_a"], docs["doc_id"]), positions(cands["doc_b"], docs["doc_id"])
    has_text = docs["text"].is_valid().to_numpy(zero_copy_only=False)
    prof = Profiles(docs["text"], p.verifier, p.common_stems)
    both = has_text[ia] & has_text[ib]
    if stored_only:
        scored = ~_unstored(prof, ia, ib, both, p)
        cands, ia, ib, both = cands.filter(scored), ia[scored], ib[scored], both[scored]
    est = jaccard_estimate(cands["bands"].to_numpy(zero_copy_only=False), p).astype(np.float32)
    aligned, ordered, jac, con = score_pairs(prof, ia, ib)
    # v2: sentences must keep their order, unless the two texts hold nearly the same words (paragraphs moved)
    core = np.where(jac >= REORDERED_JACCARD, aligned, ordered) if prof.v2 else aligned
    nothing = np.full(len(ia), np.nan, np.float32)
    columns = {"ordered": ordered, "anchors": nothing, "figures": nothing, "loose": nothing, "rewrite": nothing,
               **dict.fromkeys(TREE_SIGNALS["v5"], nothing), "rewrite_first": nothing,
               **dict.fromkeys(PARAPHRASE_SIGNALS, nothing), "char_containment": nothing, "char_jaccard": nothing}
    rule = np.where(both, "copy", "estimate").astype(object)
    shorter = np.minimum(prof.words[ia], prof.words[ib])  # whitespace words of each pair's shorter text
    brief, held = short_caps(shorter, aligned, jac, p.brief_words)
    brief, held = brief & both, held & both
    copy_only = p.verifier in COPY_ONLY_CAPS
    template = np.zeros(len(ia), np.bool_)  # v8: the copy rule's links its template check asks the trees about
    if prof.anchors:
        # stored only: `loose` for the pairs the copy rule keeps or the trees may be asked about (v3 reads it for all)
        kept = core >= KEEP_SCORE - 1e-6 if stored_only and p.verifier in TREE_SIGNALS else None
        anchors, figures, loose = rewrite_signals(prof, ia, ib, kept, REWRITE_MIN_ANCHORS - 1e-6)
        signals = {"ordered": core, "loose": loose, "anchors": anchors, "figures": figures, "containment": con,
                   "jaccard": jac}
        columns.update(anchors=anchors, figures=figures, loose=loose)
        if p.verifier in EXCERPTS:  # v10: a verbatim excerpt is no templated brief; the copy rule decides it
            maybe = excerpt_candidates(held, aligned, figures)
            excerpt = maybe & (_measure_overlaps(columns, docs["text"], ia, ib, maybe).containment
                               >= EXCERPT_CONTAINMENT)
            brief, held = brief & ~excerpt, held & ~excerpt
        if p.verifier in TREE_SIGNALS:
            signals["aligned"] = aligned
            # the copy rule decides the others; a pair sharing few anchors is no rewrite (every development rewrite
            # pair shares >= 0.2 of them), so the trees are not asked
            ask = both & ((core < p.verify_threshold) | (held & copy_only)) & (anchors >= REWRITE_MIN_ANCHORS)
            if p.verifier in TEMPLATE_CHECK:  # v8: the copy rule's links of short texts, unless re-issues
                checked = both & (core >= p.verify_threshold) & ~held & (shorter < TEMPLATE_WORDS)
                template = checked & ~_measure_overlaps(columns, docs["text"], ia, ib, checked).reissue
            rewrite, own = rewrite_trees(p, signals, docs["text"], ia, ib, ask | template)
            columns.update(own)
            unlike = template & (rewrite < TEMPLATE_PROBABILITY)
            core = np.where(unlike, np.minimum(core, KEEP_SCORE), core)
            rule[unlike] = "template"
            if p.paraphrase_trees:
                # v7: the pairs below the copy rule the first trees rank near or above their cut are the second's;
                # v9: and the caps' held links, but no re-issue
                second_held = p.verifier in SECOND_HELD
                second = ask & ((core < p.verify_threshold) | (held & second_held)) & (rewrite >= _floor(p))
                if second_held:
                    second &= ~_measure_overlaps(columns, docs["text"], ia, ib, second).reissue
                decided, para = paraphrase_trees(p, {**signals, **own}, docs["text"], ia, ib, second)
                columns.update(para, rewrite_first=rewrite)
                rewrite = np.where(second, decided, rewrite)
        else:
            rewrite = rewrite_probability(p, signals)
        if copy_only:  # after the trees read the copy rule's own score
            core = _hold(core, held, brief, rule)
        # the copy rule decided the pairs the template check kept (or dropped); the trees only checked them
        lifts = both & (rewrite > core) & ~template
        rule[lifts] = "rewrite"
        core = np.where(lifts, rewrite, core)
        columns["rewrite"] = rewrite
    score = np.where(both, core, est).astype(np.float32)
    if not copy_only:
        score = _hold(score, held, brief, rule)
    out = {
        "doc_a": cands["doc_a"], "doc_b": cands["doc_b"], "jaccard_est": est,
        "jaccard": np.where(both, jac, np.nan).astype(np.float32),
        "containment": np.where(both, con, np.nan).astype(np.float32),
        "aligned": np.where(both, aligned, np.nan).astype(np.float32),
        "score": score, "linked": score >= p.verify_threshold,
    }
    for name, values in columns.items():
        out[name] = pa.array(values.astype(np.float32), mask=~both | np.isnan(values))
    out["rule"] = pa.array(rule.tolist(), pa.string())
    return pa.table(out)
