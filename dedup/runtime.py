"""Process settings a job applies when it starts (`prepare_process`: ingest, the CLI, opening an index) and
while it runs (the C allocator, Python's collector, memory handed back between stages). Never on import: a
program that only imports dedup keeps its environment, its allocator and numba's cache as they were."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from dedup.kernel_cache import drop_stale_kernels, install_shipped_kernels


@functools.cache
def prepare_process() -> None:
    """Once per process, before the first kernel runs:
    - numba's cached kernels are dropped if any source file of dedup changed since they were compiled (see
      `dedup.kernel_cache`): numba would load them before checking the files they inlined;
    - numba's OpenMP workers are told to sleep between kernels (`OMP_WAIT_POLICY=PASSIVE`, unless the user chose):
      they otherwise spin ~12 ms on a core after every parallel kernel, taking it from ingest's reading and
      writing threads. OpenMP reads it when numba first loads it, at the first parallel kernel, so a job that
      starts before then is in time;
    - the kernels shipped with the package are put where numba finds them, if nothing is cached yet and they fit
      this machine (`dedup.kernel_cache`): the first run then compiles nothing."""
    drop_stale_kernels(Path(__file__).parent)
    install_shipped_kernels(Path(__file__).parent)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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
