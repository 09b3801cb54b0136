"""Check that `dedup ingest s3a://... --engine spark` reads inputs on S3 as the local engine reads the same files.

The Spark engine lists URIs with Spark's Hadoop filesystems and reads them on the executors; the test suite runs that
path with `file://` URIs only. This script runs it against a real S3 API: moto's S3 server on loopback (PyPI
`moto[server]`), the S3A connector configured the way a cluster configures it (a `spark-defaults.conf` in
SPARK_CONF_DIR, nothing passed to dedup), and compares the index, the summary and the exit code with the local
engine's ingest of the same files, bad rows included.

S3A needs two jars that pyspark does not ship: `hadoop-aws` and the AWS SDK it was built against. A cluster has
them; here pass a folder holding them (`--jars`). On a machine without Maven Central, PyPI's `sagemaker_pyspark`
1.4.5 source archive carries hadoop-aws 3.3.1 and aws-java-sdk-bundle 1.11.901:

    pip download --no-deps --no-binary :all: sagemaker_pyspark==1.4.5 -d /tmp/s3a
    tar xzf /tmp/s3a/sagemaker_pyspark-1.4.5.tar.gz -C /tmp/s3a --strip-components 3 \\
        sagemaker_pyspark-1.4.5/deps/jars/hadoop-aws-3.3.1.jar \\
        sagemaker_pyspark-1.4.5/deps/jars/aws-java-sdk-bundle-1.11.901.jar
    pip install 'moto[server]'
    python scripts/check_s3_inputs.py --jars /tmp/s3a

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


def ingest(source: str, index: Path, env: dict[str, str], *extra: str) -> tuple[int, dict]:
    """`dedup ingest --json` as a scheduler runs it: its exit code and summary."""
    run = subprocess.run([sys.executable, "-m", "dedup.cli", "-q", "ingest", source, "--index", str(index), "--json",
                          *extra], env=env, capture_output=True, text=True, cwd=ROOT)
    if run.returncode not in (0, 3):
        sys.exit(f"dedup ingest {source} failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
    return run.returncode, json.loads(run.stdout)


def tables(index: Path, prefix: str) -> dict[str, list[dict]]:
    """The batch's tables in a fixed order, files named relative to their folder (`prefix` removed)."""
    import dedup
    ix = dedup.Index(index)
    out = {}
    for name, keys in TABLES.items():
        t: pa.Table = ix.table(name)
        t = t.drop([c for c in ("at",) if c in t.column_names])  # when each row was written
        rows = t.to_pylist()
        for r in rows:
            for k in ("file", "detail"):
                if isinstance(r.get(k), str):
                    r[k] = r[k].replace(prefix, "")
        out[name] = sorted(rows, key=lambda r: tuple(str(r[k]) for k in keys))
    return out


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
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            folder = inputs(work)
            s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
            s3.create_bucket(Bucket=BUCKET)
            for f in sorted(folder.iterdir()):
                s3.upload_file(str(f), BUCKET, f"night/{f.name}")
            conf = work / "conf"
            conf.mkdir()
            settings = {**DEFAULTS, "spark.jars": ",".join(map(str, jars)), "spark.hadoop.fs.s3a.endpoint": endpoint}
            (conf / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in settings.items()), "utf-8")
            env = {**os.environ, "PYTHONPATH": str(ROOT), "SPARK_CONF_DIR": str(conf)}
            local = ingest(str(folder), work / "local", env)
            remote = ingest(f"s3a://{BUCKET}/night/", work / "s3", env, "--engine", "spark", "--spark-master",
                            "local[2]")
            drop = ("seconds", "timings", "stale_lock")
            summaries = [{k: v for k, v in s.items() if k not in drop} for _, s in (local, remote)]
            print(f"local engine, {folder}: exit {local[0]}, {json.dumps(summaries[0])}")
            print(f"spark engine, s3a://{BUCKET}/night/ (moto at {endpoint}): exit {remote[0]}, "
                  f"{json.dumps(summaries[1])}")
            problems = []
            if local[0] != remote[0] or summaries[0] != summaries[1]:
                problems.append("exit codes or summaries differ")
            a, b = tables(work / "local", f"{folder}/"), tables(work / "s3", f"s3a://{BUCKET}/night/")
            problems += [f"table {n} differs" for n in TABLES if a[n] != b[n]]
            for n in TABLES:
                print(f"  {n}: {len(a[n])} rows locally, {len(b[n])} from S3")
            if not summaries[0]["rejected"]:
                problems.append("no row was rejected: the bad rows were not read")
    finally:
        server.stop()
    if problems:
        sys.exit("DIFFERENT: " + "; ".join(problems))
    print("same index, summary, rejections and exit code from S3 as from local files")


if __name__ == "__main__":
    main()
