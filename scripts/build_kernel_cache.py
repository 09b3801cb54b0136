"""Compile the kernels a first ingest needs and ship them in dedup/data/kernels.zip (`dedup.kernel_cache`).

    python scripts/build_kernel_cache.py

Ingests the sample (data/articles) with a copy of the package that has nothing cached, compiles the verify and
rewrite-model kernels as an ingest's helper process does, and stores what numba cached, with this machine's
platform and the digest of the kernels' sources. Run it after changing a kernel, on the kind of machine the quick
start should be fast on: the archive only serves the same Python, numba and llvmlite versions and CPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dedup"
COMPILE = """
import sys
from pathlib import Path
import dedup
from dedup.kernel_cache import SHIPPED, compile_later_stages, pack_kernels
dedup.ingest(sys.argv[1], sys.argv[2])
compile_later_stages()
print(pack_kernels(Path(dedup.__file__).parent, Path(sys.argv[3]) / SHIPPED))
"""


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dedup-kernels-") as tmp:
        copy = Path(tmp) / "dedup"
        shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "kernels.zip"))
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | {"PYTHONPATH": tmp}
        out = subprocess.run([sys.executable, "-c", COMPILE, str(ROOT / "data" / "articles"), f"{tmp}/idx",
                              str(PACKAGE)], cwd=tmp, env=env, check=True, stdout=subprocess.PIPE, text=True)
    print(f"{out.stdout.split()[-1]} kernels in {PACKAGE / 'data' / 'kernels.zip'}")


if __name__ == "__main__":
    main()
