"""How long `dedup report` takes on a large index, and its peak memory.

The documents are synthetic_news.py's generated news (Markov text from ../shared/corpora with planted copies),
given titles and one of 60 sources each (a copy's source chosen apart from its original's), ingested as two
batches (all but the last tenth, then the last tenth, as a nightly batch would be), so that stories, events,
sources and pairs are all there. Deterministic; the corpus (in --cache) and the index (in --work) are reused when
present. The report is timed as users run it, `dedup report` in a fresh process (imports included); the load
average is printed beside it, since the figure means little on a busy machine without it.

    python scripts/benchmark_report.py --corpora ../shared/corpora --size 1000000 --work /tmp/dedup-report
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_news import Generator  # noqa: E402

SOURCES = 60


def with_sources(corpus: Path, n: int, work: Path) -> list[Path]:
    """The corpus with title and source columns, cut into two batches (written to `work`), a row group at a time
    (a whole 1M corpus would hold 7 GB while the ingests run)."""
    cut = n - n // 10
    paths = [work / f"batch{k}_{corpus.name}" for k in (0, 1)]
    writers: list[pq.ParquetWriter] = []
    at = 0
    for rows in pq.ParquetFile(corpus).iter_batches():
        t = pa.Table.from_batches([rows])
        titles = [" ".join(w[:8]) for w in pc.split_pattern(t["text"], " ", max_splits=8).to_pylist()]
        sources = [f"outlet-{(i * 7919) % SOURCES:02d}.example" for i in range(at, at + len(t))]
        t = t.append_column("title", pa.array(titles)).append_column("source", pa.array(sources))
        if not writers:
            writers = [pq.ParquetWriter(path, t.schema) for path in paths]
        writers[0].write_table(t.slice(0, max(0, cut - at)))
        writers[1].write_table(t.slice(max(0, cut - at)))
        at += len(t)
    for w in writers:
        w.close()
    return paths


# `dedup report` as the console command runs it, then its own peak RSS (VmHWM: the getrusage/wait4 figure of a
# child counts the memory of the process it was started from)
CHILD = r"""
import os, sys
from dedup.cli import main
try:
    main(prog_name="dedup")
    code = 0
except SystemExit as e:
    code = e.code
print(next(x for x in open("/proc/self/status") if x.startswith("VmHWM:")).split()[1], file=sys.stderr, flush=True)
os._exit(code if isinstance(code, int) else 1)
"""


def timed(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a dedup command in its own process."""
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", CHILD, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    seconds = time.perf_counter() - start
    if run.returncode:
        raise SystemExit(f"dedup {' '.join(args)} failed:\n{run.stderr}")
    return seconds, int(run.stderr.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, required=True)
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, required=True, help="where the index and the report go")
    ap.add_argument("--cache", type=Path, help="where generated corpora are kept and looked for (default: --work)")
    ap.add_argument("--repeats", type=int, default=1, help="report runs; the median is printed")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    idx = args.work / f"idx_report_{args.size}"
    if not (idx / "manifest.json").exists():
        corpus = Generator(args.corpora).corpus(args.size, 0.05, args.cache or args.work)
        for batch in with_sources(corpus, args.size, args.work):
            subprocess.run([sys.executable, "-m", "dedup.cli", "ingest", str(batch), "--index", str(idx)], check=True)
    out = args.work / "report.html"
    load = os.getloadavg()[0]
    runs = [timed(["report", "--index", str(idx), "--output", str(out)]) for _ in range(args.repeats)]
    seconds, peak = sorted(runs)[len(runs) // 2]
    print(json.dumps({"documents": args.size, "report_seconds": round(seconds, 1), "peak_rss_mib": round(peak),
                      "runs_seconds": [round(s, 1) for s, _ in runs], "bytes": out.stat().st_size,
                      "load_average": [round(load, 1), round(os.getloadavg()[0], 1)], "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
