"""Compiled kernels are cached by numba in the package's __pycache__ folders, and numba re-checks only the source file of each
cached function, not the files of the functions it inlined. After an update that changes shingle.py but not
verify.py (`git pull` in an editable install keeps the times of unchanged files), verify's cached kernel would
run the old `in_set` against the new stop-word table, and loop forever. So every kernel cache goes as soon as
any source file of the package changes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

# two short copies of one text: every verify kernel is called at least once
WARM_TEXT = ("The council approved the new budget of 12,500 euros on Monday. Critics said the plan came too late for "
             "the harbour district. The mayor will present the details to residents next week.")
STAMP = "kernels.sources"  # in __pycache__: the digest of the sources the cached kernels were compiled from


def kernels_cached(package: Path) -> bool:
    """Has numba compiled kernels cached for these sources? Not on the first run after an install or an update,
    which compiles them (~60 CPU-seconds, `scripts/compile_times.py`) before its first document."""
    elsewhere = os.environ.get("NUMBA_CACHE_DIR")  # numba then caches there, in folders named after the sources
    return any(Path(elsewhere).rglob("*.nbi")) if elsewhere else any((package / "__pycache__").glob("*.nbi"))


def drop_stale_kernels(package: Path) -> None:
    """Remove numba's cache files in the package's __pycache__ folders unless they were compiled from the sources
    there now (~1 ms). A read-only install is left alone: numba then caches elsewhere, and installing rewrites
    every file, which numba does notice."""
    digest = hashlib.sha256()
    sources = sorted(package.rglob("*.py"))
    for source in sources:
        digest.update(source.relative_to(package).as_posix().encode() + b"\0" + source.read_bytes())
    cache, now = package / "__pycache__", digest.hexdigest()
    try:
        if (cache / STAMP).read_text() == now:
            return
    except OSError:
        pass
    try:
        cache.mkdir(exist_ok=True)
        for folder in {s.parent / "__pycache__" for s in sources}:
            for f in [*folder.glob("*.nbi"), *folder.glob("*.nbc")]:
                f.unlink(missing_ok=True)
        (cache / STAMP).write_text(now)
    except OSError:
        pass


def compile_ahead() -> subprocess.Popen | None:
    """On the first run (nothing cached), compile the verify kernels in a second process while this one compiles
    the sketch and link kernels (about as much work): numba compiles under one lock per process, so two processes
    use both cores and numba's cache hands their kernels to this one. Its `wait` comes before verifying; its
    failure only means this process compiles them itself. None when the kernels are cached."""
    if kernels_cached(Path(__file__).parent):
        return None
    try:
        return subprocess.Popen([sys.executable, "-c", "from dedup.kernel_cache import compile_later_stages as c; c()"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def compile_later_stages() -> None:
    """Verify two copies as an ingest does, with its argument types: numba compiles and caches every kernel of
    that stage."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from dedup.batch.score import scored_pairs
    from dedup.params import Params
    from dedup.runtime import prepare_process

    prepare_process()
    p = Params()
    cands = pa.table({"doc_a": ["a"], "doc_b": ["b"], "bands": pa.array([p.bands], pa.int16())})  # as linking
    with tempfile.TemporaryDirectory() as tmp:
        pq.write_table(pa.table({"doc_id": ["a", "b"], "text": [WARM_TEXT, WARM_TEXT]}), f"{tmp}/documents.parquet")
        for _ in scored_pairs(cands, [f"{tmp}/documents.parquet"], p, 1, 2, 2):
            pass
