"""Compiled kernels are cached by numba in the package's __pycache__ folders, and numba re-checks only the source file of each
cached function, not the files of the functions it inlined. After an update that changes shingle.py but not
verify.py (`git pull` in an editable install keeps the times of unchanged files), verify's cached kernel would
run the old `in_set` against the new stop-word table, and loop forever. So every kernel cache goes as soon as
any source file of the package changes.

The package also ships the kernels a first ingest compiles (`dedup/data/kernels.zip`, made by
`scripts/build_kernel_cache.py`): numba's own cache files, which numba accepts in any copy of the package, as it
checks a file's content, not its path or time. They are machine code for one platform (Python, numba and llvmlite
versions, CPU model and features) and one state of the kernels' sources; anywhere else they stay in the
archive and the first run compiles, as without them."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

# two short copies of one text: every verify kernel is called at least once
WARM_TEXT = ("The council approved the new budget of 12,500 euros on Monday. Critics said the plan came too late for "
             "the harbour district. The mayor will present the details to residents next week.")
STAMP = "kernels.sources"  # in __pycache__: the digest of the sources the cached kernels were compiled from
SHIPPED = Path("data") / "kernels.zip"  # in the package: compiled kernels, and MANIFEST
MANIFEST = "kernels.json"  # in the archive: the platform and sources the kernels were compiled for
KERNEL = re.compile(r"^\s*@numba\.(njit|jit)\b", re.M)  # a module that defines kernels


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


def kernel_sources(package: Path) -> list[Path]:
    """The files compiled kernels depend on: the modules defining kernels (a kernel inlines only other kernels),
    the package modules they import constants from (a global is compiled in as a constant; UPPER_CASE names by
    convention) and the data files."""
    kernels = {f for f in package.rglob("*.py") if KERNEL.search(f.read_text(encoding="utf-8"))}
    imported = set()
    for f in kernels:
        for node in ast.parse(f.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package.name + ".")
                    and any(alias.name.isupper() for alias in node.names)):
                base = package.joinpath(*node.module.split(".")[1:])
                imported.add(base / "__init__.py" if base.is_dir() else base.with_suffix(".py"))
    return sorted(kernels | {f for f in imported if f.exists()} | set((package / "data").glob("*.json")))


def kernel_digest(package: Path) -> str:
    digest = hashlib.sha256()
    for f in kernel_sources(package):
        digest.update(f.relative_to(package).as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def platform() -> dict[str, object]:
    """What numba's machine code depends on besides the sources: numba keys each cached kernel by CPU model and
    features (its `magic_tuple`) and reads it back only with its own version (which pins llvmlite's)."""
    import llvmlite
    import numba
    from numba.core.registry import cpu_target

    return {"python": sys.implementation.cache_tag, "numba": numba.__version__, "llvmlite": llvmlite.__version__,
            "target": list(cpu_target.target_context.codegen().magic_tuple())}


def pack_kernels(package: Path, archive: Path) -> int:
    """Store the kernels cached in the package's __pycache__ folders, with the platform and the digest of their
    sources, in `archive`. Returns how many kernels (numba index files)."""
    files = sorted(f for pattern in ("*.nbi", "*.nbc") for f in package.rglob(f"__pycache__/{pattern}"))
    manifest = {"sources": kernel_digest(package), "platform": platform()}
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(MANIFEST, json.dumps(manifest, indent=1))
        for f in files:
            z.write(f, f.relative_to(package).as_posix())
    return sum(f.suffix == ".nbi" for f in files)


def shipped_kernels_fit(package: Path) -> bool:
    """Were the kernels shipped with the package compiled on this platform from these sources?"""
    try:
        with zipfile.ZipFile(package / SHIPPED) as z:
            manifest = json.loads(z.read(MANIFEST))
        return manifest["sources"] == kernel_digest(package) and manifest["platform"] == platform()
    except (OSError, KeyError, ValueError, ImportError, AttributeError, zipfile.BadZipFile):
        return False  # no archive, an unreadable one, a numba that does not describe its platform so


def install_shipped_kernels(package: Path) -> bool:
    """Put the shipped kernels where numba looks for them, if nothing is cached yet and they fit; otherwise
    numba compiles as usual. True if installed."""
    if os.environ.get("NUMBA_CACHE_DIR") or kernels_cached(package) or not shipped_kernels_fit(package):
        return False
    try:
        with zipfile.ZipFile(package / SHIPPED) as z:
            # the data files before the index files that name them: another process that sees an index finds
            # its data; each written whole under a temporary name first, as numba does
            for name in sorted((n for n in z.namelist() if n != MANIFEST), key=lambda n: n.endswith(".nbi")):
                target = package / name
                target.parent.mkdir(exist_ok=True)
                partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
                partial.write_bytes(z.read(name))
                os.replace(partial, target)
    except (OSError, zipfile.BadZipFile):  # a read-only install: numba caches elsewhere, and compiles
        return False
    return True


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

    import numpy as np
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
    # the rewrite trees' kernels, which only pairs the copy rule leaves out reach (two copies never do)
    from dedup.embed import embedding_signals, word_signals
    from dedup.trees import forest

    trees = forest(p.rewrite_trees)
    embedding_signals([WARM_TEXT, WARM_TEXT], np.array([0]), np.array([1]), trees.word_vectors, structure=True)
    word_signals([WARM_TEXT, WARM_TEXT], np.array([0]), np.array([1]), trees.word_vectors)
    trees.margin(np.zeros((1, len(trees.features))))
