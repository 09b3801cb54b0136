"""Compiled kernels are cached by numba in the package's __pycache__ folders, and numba re-checks only the source file of each
cached function, not the files of the functions it inlined. After an update that changes shingle.py but not
verify.py (`git pull` in an editable install keeps the times of unchanged files), verify's cached kernel would
run the old `in_set` against the new stop-word table, and loop forever. So every kernel cache goes as soon as
any source file of the package changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

STAMP = "kernels.sources"  # in __pycache__: the digest of the sources the cached kernels were compiled from


def kernels_cached(package: Path) -> bool:
    """Has numba compiled kernels cached for these sources? Not on the first run after an install or an update,
    which compiles them (~70 CPU-seconds, `scripts/compile_times.py`) before its first document."""
    return any((package / "__pycache__").glob("*.nbi"))


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
