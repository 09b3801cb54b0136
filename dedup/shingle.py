"""Stage 2: shingling.

`char` shingles are the n-code-point substrings of the normalized text (spaces included, so word boundaries
count); `word` shingles are n consecutive tokens joined by one space. A text shorter than one shingle yields a
single shingle of the whole text, an empty text none. Shingles are hashed as their UTF-8 bytes with xxh32.
The kernel `shingle_hashes` computes exactly `[xxh32(s) for s in shingles(...)]` without building strings.
"""

from __future__ import annotations

import numba
import numpy as np

from dedup.hashfunc import xxh32
from dedup.normalize import normalize_text


def shingles(text: str, kind: str, size: int) -> list[bytes]:
    """Reference shingler over raw text (normalizes first)."""
    norm = normalize_text(text)
    if not norm:
        return []
    if kind == "char":
        units: list[str] = list(norm)
        sep = ""
    else:
        units = norm.split(" ")
        sep = " "
    if len(units) <= size:
        return [sep.join(units).encode("utf-8")]
    return [sep.join(units[i:i + size]).encode("utf-8") for i in range(len(units) - size + 1)]


@numba.njit(cache=True, nogil=True)
def utf8_encode(cps: np.ndarray, n: int, out: np.ndarray, starts: np.ndarray) -> int:
    """UTF-8 encode cps[:n] into `out`; starts[i] = byte offset of code point i, starts[n] = total length."""
    j = 0
    for i in range(n):
        c = cps[i]
        starts[i] = j
        if c < 0x80:
            out[j] = c
            j += 1
        elif c < 0x800:
            out[j] = 0xC0 | (c >> 6)
            out[j + 1] = 0x80 | (c & 0x3F)
            j += 2
        elif c < 0x10000:
            out[j] = 0xE0 | (c >> 12)
            out[j + 1] = 0x80 | ((c >> 6) & 0x3F)
            out[j + 2] = 0x80 | (c & 0x3F)
            j += 3
        else:
            out[j] = 0xF0 | (c >> 18)
            out[j + 1] = 0x80 | ((c >> 12) & 0x3F)
            out[j + 2] = 0x80 | ((c >> 6) & 0x3F)
            out[j + 3] = 0x80 | (c & 0x3F)
            j += 4
    starts[n] = j
    return j


@numba.njit(cache=True, nogil=True)
def shingle_hashes(norm: np.ndarray, n: int, word: bool, size: int) -> np.ndarray:
    """xxh32 of every shingle of the normalized code points norm[:n] (see `shingles`)."""
    if n == 0:
        return np.empty(0, dtype=np.uint32)
    buf = np.empty(4 * n, dtype=np.uint8)
    starts = np.empty(n + 1, dtype=np.int64)
    utf8_encode(norm, n, buf, starts)
    if not word:
        if n <= size:
            out = np.empty(1, dtype=np.uint32)
            out[0] = xxh32(buf, 0, starts[n], 0)
            return out
        m = n - size + 1
        out = np.empty(m, dtype=np.uint32)
        for i in range(m):
            out[i] = xxh32(buf, starts[i], starts[i + size], 0)
        return out
    # word shingles: token i spans code points [tok_s[i], tok_e[i])
    tok_s = np.empty(n // 2 + 1, dtype=np.int64)
    tok_e = np.empty(n // 2 + 1, dtype=np.int64)
    t = 0
    tok_s[0] = 0
    for i in range(n):
        if norm[i] == 32:
            tok_e[t] = i
            t += 1
            tok_s[t] = i + 1
    tok_e[t] = n
    t += 1
    if t <= size:
        out = np.empty(1, dtype=np.uint32)
        out[0] = xxh32(buf, 0, starts[n], 0)
        return out
    m = t - size + 1
    out = np.empty(m, dtype=np.uint32)
    for i in range(m):
        out[i] = xxh32(buf, starts[tok_s[i]], starts[tok_e[i + size - 1]], 0)
    return out
