"""Process settings an ingest applies while it runs: the C allocator, Python's collector, memory handed back
between stages. Applied when a job starts, never on import: a program that only imports dedup keeps its own."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
from collections.abc import Iterator

import pyarrow as pa


@functools.cache
def libc() -> ctypes.CDLL | None:
    """glibc, told to map every array of 4 MB or more on its own, so that freeing it returns it to the system:
    by default the threshold grows with the arrays freed, and NumPy arrays of tens of MB freed in two threads
    were left as holes in the heap. None elsewhere (the settings are only an optimisation)."""
    try:
        lib = ctypes.CDLL("libc.so.6")
        lib.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD
        return lib
    except (OSError, AttributeError):
        return None


def release_memory() -> None:
    """Hand memory that reading and verifying left behind back before the next large allocation: Python's
    cyclic garbage, the pages Arrow's allocator keeps (360 MB after reading 100k documents) and the free pages of
    the C heap. The garbage is young: a full collection would also walk every object of the imported modules."""
    gc.collect(1)
    pa.default_memory_pool().release_unused()
    lib = libc()
    if lib is not None:
        lib.malloc_trim(0)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic collector off during an ingest: while reading, it walks the records again and again, which
    hold no cycles; while clustering, a full collection walks every object of the imported modules with one core
    idle. `release_memory` collects the young garbage between stages."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
