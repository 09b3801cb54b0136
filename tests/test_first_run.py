"""The first ingest after an install loads the kernels shipped with the package where they fit, and otherwise
compiles them: the verify ones in a second process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xxhash

import dedup
from dedup.kernel_cache import SHIPPED, shipped_kernels_fit

from conftest import ARTICLES

FIRST_RUN = r"""
import json, sys
from numba.core import event
import dedup

compiled = set()

class Listener(event.Listener):
    def on_start(self, ev):
        pass

    def on_end(self, ev):
        f = ev.data["dispatcher"].py_func
        compiled.add(f"{f.__module__}.{f.__name__}")

event.register("numba:compile", Listener())
s = dedup.ingest(sys.argv[1], sys.argv[2])
print(json.dumps({"compiled": sorted(compiled), "linked": s.linked}))
"""


def test_first_ingest_compiles_verify_kernels_in_a_second_process(tmp_path: Path) -> None:
    """A fresh copy of the package without shipped kernels has nothing cached: the ingest of the seed pair
    compiles the sketch and link kernels itself and loads the verify ones that its helper process compiled
    meanwhile, with the argument types the ingest passes (a type the helper did not compile would be compiled
    here again)."""
    pkg = _fresh_copy(tmp_path, shipped=False)
    run = _run(tmp_path, FIRST_RUN, str(ARTICLES / "seeds"), str(tmp_path / "idx"))
    assert run["linked"] == 1  # the seed pair
    mine = {k for k in run["compiled"] if k.startswith("dedup.")}
    assert {"dedup.sketch._sketch_kernel", "dedup.link._band_pairs"} <= mine
    assert not {k for k in mine if k.startswith(("dedup.verify.", "dedup.batch.score.", "dedup.rewrite_kernels."))}
    cached = {p.name.split("-")[0] for p in pkg.rglob("*.nbi")}  # as numba names its index files
    assert {"verify._score_kernel", "verify._profile_texts", "link._band_pairs", "score.group_cuts",
            "rewrite_kernels.pair_signals", "rewrite_kernels.forest_margin"} <= cached


def test_kernels_count_as_cached_where_numba_caches_them(tmp_path: Path, monkeypatch) -> None:
    """With NUMBA_CACHE_DIR set numba caches there, not in the package: the kernels the package's __pycache__
    holds do not count (`scripts/compile_times.py` measures a first run that way)."""
    from dedup.kernel_cache import kernels_cached

    pkg = tmp_path / "dedup"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "__pycache__" / "sketch._sketch_kernel-70.py311.nbi").write_bytes(b"")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert kernels_cached(pkg)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    (tmp_path / "numba").mkdir()
    assert not kernels_cached(pkg)
    (tmp_path / "numba" / "dedup_abc").mkdir()  # numba's folder for the package's sources
    (tmp_path / "numba" / "dedup_abc" / "sketch._sketch_kernel-70.py311.nbi").write_bytes(b"")
    assert kernels_cached(pkg)


def test_first_ingest_loads_the_shipped_kernels(tmp_path: Path) -> None:
    """Where the archive in the repository fits (this machine's platform, the kernels' sources as they are), a
    fresh copy of the package compiles nothing on its first ingest, and finds the seed pair."""
    if not shipped_kernels_fit(Path(dedup.__file__).parent):
        pytest.skip("dedup/data/kernels.zip was compiled for another platform or other sources "
                    "(scripts/build_kernel_cache.py)")
    _fresh_copy(tmp_path, shipped=True)
    run = _run(tmp_path, FIRST_RUN, str(ARTICLES / "seeds"), str(tmp_path / "idx"))
    assert run["linked"] == 1
    assert not [k for k in run["compiled"] if k.startswith("dedup.")]


HASH = r"""
import json, sys
import numpy as np
from numba.core import event
from dedup.runtime import prepare_process
from dedup.hashfunc import xxh32

compiled = []

class Listener(event.Listener):
    def on_start(self, ev):
        pass

    def on_end(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__name__)

event.register("numba:compile", Listener())
prepare_process()
buf = np.frombuffer(b"the shipped kernel", np.uint8)
h = int(xxh32(buf, 0, len(buf), 7))
if sys.argv[1:] == ["pack"]:
    from pathlib import Path
    import dedup
    from dedup.kernel_cache import SHIPPED, pack_kernels
    pkg = Path(dedup.__file__).parent
    pack_kernels(pkg, pkg / SHIPPED)
print(json.dumps({"compiled": compiled, "hash": h}))
"""


def test_shipped_kernels_serve_only_their_platform_and_sources(tmp_path: Path) -> None:
    """An archive holding the one kernel it was packed with: a fresh copy loads it without compiling; on another
    CPU (NUMBA_CPU_NAME) or after a kernel it may have inlined changed, the kernel is compiled instead, with the
    same result."""
    pkg = _fresh_copy(tmp_path, shipped=False)
    expected = xxhash.xxh32_intdigest(b"the shipped kernel", 7)
    assert _run(tmp_path, HASH, "pack") == {"compiled": ["xxh32"], "hash": expected}

    def first_run(**env: str) -> dict:
        for f in [*pkg.rglob("*.nbi"), *pkg.rglob("*.nbc"), *pkg.rglob("kernels.sources")]:
            f.unlink()
        return _run(tmp_path, HASH, **env)

    assert first_run() == {"compiled": [], "hash": expected}
    assert first_run(NUMBA_CPU_NAME="generic") == {"compiled": ["xxh32"], "hash": expected}
    with open(pkg / "normalize.py", "a") as f:  # xxh32 does not call it, but the digest cannot know
        f.write("\n# changed\n")
    assert first_run() == {"compiled": ["xxh32"], "hash": expected}


def _fresh_copy(tmp_path: Path, shipped: bool) -> Path:
    """The package as installed: no kernels cached; with the shipped archive or without."""
    pkg = tmp_path / "dedup"
    ignore = ["__pycache__"] if shipped else ["__pycache__", SHIPPED.name]
    shutil.copytree(os.path.dirname(dedup.__file__), pkg, ignore=shutil.ignore_patterns(*ignore))
    return pkg


def _run(tmp_path: Path, script: str, *args: str, **env: str) -> dict:
    """`script` in a new process that imports the package copied to `tmp_path`; its last line of output."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | {"PYTHONPATH": str(tmp_path)} | env
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])

