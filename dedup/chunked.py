"""Kernels over a range of items, run a chunk at a time by a pool of Python threads. numba's `parallel=True`
would do the same, but compiling a parallel kernel runs numba's parfor passes over its whole inlined call tree:
a third of the first run's compile time after an install (docs/benchmarks.md). The kernels release the GIL
(`nogil=True`), so the threads run on every core."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

CHUNKS_PER_THREAD = 4  # a thread that drew short items takes another chunk instead of waiting for the others


def run_chunked(kernel: Callable[..., object], n: int, *args: object) -> None:
    """`kernel(lo, hi, *args)` for consecutive chunks [lo, hi) that cover range(n), on numba's number of threads
    (`NUMBA_NUM_THREADS`, `numba.set_num_threads`). Each chunk writes its own items, so the results do not depend
    on the number of threads."""
    threads = numba.get_num_threads()
    chunks = min(n, threads * CHUNKS_PER_THREAD)
    if chunks <= 1 or threads == 1:
        if n:
            kernel(0, n, *args)
        return
    bounds = np.linspace(0, n, chunks + 1).astype(np.int64).tolist()
    with ThreadPoolExecutor(max_workers=threads) as ex:
        list(ex.map(lambda i: kernel(bounds[i], bounds[i + 1], *args), range(chunks)))
