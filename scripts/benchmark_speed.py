"""Speed and scale benchmark: end-to-end ingest throughput, memory, index size, query latency — and, on the same
documents in the same run, MinHash signature throughput of datasketch (`update()` with sha1, `bulk` with xxh32)
and rensa, with the ratios.

Corpora are synthetic news written from the real text of ../shared/corpora (synthetic_news.py: an order-2 Markov
chain over its words, ≈ 2,900 characters a document, a known share of planted copies). Deterministic; a corpus is
cached in --cache (default: --work) and reused by any later run with the same parameters.

    python scripts/benchmark_speed.py --corpora ../shared/corpora --sizes 100000,300000,1000000 --cache ~/.cache/dedup

Each ingest runs in a fresh subprocess and reports its own peak RSS (VmHWM of /proc/self/status: `ru_maxrss`
carries the benchmark's own peak into a child across fork+exec), the peak and the CPU seconds of each stage (VmHWM at the stage's end,
reset after it through /proc/self/clear_refs; link and verify end together: their CPU is counted under link)
and CPU seconds; the smallest size runs REPEATS
times on two cores and on one core, and the median of each is reported. Prints a markdown report.

`--windows` runs the time-window benchmarks instead (issue 22): an archive loaded in batches in date order with a
30-day window (time per document at each size), a night into it and into an empty index, and the same night into an
index without a window:

    python scripts/benchmark_speed.py --corpora ../shared/corpora --cache DIR --windows --archive-size 2000000

With `--archive KEPT` the loaded archive is kept in KEPT (~1,000 CPU s to build at 2M); a later run with the same
arguments copies it (hard links, seconds) and measures only the nights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_news import CORPORA, Generator  # noqa: E402

REPEATS = 5  # runs of the smallest size, on two cores and on one, in turn: a run can be a third slower than the next
NIGHTS = ("n", "m")  # id prefixes of the nightly batches (each a corpus of its own)
ARCHIVE_NOTE = "benchmark_archive.json"  # in an --archive DIR: the arguments it was built with
SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("published_at", pa.string())])

CHILD = r"""
import json, resource, sys, time
import dedup
from dedup.params import Params
def hwm_mib():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024
def cpu():
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime
stages, stage_cpu, last = {}, {}, [0.0]
def progress(event, n, total):  # each stage's own peak (VmHWM at its end, then reset) and CPU seconds
    if event.endswith(" done"):
        stages[event[:-5]] = round(hwm_mib())
        open("/proc/self/clear_refs", "w").write("5")
        stage_cpu[event[:-5]], last[0] = round(cpu() - last[0], 1), cpu()
last[0] = cpu()
t = time.time()
window = int(sys.argv[4])
s = dedup.ingest([sys.argv[1]], sys.argv[2], Params(window_days=window) if window else None,
                 store_text=sys.argv[3] == "1", progress=progress)
wall = time.time() - t
print(json.dumps({"summary": s.to_json(), "wall": wall, "cpu": cpu(), "maxrss_mib": max([hwm_mib(), *stages.values()]),
                  "stage_peaks_mib": stages, "stage_cpu_s": stage_cpu}))
"""


KERNEL_CHILD = r"""
import sys, time, numba, pyarrow.parquet as pq
from dedup.params import Params
from dedup.sketch import sketch_batch
numba.set_num_threads(1)
p = Params()
texts = pq.read_table(sys.argv[1], columns=["text"])["text"].slice(0, 4000).combine_chunks()
sketch_batch(texts.slice(0, 10), p.shingle, p.shingle_size, p.num_perm, p.seed, p.lead_words)
t = time.perf_counter()
for _ in range(3):
    sketch_batch(texts, p.shingle, p.shingle_size, p.num_perm, p.seed, p.lead_words)
