"""xxHash32 compiled with numba: bit-identical to `xxhash.xxh32_intdigest(data, seed)`.

The shingle hash is part of the index contract (`hash = "xxh32"` in the manifest); users reproduce a stored
signature with datasketch by passing `hashfunc=xxhash.xxh32_intdigest`.
"""

from __future__ import annotations

import numba
import numpy as np

_P1 = np.uint64(0x9E3779B1)
_P2 = np.uint64(0x85EBCA77)
_P3 = np.uint64(0xC2B2AE3D)
_P4 = np.uint64(0x27D4EB2F)
_P5 = np.uint64(0x165667B1)
_M32 = np.uint64(0xFFFFFFFF)


@numba.njit(inline="always")
def _rotl(x: np.uint64, r: int) -> np.uint64:
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _M32


@numba.njit(inline="always")
def _read32(buf: np.ndarray, i: int) -> np.uint64:
    return (np.uint64(buf[i]) | (np.uint64(buf[i + 1]) << np.uint64(8))
            | (np.uint64(buf[i + 2]) << np.uint64(16)) | (np.uint64(buf[i + 3]) << np.uint64(24)))


@numba.njit(inline="always")
def _word_round(h: np.uint64, word: np.uint64) -> np.uint64:
    """Mix one 4-byte little-endian word into the hash (the tail of the input, after the 16-byte stripes)."""
    return (_rotl((h + word * _P3) & _M32, 17) * _P4) & _M32


@numba.njit(inline="always")
def _byte_round(h: np.uint64, byte: np.uint64) -> np.uint64:
    """Mix one of the last 0-3 bytes into the hash."""
    return (_rotl((h + byte * _P5) & _M32, 11) * _P1) & _M32


@numba.njit(inline="always")
def _avalanche(h: np.uint64) -> np.uint32:
    h ^= h >> np.uint64(15)
    h = (h * _P2) & _M32
    h ^= h >> np.uint64(13)
    h = (h * _P3) & _M32
    h ^= h >> np.uint64(16)
    return np.uint32(h)


@numba.njit(cache=True, nogil=True)
def xxh32(buf: np.ndarray, start: int, end: int, seed: int) -> np.uint32:
    """xxHash32 of the bytes buf[start:end]."""
    length = end - start
    i = start
    s = np.uint64(seed) & _M32
    if length >= 16:
        v1 = (s + _P1 + _P2) & _M32
        v2 = (s + _P2) & _M32
        v3 = s
        v4 = (s - _P1) & _M32
        limit = end - 16
        while i <= limit:
            v1 = (_rotl((v1 + _read32(buf, i) * _P2) & _M32, 13) * _P1) & _M32
            v2 = (_rotl((v2 + _read32(buf, i + 4) * _P2) & _M32, 13) * _P1) & _M32
            v3 = (_rotl((v3 + _read32(buf, i + 8) * _P2) & _M32, 13) * _P1) & _M32
            v4 = (_rotl((v4 + _read32(buf, i + 12) * _P2) & _M32, 13) * _P1) & _M32
            i += 16
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M32
    else:
        h = (s + _P5) & _M32
    h = (h + np.uint64(length)) & _M32
    while i + 4 <= end:
        h = _word_round(h, _read32(buf, i))
        i += 4
    while i < end:
        h = _byte_round(h, np.uint64(buf[i]))
        i += 1
    return _avalanche(h)


@numba.njit(cache=True, nogil=True)
def xxh32_spans(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """xxHash32 (seed 0) of each span buf[starts[i]:ends[i]] (tokens, stems, character n-grams), reading up to 15
    bytes past a span's start (the caller pads `buf`). Spans vary in length, and xxh32's branches per 4-byte word
    and per byte mispredicted on most of them: spans below 16 bytes are hashed in a loop without branches (every
    round computed and kept or not: 5-10 ns a token, against 16 with the branches), the few longer ones again
    after it."""
    out = np.empty(starts.shape[0], dtype=np.uint32)
    for i in range(out.shape[0]):
        out[i] = _xxh32_below16(buf, starts[i], ends[i])
    for i in range(out.shape[0]):
        if ends[i] - starts[i] >= 16:
            out[i] = xxh32(buf, starts[i], ends[i], 0)
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _xxh32_below16(buf: np.ndarray, start: int, end: int) -> np.uint32:
    """xxHash32 (seed 0) of fewer than 16 bytes, without branches (LLVM kept `if`s as branches: masks instead)."""
    length = end - start
    h = (_P5 + np.uint64(length)) & _M32
    words = length >> 2
    for w in range(3):
        step = _word_round(h, _read32(buf, start + 4 * w))
        keep = np.uint64(0) - np.uint64(w < words)
        h ^= (h ^ step) & keep
    tail = start + 4 * words
    for k in range(3):
        step = _byte_round(h, np.uint64(buf[tail + k]))
        keep = np.uint64(0) - np.uint64(tail + k < end)
        h ^= (h ^ step) & keep
    return _avalanche(h)


@numba.njit(cache=True, nogil=True, inline="always")
def xxh32_packed(lo: np.uint64, hi: np.uint64, length: int) -> np.uint32:
    """xxHash32 (seed 0) of `length` < 16 bytes held little-endian in two words: bytes 0-7 in `lo`, 8-15 in `hi`.
    Shingles of two short stems are hashed from registers, without copying their bytes to a buffer."""
    h = (_P5 + np.uint64(length)) & _M32
    i = 0
    while i + 4 <= length:
        word = (lo >> np.uint64(8 * i)) if i < 8 else (hi >> np.uint64(8 * (i - 8)))
        h = _word_round(h, word & _M32)
        i += 4
    while i < length:
        byte = (lo >> np.uint64(8 * i)) if i < 8 else (hi >> np.uint64(8 * (i - 8)))
        h = _byte_round(h, byte & np.uint64(0xFF))
        i += 1
    return _avalanche(h)
