"""Stage 1: text normalization.

Unicode NFKC, then case folding, then every character that is not a letter, digit or combining mark becomes a
separator; runs of separators collapse to one space. The result is a sequence of word tokens joined by single
spaces. The numba kernel folds texts made of the common blocks (`FAST_BLOCKS`: Latin, Greek, Cyrillic,
punctuation) itself, code point by code point, from a table that CPython's NFKC and case folding filled
(`fast_fold_table`); other texts are folded by CPython. The character classing runs in the kernel over code
points, driven by the same `word_char` table as the reference `normalize_text`, so both agree exactly.

The tables are built on first use (0.4 s for all three) and kept, so that importing dedup stays cheap.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import numba
import numpy as np
import pyarrow as pa


@cache
def word_char() -> np.ndarray:
    """1 for code points that belong to words (`str.isalnum()` or a combining mark), 0 for separators. Computed
    over all code points at once in C (re's `[^\\W_]` is exactly `isalnum`): 0.2 s, where a Python loop took 0.5 s
    of every run's start."""
    chars = np.arange(0x110000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    table = np.zeros(0x110000, dtype=np.uint8)
    table[[m.start() for m in re.finditer(r"[^\W_]", chars)]] = 1
    marks = frozenset(("Mn", "Mc", "Me"))
    table[np.fromiter(map(marks.__contains__, map(unicodedata.category, chars)), np.bool_, 0x110000)] = 1
    return table


def fold(text: str) -> str:
    """NFKC then case folding: the part of normalization done in CPython (on ASCII both are just lower())."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", text).casefold()


def tokens(text: str) -> list[str]:
    """Reference tokenizer: word tokens of the folded text."""
    table = word_char()
    return "".join(c if table[ord(c)] else " " for c in fold(text)).split()


def normalize_text(text: str) -> str:
    """Reference normalizer: the exact string whose shingles are hashed."""
    return " ".join(tokens(text))


def fold_batch(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Fold a batch and pack it as one UTF-8 buffer plus byte offsets (len = n + 1); kernels decode each text
    with `utf8_decode` (UTF-8 is a quarter of the size of code points, and encoding it is a copy for ASCII)."""
    return pack_batch([fold(t) for t in texts])


def utf8_buffers(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(byte offsets, UTF-8 bytes) of an Arrow string array, without copying the bytes."""
    strings = strings.cast(pa.large_string())
    _, offsets, data = strings.buffers()
    offsets = np.frombuffer(offsets, np.int64)[strings.offset:strings.offset + len(strings) + 1]
    return offsets, (np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8))


def pack_batch(texts: list[str] | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A batch as one UTF-8 buffer plus byte offsets (len = n + 1), as is (an Arrow array: its own buffers)."""
    if isinstance(texts, pa.Array):
        offsets, data = utf8_buffers(texts)
        return data, offsets
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


# Blocks whose code points the kernel folds itself: Latin-1, Latin Extended-A/B, Greek, Cyrillic, General
# Punctuation, Currency Symbols and U+FFFD (the replacement character left by broken encodings upstream).
FAST_BLOCKS = ((0x0000, 0x0250), (0x0370, 0x0500), (0x2000, 0x2070), (0x20A0, 0x20D0), (0xFFFD, 0xFFFE))


def _fold_table(spaces: bool) -> np.ndarray:
    """What `fold` does to each code point of FAST_BLOCKS, for kernels to fold texts made only of those (most
    news) without CPython: the folded code point, FOLD_SLOW where one character becomes several ("ß" → "ss",
    "½", "…" → "..."), for combining marks, and outside those blocks. With `spaces` (shingling, `fast_fold_table`), a
    character that folds to separators only becomes a space, all that shingling reads of it; verification
    (`char_fold_table`) reads punctuation, so it keeps each character's own fold. No two of the remaining characters
    combine under NFKC (tests check every pair), so folding them one by one equals folding the whole text."""
    table = np.full(0x10000, FOLD_SLOW, dtype=np.uint32)
    for lo, hi in FAST_BLOCKS:
        for cp in range(lo, hi):
            c = chr(cp)
            f = unicodedata.normalize("NFKC", c).casefold()
            if unicodedata.combining(c) or unicodedata.category(c) == "Mn":
                continue
            if spaces and all(not word_char()[ord(x)] for x in f):
                table[cp] = 32
            elif len(f) == 1:
                table[cp] = ord(f)
    return table


FOLD_SLOW = np.uint32(0xFFFFFFFF)


@cache
def fast_fold_table() -> np.ndarray:
    """`_fold_table` for shingling: what folds to separators only becomes a space."""
    return _fold_table(spaces=True)


@cache
def char_fold_table() -> np.ndarray:
    """`_fold_table` for verification: every character keeps its own fold."""
    return _fold_table(spaces=False)


_TABLES = {"WORD_CHAR": word_char, "FAST_FOLD": fast_fold_table, "CHAR_FOLD": char_fold_table}


def __getattr__(name: str) -> np.ndarray:
    """The tables under their constant names (`from dedup.normalize import WORD_CHAR`), built when first asked."""
    if name in _TABLES:
        return _TABLES[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@numba.njit(cache=True, nogil=True)
def fast_fold(cps: np.ndarray, table: np.ndarray) -> bool:
    """Fold `cps` in place with `table` (`fast_fold_table()`, `char_fold_table()`); False (cps partly folded) if a code point
    needs CPython's `fold`."""
    for i in range(cps.shape[0]):
        c = cps[i]
        if c >= table.shape[0]:
            return False
        f = table[c]
        if f == FOLD_SLOW:
            return False
        cps[i] = f
    return True


@numba.njit(cache=True, nogil=True)
def unfoldable(buf: np.ndarray, offsets: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Which texts of (buf, offsets) hold a code point that `table` cannot fold (CPython folds those): each is
    decoded and folded once more, ~1.4 µs a news text."""
    out = np.zeros(offsets.shape[0] - 1, dtype=np.bool_)
    for d in range(out.shape[0]):
        out[d] = not fast_fold(utf8_decode(buf[offsets[d]:offsets[d + 1]]), table)
    return out


@numba.njit(cache=True, nogil=True)
def utf8_decode(b: np.ndarray) -> np.ndarray:
    """Code points of well-formed UTF-8 bytes (as produced by `fold_batch`)."""
    out = np.empty(b.shape[0], dtype=np.uint32)
    i = n = 0
    while i < b.shape[0]:
        c = np.uint32(b[i])
        if c < 0x80:
            i += 1
        elif c < 0xE0:
            c = ((c & 0x1F) << 6) | (b[i + 1] & 0x3F)
            i += 2
        elif c < 0xF0:
            c = ((c & 0x0F) << 12) | ((b[i + 1] & 0x3F) << 6) | (b[i + 2] & 0x3F)
            i += 3
        else:
            c = ((c & 0x07) << 18) | ((b[i + 1] & 0x3F) << 12) | ((b[i + 2] & 0x3F) << 6) | (b[i + 3] & 0x3F)
            i += 4
        out[n] = c
        n += 1
    return out[:n]


@numba.njit(cache=True, nogil=True)
def squeeze(cps: np.ndarray, table: np.ndarray, out: np.ndarray) -> int:
    """Write the normalized code points of `cps` (tokens joined by one space) to `out`; return their count.
    Without branches (a space and the character are written, and kept or not): word boundaries come every few
    characters, and branching on them mispredicted."""
    n = 0
    prev = True  # was the previous character a word character (or is this the start)?
    for i in range(cps.shape[0]):
        c = cps[i]
        word = table[c] != 0
        out[n] = 32
        n += word & (not prev) & (n > 0)
        out[n] = c
        n += word
        prev = word
    return n