print(time.perf_counter() - t)
"""


def two_core_ceiling(corpus: Path, repeats: int = 3) -> tuple[float, list[float]]:
    """How much faster two cores are than one on this machine for work that shares nothing: the kernel on one
    thread in one process, then in two processes at once (one core each); the median of `repeats` ratios of
    throughput. Virtual cores of a shared host do not give 2×, and an ingest cannot beat this figure."""
    def kernel(cores: list[int]) -> list[float]:
        procs = [subprocess.Popen(["taskset", "-c", str(c), sys.executable, "-c", KERNEL_CHILD, str(corpus)],
                                  stdout=subprocess.PIPE, text=True, env={**os.environ, "NUMBA_NUM_THREADS": "1"})
                 for c in cores]
        return [float(pr.communicate()[0].strip().splitlines()[-1]) for pr in procs]

    ratios = []
    for _ in range(repeats):
        alone = kernel([0])[0]
        together = max(kernel([0, 1]))
        ratios.append(2 * alone / together)
    return sorted(ratios)[len(ratios) // 2], [round(r, 2) for r in ratios]


def run_ingest(corpus: Path, index: Path, store_text: bool = True, threads: int | None = None, window: int = 0
               ) -> dict:
    env = dict(os.environ)
    cmd = [sys.executable, "-c", CHILD, str(corpus), str(index), "1" if store_text else "0", str(window)]
    if threads:  # pin the whole process (numba and DuckDB threads alike) to that many cores
        env["NUMBA_NUM_THREADS"] = str(threads)
        cmd = ["taskset", "-c", ",".join(map(str, range(threads)))] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh(index: Path) -> Path:
    """An index path with nothing at it (a rerun with the same --work starts from empty indexes)."""
    shutil.rmtree(index, ignore_errors=True)
    return index


def copy_index(src: Path, dst: Path) -> Path:
    """A copy of the index `src` at `dst` to write into, made in seconds: its Parquet files hard-linked (a writer
    never changes a committed file, it writes new ones and replaces the manifest), the rest copied."""
    def link_or_copy(a: str, b: str) -> None:
        if a.endswith(".parquet"):
            os.link(a, b)
        else:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link_or_copy, ignore=shutil.ignore_patterns(ARCHIVE_NOTE))
    return dst


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*.parquet"))


def similar_latency(index: Path, ids: list[str]) -> tuple[float, float]:
    """Median and p95 in-process latency (ms) of `similar(doc_id=...)` after one warm-up call."""
    import dedup

    ix = dedup.Index(index)
    ix.similar(doc_id=ids[0])
    times = []
    for d in ids:
        t = time.perf_counter()
        ix.similar(doc_id=d)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.95) - 1]


def signature_rates(texts: list[str]) -> dict[str, float]:
    """Signatures per second (one core) of dedup's kernel and of the datasketch/rensa paths, same texts."""
    import numba
    import xxhash
    from datasketch import MinHash

    from dedup.params import Params
    from dedup.shingle import shingles
    from dedup.sketch import sketch_batch

    p = Params()
    rates: dict[str, float] = {}
    numba.set_num_threads(1)
    sketch_batch(texts[:10], p.shingle, p.shingle_size, p.num_perm, p.seed, p.lead_words)
    t = time.perf_counter()
    sketch_batch(texts, p.shingle, p.shingle_size, p.num_perm, p.seed, p.lead_words)
    rates["dedup kernel (default pair shingles + lead, 1 thread)"] = len(texts) / (time.perf_counter() - t)
    for kind, size in (("char", 5), ("word", 5)):
        t = time.perf_counter()
        sketch_batch(texts, kind, size, p.num_perm, p.seed)
        rates[f"dedup kernel ({kind} {size}-grams, 1 thread)"] = len(texts) / (time.perf_counter() - t)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    # The Python paths are timed as users run them: shingling (our reference shingler) + hashing + MinHash.
    for kind, size in (("char", 5), ("word", 5)):
        few = texts[:200]
        t = time.perf_counter()
        for x in few:
            m = MinHash(num_perm=p.num_perm, seed=p.seed)
            for sh in shingles(x, kind, size):
                m.update(sh)
        rates[f"datasketch update() sha1 ({kind} {size}-grams)"] = len(few) / (time.perf_counter() - t)
        many = texts[:2000]
        t = time.perf_counter()
        MinHash.bulk([shingles(x, kind, size) for x in many], num_perm=p.num_perm, seed=p.seed,
                     hashfunc=xxhash.xxh32_intdigest)
        rates[f"datasketch bulk xxh32 ({kind} {size}-grams)"] = len(many) / (time.perf_counter() - t)
        try:
            from rensa import RMinHash
        except ImportError:
            continue
        t = time.perf_counter()
        for x in many:
            r = RMinHash(num_perm=p.num_perm, seed=p.seed)
            r.update([b.decode() for b in shingles(x, kind, size)])
            r.digest()
        rates[f"rensa RMinHash ({kind} {size}-grams)"] = len(many) / (time.perf_counter() - t)
    return rates


