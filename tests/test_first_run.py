"""The first ingest after an install compiles the kernels: the verify ones in a second process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dedup

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
    """A fresh copy of the package has no cached kernels: the ingest of the seed pair compiles the sketch and link
    kernels itself and loads the verify ones that its helper process compiled meanwhile, with the argument types
    the ingest passes (a type the helper did not compile would be compiled here again)."""
    pkg = tmp_path / "dedup"
    shutil.copytree(os.path.dirname(dedup.__file__), pkg, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | {"PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", FIRST_RUN, str(ARTICLES / "seeds"), str(tmp_path / "idx")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    run = json.loads(out.stdout.splitlines()[-1])
    assert run["linked"] == 1  # the seed pair
    mine = {k for k in run["compiled"] if k.startswith("dedup.")}
    assert {"dedup.sketch._sketch_kernel", "dedup.link._band_pairs"} <= mine
    assert not {k for k in mine if k.startswith(("dedup.verify.", "dedup.batch.score."))}
    cached = {p.name.split("-")[0] for p in pkg.rglob("*.nbi")}  # as numba names its index files
    assert {"verify._score_kernel", "verify._profile_texts", "link._band_pairs", "score.group_cuts"} <= cached


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
