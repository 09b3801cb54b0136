"""Check dedup against a real S3 API: inputs on S3 read by the Spark engine, and the index itself on S3 built and
extended by either engine, each the same as the local engine's directory index of the same files.

The test suite runs the Spark engine on `file://` inputs and the index on S3 with the local engine (moto's server);
Spark's S3A connector needs jars that are not in the suite. This script runs everything against moto's S3 server on
loopback (PyPI `moto[server]`), S3A configured the way a cluster configures it (a `spark-defaults.conf` in
SPARK_CONF_DIR, nothing passed to dedup, no AWS variable in the Spark engine's environment: its driver and
executors reach the index with S3A's settings), the local engine through the usual AWS variables, and compares the
exit codes, summaries and tables of two nights (bad rows, replaced documents) with the local engine's:

    inputs on S3, index in a directory      spark, spark
    index on S3 (s3a://)                    spark, then local
    index on S3 (s3://)                     local, then spark

S3A needs two jars that pyspark does not ship: `hadoop-aws` and the AWS SDK it was built against. A cluster has
them; here pass a folder holding them (`--jars`). On a machine without Maven Central, PyPI's `sagemaker_pyspark`
1.4.5 source archive carries hadoop-aws 3.3.1 and aws-java-sdk-bundle 1.11.901:

    pip download --no-deps --no-binary :all: sagemaker_pyspark==1.4.5 -d /tmp/s3a
    tar xzf /tmp/s3a/sagemaker_pyspark-1.4.5.tar.gz -C /tmp/s3a --strip-components 3 \\
        sagemaker_pyspark-1.4.5/deps/jars/hadoop-aws-3.3.1.jar \\
        sagemaker_pyspark-1.4.5/deps/jars/aws-java-sdk-bundle-1.11.901.jar
    pip install 'moto[server]'
    python scripts/check_s3.py --jars /tmp/s3a

hadoop-aws 3.3 predates the Hadoop 3.5 client pyspark 4 ships: the durations and the credentials provider are set
in the numbers and class names it reads (DEFAULTS), harmless for a matching hadoop-aws. Exit 0 when everything is
the local engine's, 1 naming the first difference.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = ROOT / "data" / "articles"
BUCKET = "news"
TABLES = {"documents": ["doc_id"], "pairs": ["doc_a", "doc_b"], "clusters": ["doc_id"], "rejected": ["file", "line"]}
# rows a reader must reject, each for its own reason (a line that is not JSON, no text, no id, a text without words)
BAD_ROWS = ['{"id": "bad-1", "text": ', '{"id": "bad-2"}', '{"text": "no id here, but words enough"}',
            '{"id": "bad-4", "text": "!!! ??? ..."}']
DEFAULTS = {
    "spark.hadoop.fs.s3a.path.style.access": "true",
    "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
    "spark.hadoop.fs.s3a.access.key": "testing",
    "spark.hadoop.fs.s3a.secret.key": "testing",
    "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    "spark.hadoop.fs.s3a.threads.keepalivetime": "60",
    "spark.hadoop.fs.s3a.multipart.purge.age": "86400",
    "spark.hadoop.fs.s3a.connection.timeout": "200000",
    "spark.hadoop.fs.s3a.connection.establish.timeout": "5000",
    "spark.hadoop.fs.s3a.connection.ttl": "300000",
    "spark.hadoop.fs.s3a.connection.idle.time": "60000",
    "spark.hadoop.fs.s3a.connection.acquisition.timeout": "60000",
    "spark.ui.showConsoleProgress": "false",
}


def inputs(work: Path) -> Path:
    """The sample's files and one file of bad rows, in one local folder (the local engine's input)."""
    folder = work / "input"
    folder.mkdir()
    for f in sorted(ARTICLES.glob("*.jsonl")):
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "zz_bad.jsonl").write_text("\n".join(BAD_ROWS) + "\n", "utf-8")
    return folder


def ingest(source: str, index: Path | str, env: dict[str, str], *extra: str) -> tuple[int, dict]:
    """`dedup ingest --json` as a scheduler runs it: its exit code and summary."""
    run = subprocess.run([sys.executable, "-m", "dedup.cli", "-q", "ingest", source, "--index", str(index), "--json",
                          *extra], env=env, capture_output=True, text=True, cwd=ROOT)
    if run.returncode not in (0, 3):
        sys.exit(f"dedup ingest {source} failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
    return run.returncode, json.loads(run.stdout)


def tables(index: Path | str, prefixes: tuple[str, ...]) -> dict[str, list[dict]]:
    """The batch's tables in a fixed order, files named relative to their folder (`prefixes` removed)."""
    import dedup
    ix = dedup.Index(index)
    out = {}
    for name, keys in TABLES.items():
        t: pa.Table = ix.table(name)
        t = t.drop([c for c in ("at",) if c in t.column_names])  # when each row was written
        rows = t.to_pylist()
        for r in rows:
            for k in ("file", "detail"):
                for prefix in prefixes:
                    if isinstance(r.get(k), str):
                        r[k] = r[k].replace(prefix, "")
        out[name] = sorted(rows, key=lambda r: tuple(str(r[k]) for k in keys))
    return out


