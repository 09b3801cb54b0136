"""The index on S3 beside the same index in a directory: a load, a night into it, a query and `dedup check`, on
the same generated news in the same run (each command a fresh `dedup` process, as a scheduler runs it).

S3 is moto's server on loopback (PyPI `moto[server]`, in this process, in memory): the figures say what dedup's S3
path costs in work (pyarrow's and boto3's clients, DuckDB reading through fsspec, listings instead of stats), not
what a real bucket's latency and throughput add; moto's own CPU is on the same two cores.

    python scripts/benchmark_s3.py --corpora ../shared/corpora --size 100000 --night 2000 --cache DIR
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_news import Generator  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("load", "night", "sql", "check")


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of `dedup ARGS` in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "dedup.cli", "-q", *args], env=env, capture_output=True, text=True,
                         cwd=ROOT)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"dedup {' '.join(args)} failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, required=True)
    ap.add_argument("--size", type=int, default=100_000, help="documents of the load")
    ap.add_argument("--night", type=int, default=2_000, help="documents of the night after it")
    ap.add_argument("--cache", type=Path, help="where generated corpora are kept (default: a temp dir)")
    args = ap.parse_args()
    import boto3
    from moto.server import ThreadedMotoServer

    work = Path(tempfile.mkdtemp(prefix="dedup-s3-"))
    cache = args.cache or work
    gen = Generator(args.corpora)
    load, night = gen.corpus(args.size, 0.05, cache), gen.corpus(args.night, 0.05, cache, prefix="n")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="bench")
        timed(["ingest", str(gen.corpus(1000, 0.05, cache, prefix="w")), "--index", str(work / "warm")], env)
        results = {}
        for where, index in (("directory", str(work / "idx")), ("S3 (moto)", "s3://bench/idx")):
            results[where] = [timed(["ingest", str(load), "--index", index], env),
                              timed(["ingest", str(night), "--index", index], env),
                              timed(["sql", "--index", index, "SELECT count(*) FROM cluster_summary"], env),
                              timed(["check", "--index", index], env)]
    finally:
        server.stop()
    print(f"# dedup index on S3 beside a directory\n\n{args.size:,} generated documents, then a night of "
          f"{args.night:,}; {os.cpu_count()} cores; each a fresh process; wall / CPU seconds\n")
    print("| step | " + " | ".join(results) + " | S3 / directory (wall) |")
    print("|---|" + "---|" * (len(results) + 1))
    steps = {"load": f"ingest {args.size:,} into an empty index", "night": f"ingest {args.night:,} into it",
             "sql": "dedup sql: clusters of 2+", "check": "dedup check (hashes every file)"}
    for k, step in enumerate(STEPS):
        cells = [f"{w:.1f} / {c:.1f}" for w, c in (r[k] for r in results.values())]
        ratio = results["S3 (moto)"][k][0] / results["directory"][k][0]
        print(f"| {steps[step]} | " + " | ".join(cells) + f" | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
