"""How long `dedup report` takes on a large index.

The documents are benchmark_speed.py's synthetic news (Markov text from ../shared/corpora with planted copies),
given titles and one of 60 sources each (a copy's source chosen apart from its original's), ingested as two
batches (all but the last tenth, then the last tenth, as a nightly batch would be), so that stories, events,
sources and pairs are all there. Deterministic; the corpus and index in --work are reused when present.

    python scripts/benchmark_report.py --corpora ../shared/corpora --size 1000000 --work /tmp/dedup-report
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from benchmark_speed import Markov, build_corpus, load_sentences  # noqa: E402

SOURCES = 60


def with_sources(corpus: Path, n: int) -> list[Path]:
    """The corpus with title and source columns, cut into two batches."""
    t = pq.read_table(corpus)
    titles = pa.array([" ".join(w[:8]) for w in pc.split_pattern(t["text"], " ", max_splits=8).to_pylist()])
    sources = pa.array([f"outlet-{(i * 7919) % SOURCES:02d}.example" for i in range(len(t))])
    t = t.append_column("title", titles).append_column("source", sources)
    cut = n - n // 10
    out = []
    for k, part in enumerate((t.slice(0, cut), t.slice(cut))):
        path = corpus.with_name(f"{corpus.stem}_batch{k}.parquet")
        pq.write_table(part, path)
        out.append(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, required=True)
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, required=True)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    idx = args.work / f"idx_report_{args.size}"
    if not (idx / "manifest.json").exists():
        corpus = build_corpus(Markov(load_sentences(args.corpora)), args.size, 0.05, args.work)
        for batch in with_sources(corpus, args.size):
            subprocess.run([sys.executable, "-m", "dedup.cli", "ingest", str(batch), "--index", str(idx)], check=True)
    out = subprocess.run([sys.executable, "-c", CHILD, str(idx), str(args.work / "report.html")], check=True,
                         capture_output=True, text=True).stdout
    print(json.dumps({"documents": args.size, **json.loads(out)}))


CHILD = r"""
import json, resource, sys, time
from dedup.report import write_report
t = time.perf_counter()
r = write_report(sys.argv[1], sys.argv[2])
print(json.dumps({"report_seconds": round(time.perf_counter() - t, 1), "bytes": r.bytes,
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


if __name__ == "__main__":
    main()
