"""Stage 1: text normalization.

Unicode NFKC, then case folding, then every character that is not a letter, digit or combining mark becomes a
separator; runs of separators collapse to one space. The result is a sequence of word tokens joined by single
spaces. NFKC and case folding run in CPython (C code, fast); the character classing runs in the numba kernel
over code points, driven by the same `WORD_CHAR` table as the reference `normalize_text`, so both agree exactly.
"""

from __future__ import annotations

import unicodedata

import numba
import numpy as np


def _word_char_table() -> np.ndarray:
    """1 for code points that belong to words (letters, digits, marks), 0 for separators."""
    table = np.zeros(0x110000, dtype=np.uint8)
    for cp in range(0x110000):
        c = chr(cp)
        if c.isalnum() or unicodedata.category(c)[0] == "M":
            table[cp] = 1
    return table


WORD_CHAR: np.ndarray = _word_char_table()


def fold(text: str) -> str:
    """NFKC then case folding: the part of normalization done in CPython (on ASCII both are just lower())."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", text).casefold()


def tokens(text: str) -> list[str]:
    """Reference tokenizer: word tokens of the folded text."""
    table = WORD_CHAR
    return "".join(c if table[ord(c)] else " " for c in fold(text)).split()


def normalize_text(text: str) -> str:
    """Reference normalizer: the exact string whose shingles are hashed."""
    return " ".join(tokens(text))


def fold_batch(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Fold a batch and pack it as one UTF-8 buffer plus byte offsets (len = n + 1); kernels decode each text
    with `utf8_decode` (UTF-8 is a quarter of the size of code points, and encoding it is a copy for ASCII)."""
    folded = [fold(t).encode("utf-8", "surrogatepass") for t in texts]
    offsets = np.zeros(len(folded) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in folded], out=offsets[1:])
    return np.frombuffer(b"".join(folded), dtype=np.uint8), offsets


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
    """Write the normalized code points of `cps` (tokens joined by one space) to `out`; return their count."""
    n = 0
    pending_space = False
    for c in cps:
        if table[c]:
            if pending_space and n > 0:
                out[n] = 32
                n += 1
            pending_space = False
            out[n] = c
            n += 1
        else:
            pending_space = True
    return n