def night2(work: Path) -> Path:
    """A second night: three documents of the first in new versions (one now another's text), one unchanged."""
    rows = [json.loads(line) for line in (ARTICLES / "news_sample.jsonl").read_text("utf-8").splitlines()]
    folder = work / "night2"
    folder.mkdir()
    batch = [dict(rows[0], text=rows[0]["text"] + " The figures were revised on Monday."),
             dict(rows[3], text=rows[7]["text"]), rows[10],
             dict(rows[20], text=rows[20]["text"] + " A correction was appended to this story later.")]
    (folder / "night2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in batch), "utf-8")
    return folder


def compare(what: str, ref: tuple[list, Path, tuple], got: tuple[list, str, tuple]) -> list[str]:
    """Differences between the reference runs (exit codes and summaries, index, input prefixes) and others."""
    drop = ("seconds", "timings", "stale_lock")
    clean = lambda runs: [(code, {k: v for k, v in s.items() if k not in drop}) for code, s in runs]  # noqa: E731
    problems = []
    if clean(ref[0]) != clean(got[0]):
        problems.append(f"{what}: exit codes or summaries differ: {clean(ref[0])} / {clean(got[0])}")
    a, b = tables(ref[1], ref[2]), tables(got[1], got[2])  # type: ignore[arg-type]
    problems += [f"{what}: table {n} differs" for n in TABLES if a[n] != b[n]]
    print(f"{what}: exit codes {[c for c, _ in got[0]]}, " + ", ".join(f"{n} {len(b[n])} rows" for n in TABLES)
          + ("" if problems else " (the same as the local engine's directory index)"))
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jars", type=Path, required=True, help="folder with hadoop-aws-*.jar and the AWS SDK jar")
    parser.add_argument("--port", type=int, default=0, help="moto's port (default: a free one)")
    args = parser.parse_args()
    jars = sorted(args.jars.glob("hadoop-aws-*.jar")) + sorted(args.jars.glob("aws-java-sdk-bundle-*.jar"))
    if len(jars) != 2:
        sys.exit(f"{args.jars}: needs hadoop-aws-*.jar and aws-java-sdk-bundle-*.jar (see this script's help)")
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._server.server_port}"
        aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": endpoint}  # the local engine's S3 clients (the index), as any AWS tool reads them
        os.environ.update(aws)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            folder, second = inputs(work), night2(work)
            s3 = boto3.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            for f in sorted(folder.iterdir()):
                s3.upload_file(str(f), BUCKET, f"night/{f.name}")
            s3.upload_file(str(second / "night2.jsonl"), BUCKET, "night2/night2.jsonl")
            conf = work / "conf"
            conf.mkdir()
            settings = {**DEFAULTS, "spark.jars": ",".join(map(str, jars)), "spark.hadoop.fs.s3a.endpoint": endpoint}
            (conf / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in settings.items()), "utf-8")
            env = {**os.environ, "PYTHONPATH": str(ROOT), "SPARK_CONF_DIR": str(conf)}
            # the Spark engine's runs know S3 only from spark-defaults.conf, as on a cluster configured for S3A:
            # its driver and executors reach the index with S3A's settings
            cluster = {k: v for k, v in env.items() if k not in aws}
            spark = ("--engine", "spark", "--spark-master", "local[2]")
            local_dir = work / "local"
            ref = [ingest(str(folder), local_dir, env), ingest(str(second), local_dir, env)]
            print(f"local engine, {folder} into {local_dir}: "
                  + "; ".join(f"exit {c}, {json.dumps(s)}" for c, s in ref))
            if not ref[0][1]["rejected"]:
                sys.exit("no row was rejected: the bad rows were not read")
            problems = []
            mine = (f"{folder}/", f"{second}/")
            theirs = (*mine, f"s3a://{BUCKET}/night/", f"s3a://{BUCKET}/night2/")
            # inputs on S3, read by the Spark engine's executors through S3A; the index in a directory
            runs = [ingest(f"s3a://{BUCKET}/night/", work / "s3in", cluster, *spark),
                    ingest(f"s3a://{BUCKET}/night2/", work / "s3in", cluster, *spark)]
            problems += compare("spark engine, inputs on S3", (ref, local_dir, mine),
                                (runs, str(work / "s3in"), theirs))
            # the index on S3 too: the Spark engine builds it (its executors write the bucket files, Spark reads
            # the index through S3A), then the local engine extends it
            index = f"s3a://{BUCKET}/index-spark"
            runs = [ingest(f"s3a://{BUCKET}/night/", index, cluster, *spark), ingest(str(second), index, env)]
            problems += compare(f"index {index}, spark engine then local", (ref, local_dir, mine),
                                (runs, index, theirs))
            # the local engine on an index on S3, then the Spark engine extends it
            index = f"s3://{BUCKET}/index-local"
            runs = [ingest(str(folder), index, env), ingest(f"s3a://{BUCKET}/night2/", index.replace("s3:", "s3a:"),
                                                           cluster, *spark)]
            problems += compare(f"index {index}, local engine then spark", (ref, local_dir, mine),
                                (runs, index, theirs))
    finally:
        server.stop()
    if problems:
        sys.exit("DIFFERENT: " + "; ".join(problems))
    print("the same index, summaries, rejections and exit codes from S3 as from local files, on either engine")


if __name__ == "__main__":
    main()