def dated(corpora: list[Path], batch: int, start: datetime, days: float, out: Path) -> list[Path]:
    """The documents of `corpora` in order, in files of `batch` documents, with `published_at` spread evenly over
    `days` from `start` (the k-th of n documents at start + k/n days): a load in date order. Cached in `out`."""
    n = sum(pq.ParquetFile(c).metadata.num_rows for c in corpora)
    name = hashlib.sha256(repr(([c.name for c in corpora], batch, start, days)).encode()).hexdigest()[:12]
    files = [out / f"dated_{n}_{name}_{k}.parquet" for k in range(-(-n // batch))]
    if all(f.exists() for f in files):
        return files
    k, writer, done = 0, None, 0
    for c in corpora:
        for rg in range(pq.ParquetFile(c).num_row_groups):
            t = pq.ParquetFile(c).read_row_group(rg, columns=["id", "text"])
            while t.num_rows:
                if writer is None:
                    writer = pq.ParquetWriter(files[k].with_suffix(".tmp"), SCHEMA, compression="zstd")
                take = min(t.num_rows, (k + 1) * batch - done)
                at = [start + timedelta(days=days * (done + i) / n) for i in range(take)]
                writer.write_table(pa.table({"id": t["id"].slice(0, take), "text": t["text"].slice(0, take),
                                             "published_at": [a.isoformat(timespec="seconds") for a in at]},
                                            schema=SCHEMA))
                t, done = t.slice(take), done + take
                if done == (k + 1) * batch or done == n:
                    writer.close()
                    files[k].with_suffix(".tmp").replace(files[k])
                    writer, k = None, k + 1
    return files


def windows_benchmark(args: argparse.Namespace, gen: Generator, cache: Path, work: Path) -> None:
    """Issue 22's figures (see the module docstring); each line printed as it is measured."""
    def show(what: str, r: dict, docs: int) -> dict:
        row = {"what": what, "docs": docs, "wall_s": round(r["wall"], 1), "cpu_s": round(r["cpu"], 1),
               "cpu_ms_per_doc": round(1000 * r["cpu"] / docs, 3), "peak_rss_mib": round(r["maxrss_mib"]),
               "index_docs": r["summary"]["documents"], "link_files": r["summary"]["link_files"],
               "candidates": r["summary"]["candidates"], "pairs": r["summary"]["pairs"],
               "timings": r["summary"]["timings"], "stage_peaks_mib": r["stage_peaks_mib"],
               "stage_cpu_s": r["stage_cpu_s"]}
        print(json.dumps(row), flush=True)
        return row

    parts = [gen.corpus(min(1_000_000, args.archive_size - k), args.copy_share, cache, prefix=chr(ord("d") + i))
             for i, k in enumerate(range(0, args.archive_size, 1_000_000))]
    start = datetime(2024, 1, 1)
    night = dated([gen.corpus(args.night, args.copy_share, cache, prefix="n")], args.night,
                  start + timedelta(days=args.archive_days), 1, cache)[0]
    run_ingest(gen.corpus(1000, args.copy_share, cache, prefix="w"), fresh(work / "idx_warm_up"), window=args.window)
    print(f"# time windows: archive of {args.archive_size:,} over {args.archive_days} days, window "
          f"{args.window} days, night of {args.night:,}\n", flush=True)
    empty_index = fresh(work / "w_empty")
    empty = show("night into an empty windowed index", run_ingest(night, empty_index, window=args.window), args.night)
    built = {"archive_size": args.archive_size, "archive_days": args.archive_days, "load_batch": args.load_batch,
             "window": args.window, "copy_share": args.copy_share}
    kept = args.archive / ARCHIVE_NOTE if args.archive else None
    if kept and not kept.exists() and args.archive.exists() and any(args.archive.iterdir()):
        sys.exit(f"--archive {args.archive}: not an archive this benchmark kept (no {ARCHIVE_NOTE}, perhaps a build "
                 "that was stopped): give a new or empty directory, or remove it")
    loads = []
    if kept and kept.exists():  # a built archive: the night goes into a copy of it, the archive is not loaded again
        if json.loads(kept.read_text()) != built:
            sys.exit(f"{args.archive}: built as {kept.read_text().strip()}, not {json.dumps(built)}: give another "
                     "--archive")
        # the archive keeps the parameters it was made with (a verifier, trees): a night into it compares with the
        # empty index's only if this dedup makes new indexes the same way
        made, now = (json.loads((d / "manifest.json").read_text())["params"] for d in (args.archive, empty_index))
        if made != now:
            diff = "; ".join(f"{k}: {made.get(k)!r} there, {now.get(k)!r} now" for k in sorted(set(made) | set(now))
                             if made.get(k) != now.get(k))
            sys.exit(f"{args.archive}: made with other parameters than a new index of this dedup ({diff}): its night "
                     "would not compare with the empty index's; give another --archive")
        archive = copy_index(args.archive, fresh(work / "w_archive"))
        print(f"archive: a copy of {args.archive}, not loaded again", flush=True)
    else:
        archive = fresh(args.archive or work / "w_archive")
        loads = [show(f"archive batch {k + 1}", run_ingest(f, archive, window=args.window), args.load_batch)
                 for k, f in enumerate(dated(parts, args.load_batch, start, args.archive_days, cache))]
        if kept:
            kept.write_text(json.dumps(built) + "\n")
            archive = copy_index(args.archive, fresh(work / "w_archive"))
    full = show("night into the archive", run_ingest(night, archive, window=args.window), args.night)
    print(f"\nnight: {full['cpu_s']} CPU s / {full['wall_s']} s into {full['index_docs'] - args.night:,} documents vs "
          f"{empty['cpu_s']} / {empty['wall_s']} s into an empty index: CPU ratio {full['cpu_s'] / empty['cpu_s']:.2f}, "
          f"wall ratio {full['wall_s'] / empty['wall_s']:.2f}; peak RSS {full['peak_rss_mib']} MiB")
    if loads:
        print("load in date order, CPU ms per document by batch: " + ", ".join(
            f"{r['index_docs']:,}: {r['cpu_ms_per_doc']}" for r in loads))
    if args.plain_size:
        plain_parts = dated(parts[:1], args.plain_size, start, args.archive_days, cache)[:1]
        plain_empty = show("night into an empty index, no window", run_ingest(night, fresh(work / "p_empty")),
                           args.night)
        plain = fresh(work / "p_archive")
        show("archive, no window", run_ingest(plain_parts[0], plain), args.plain_size)
        plain_full = show("night into the archive, no window", run_ingest(night, plain), args.night)
        print(f"\nno window: night {plain_full['cpu_s']} CPU s / {plain_full['wall_s']} s into "
              f"{args.plain_size:,} vs {plain_empty['cpu_s']} / {plain_empty['wall_s']} s: CPU ratio "
              f"{plain_full['cpu_s'] / plain_empty['cpu_s']:.2f}, wall ratio "
              f"{plain_full['wall_s'] / plain_empty['wall_s']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, required=True)
    ap.add_argument("--sizes", default="100000,300000,1000000")
    ap.add_argument("--copy-share", type=float, default=0.05)
    ap.add_argument("--work", type=Path, help="where indexes go (default: a temp dir)")
    ap.add_argument("--cache", type=Path, help="where generated corpora are kept and looked for (default: --work)")
    ap.add_argument("--windows", action="store_true", help="the time-window benchmarks (below) instead")
    ap.add_argument("--archive-size", type=int, default=2_000_000, help="--windows: documents of the archive")
    ap.add_argument("--archive-days", type=int, default=365, help="--windows: days the archive's dates span")
    ap.add_argument("--load-batch", type=int, default=250_000, help="--windows: documents a batch of the load")
    ap.add_argument("--night", type=int, default=100_000, help="--windows: documents of the night")
    ap.add_argument("--window", type=int, default=30, help="--windows: the window in days")
    ap.add_argument("--archive", type=Path,
                    help="--windows: keep the loaded archive here, and if one built with the same arguments is "
                         "here, put the night into a copy of it instead of loading it again")
    ap.add_argument("--plain-size", type=int, default=1_000_000,
                    help="--windows: the index without a window the night also goes into (0: none)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="dedup-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = args.cache or work
    gen = Generator(args.corpora)
    if args.windows:
        windows_benchmark(args, gen, cache, work)
        return
    sizes = [int(x) for x in args.sizes.split(",")]
    names = ", ".join(c.split(".")[0] for c in CORPORA)
    print(f"# dedup speed benchmark\n\nsynthetic news from {names}; {os.cpu_count()} cores\n")
    rows = []
    # numba compiles the kernels on first use after any change to dedup's sources (~45 s), and caches them: an
    # untimed ingest of a few documents first, so that no timed run pays for it
    run_ingest(gen.corpus(1000, args.copy_share, cache, prefix="w"), fresh(work / "idx_warm_up"))
    for n in sizes:
        corpus = gen.corpus(n, args.copy_share, cache)
        # the smallest size is run REPEATS times, two cores and one core in turn, and the median run of each is
        # kept: on a shared machine one run can be a third slower than the next
        one_core = []
        runs = []
        for _ in range(REPEATS if n == sizes[0] else 1):
            runs.append(run_ingest(corpus, fresh(work / f"idx_{n}")))
            if n == sizes[0]:
                one_core.append(run_ingest(corpus, fresh(work / f"idx_{n}_1core"), threads=1)["wall"])
        res = sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]
        s = res["summary"]
        row = {"docs": n, "wall_s": res["wall"], "docs_per_s": n / res["wall"],
               "docs_per_s_core": n / res["wall"] / (os.cpu_count() or 1), "peak_rss_mib": res["maxrss_mib"],
               "bytes_per_doc": dir_bytes(work / f"idx_{n}") / n, "clusters": s["clusters"],
               "timings": s.get("timings", {})}
        ids = [f"d{i:07d}" for i in random.Random(1).sample(range(n), 20)]
        row["similar_ms_median"], row["similar_ms_p95"] = similar_latency(work / f"idx_{n}", ids)
        if n == sizes[0]:
            nt = run_ingest(corpus, fresh(work / f"idx_{n}_notext"), store_text=False)
            row["bytes_per_doc_no_text"] = dir_bytes(work / f"idx_{n}_notext") / n
            row["one_core_docs_per_s"] = n / sorted(one_core)[len(one_core) // 2]
            row["walls_two_cores"], row["walls_one_core"] = [round(r["wall"], 1) for r in runs], one_core
            row["two_vs_one_core"] = row["docs_per_s"] / row["one_core_docs_per_s"]
            row["ceiling"], row["ceilings"] = two_core_ceiling(corpus)
            del nt
        rows.append(row)
        print(json.dumps(row), flush=True)
    # issue 4: nightly batches of the smallest size into the largest index (two nights in a row) vs. the same
    # batches into an empty index
    nights = []
    for prefix in NIGHTS:
        nightly = gen.corpus(sizes[0], args.copy_share, cache, prefix=prefix)
        into_empty = run_ingest(nightly, fresh(work / "idx_nightly_empty"))
        into_big = run_ingest(nightly, work / f"idx_{sizes[-1]}")
        nights.append((into_empty, into_big, into_big["summary"]["documents"] - sizes[0]))
    texts = pq.read_table(gen.corpus(sizes[0], args.copy_share, cache), columns=["text"])["text"].to_pylist()[:5000]
    rates = signature_rates(texts)
    print("\n## End to end (default settings)\n")
    print("| docs | wall s | docs/s | docs/s/core | peak RSS MiB | bytes/doc | similar --id ms (median/p95) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['docs']:,} | {r['wall_s']:.1f} | {r['docs_per_s']:,.0f} | {r['docs_per_s_core']:,.0f} | "
              f"{r['peak_rss_mib']:,.0f} | {r['bytes_per_doc']:,.0f} | {r['similar_ms_median']:.0f}/"
              f"{r['similar_ms_p95']:.0f} |")
    first = rows[0]
    print(f"\nwithout stored text: {first['bytes_per_doc_no_text']:,.0f} bytes/doc; one core "
          f"{first['one_core_docs_per_s']:,.0f} docs/s, two cores / one core = {first['two_vs_one_core']:.2f} "
          f"(medians of {REPEATS} runs each at {first['docs']:,}: two cores {first['walls_two_cores']} s, one core "
          f"{[round(w, 1) for w in first['walls_one_core']]} s); this machine's two-core ceiling — the kernel in two "
          f"processes at once against one, one core each — {first['ceiling']:.2f} (runs {first['ceilings']})")
    for r in rows:
        if r["timings"]:
            print(f"stage seconds at {r['docs']:,}: " + ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items()))
    for into_empty, into_big, before in nights:
        print(f"\nnightly batch of {sizes[0]:,} new documents: into an empty index {into_empty['wall']:.1f} s, into "
              f"the {before:,}-document index {into_big['wall']:.1f} s (ratio "
              f"{into_big['wall'] / into_empty['wall']:.2f}); peak RSS {into_big['maxrss_mib']:,.0f} MiB; stage "
              "seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in into_big["summary"].get("timings", {}).items()))
    print("\n## Signatures per second, one core, same documents\n")
    base = rates["dedup kernel (default pair shingles + lead, 1 thread)"]
    print("| method | docs/s | dedup kernel (default) ÷ method |\n|---|---|---|")
    for k, v in rates.items():
        print(f"| {k} | {v:,.0f} | {base / v:,.1f}× |")


if __name__ == "__main__":
    main()
