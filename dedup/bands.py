"""Stage 4: LSH banding.

Band i covers signature rows [i*r, (i+1)*r). Its bucket key is a 64-bit hash of those r values:
    h = i;  for v in band: h = splitmix64(h ^ v)
(`bucket_key` below is the reference). Two documents share a bucket in some band with probability
1 - (1 - J^r)^b, J being their Jaccard similarity: the candidate stage.

Bands 0..b-1 come from the signature of the whole text, bands b..2b-1 from the signature of its lead (first
`lead_words` words): an abridged copy keeps the beginning of the story, so its lead stays similar even when its
whole-text Jaccard is low.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

_M64 = (1 << 64) - 1


def _splitmix64_py(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def bucket_key(band: int, values: list[int]) -> int:
    """Reference bucket key of one band (plain Python, to document and test the kernel)."""
    h = band
    for v in values:
        h = _splitmix64_py(h ^ int(v))
    return h


@numba.njit(cache=True, nogil=True, inline="always")
def _splitmix64(x: np.uint64) -> np.uint64:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def band_keys(sigs: np.ndarray, bands: int, rows: int, first_band: int = 0) -> np.ndarray:
    """(n_docs × bands) uint64 bucket keys of a signature matrix; band numbers start at `first_band`."""
    n = sigs.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    for d in range(n):
        for i in range(bands):
            h = np.uint64(first_band + i)
            for j in range(i * rows, (i + 1) * rows):
                h = _splitmix64(h ^ np.uint64(sigs[d, j]))
            out[d, i] = h
    return out


def bucket_rows(ids: np.ndarray, sigs: np.ndarray, lead: np.ndarray, bands: int, rows: int) -> pa.Table:
    """The `buckets` rows (band, bucket, doc_id) of documents with whole-text and (if any) lead signatures."""
    parts = [(sigs, 0)] + ([(lead, bands)] if len(lead) else [])
    band_col, key_col, id_col = [], [], []
    for s, first in parts:
        band_col.append(np.tile(np.arange(first, first + bands, dtype=np.int16), len(ids)))
        key_col.append(band_keys(s, bands, rows, first).ravel())
        id_col.append(np.repeat(ids, bands))
    return pa.table({"band": np.concatenate(band_col), "bucket": np.concatenate(key_col),
                     "doc_id": pa.array(np.concatenate(id_col), pa.string())})
