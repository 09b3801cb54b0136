"""Which numba kernels a first ingest compiles, how often (one line per type specialisation) and for how long.

    python scripts/compile_times.py [PATH] [--top 40]

Ingests PATH (default: the sample in data/articles) into a temporary index with an empty numba cache, and lists
each of dedup's kernels that this process compiles with its specialisations and its exclusive compile seconds (its
callees' compiles taken out), then numba's own helpers together. Timings come from numba's `numba:compile` events.
The link and verify kernels are compiled by the ingest's helper process (`dedup.kernel_cache.compile_ahead`):
only its CPU seconds are shown.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Compile:
    kernel: str        # module.function
    args: str          # the argument types of this specialisation
    seconds: float     # without the compiles it triggered


@dataclass
class Run:
    seconds: float             # the whole ingest
    compiles: list[Compile]


def compile_times(path: str) -> Run:
    """One ingest of `path` with nothing cached, and every compile numba did during it."""
    from numba.core import event

    import dedup

    stack: list[list[float]] = []
    done: list[Compile] = []

    class Listener(event.Listener):
        def on_start(self, ev: event.Event) -> None:
            stack.append([time.perf_counter(), 0.0])

        def on_end(self, ev: event.Event) -> None:
            started, callees = stack.pop()
            spent = time.perf_counter() - started
            if stack:
                stack[-1][1] += spent
            f = ev.data["dispatcher"].py_func
            done.append(Compile(f"{f.__module__}.{f.__name__}", str(ev.data["args"]), spent - callees))

    event.register("numba:compile", Listener())
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        dedup.ingest(path, Path(tmp) / "idx")
    return Run(time.perf_counter() - t, done)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=str(Path(__file__).resolve().parent.parent / "data" / "articles"))
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="dedup-numba-")  # before numba is imported
    run = compile_times(args.path)
    seconds, done = run.seconds, run.compiles
    per_kernel: dict[str, list[Compile]] = collections.defaultdict(list)
    for c in done:
        per_kernel[c.kernel if c.kernel.startswith("dedup.") else "numba's own helpers"].append(c)
    own, helper = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(f"CPU seconds: this process {own.ru_utime + own.ru_stime:.1f}, "
          f"the helper process {helper.ru_utime + helper.ru_stime:.1f}")
    print(f"ingest {seconds:.1f} s; compiling {sum(c.seconds for c in done):.1f} s in {len(done)} compiles, "
          f"{sum(len(v) for k, v in per_kernel.items() if k.startswith('dedup.'))} of dedup's kernels")
    ranked = sorted(per_kernel.items(), key=lambda kv: -sum(c.seconds for c in kv[1]))
    for kernel, cs in ranked[:args.top]:
        print(f"{sum(c.seconds for c in cs):7.2f} s  x{len(cs):<3} {kernel}")
        if len(cs) > 1 and kernel.startswith("dedup."):
            for c in cs:
                print(f"{'':18}{c.args[:150]}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
