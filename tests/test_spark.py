"""`--engine spark` (pyspark in local[2], the machine's Java) builds exactly the local engine's index: documents,
bucket rows, pairs with their scores, clusters and events; one engine extends the other's index, batch after
batch, replacements included; bad input is reported and rejected as the local engine does.

One SparkSession serves the module (the engine uses the active one); each ingest is a few seconds of Spark jobs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

import dedup
import dedup.retire
from dedup.cli import main
from dedup.cluster import components
from dedup.engines.spark import spark_session, star_components

from conftest import ARTICLES, RESULT_KEYS, index_tables, load_articles

NASTY = Path(__file__).resolve().parent / "nasty"


@pytest.fixture(scope="module")
def spark():
    session, _ = spark_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "4")  # a few small tasks, not 200 empty ones
    yield session
    session.stop()


def assert_same_index(a: Path, b: Path) -> None:
    ta, tb = index_tables(a), index_tables(b)
    for name in RESULT_KEYS:
        assert ta[name].schema == tb[name].schema, name
        assert ta[name].to_pylist() == tb[name].to_pylist(), name


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_one_batch_is_the_local_index(spark, tmp_path: Path) -> None:
    local = dedup.ingest([ARTICLES], tmp_path / "local", store_signatures=True)
    on_spark = dedup.ingest([ARTICLES], tmp_path / "spark", store_signatures=True, engine="spark")
    assert local.pairs > 20 and local.clusters > 5 and local.new_clusters > 5  # the sample has copies to find
    for field in ("read", "indexed", "rejected", "candidates", "pairs", "linked", "documents", "clusters",
                  "new_clusters", "merges", "splits"):
        assert getattr(on_spark, field) == getattr(local, field), field
    assert_same_index(tmp_path / "local", tmp_path / "spark")


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The sample in three nightly batches: the copies arrive after their originals with a new version of a
    document of the first night; the third batch rewrites two documents (one of them a copy in a cluster) and
    repeats one unchanged."""
    d = tmp_path_factory.mktemp("batches")
    rows = load_articles()
    copies = [r for r in rows if "~" in r["id"]]  # news_copies.jsonl: "<original id>~<how it was copied>"
    originals = [r for r in rows if r not in copies]
    half = len(originals) // 2
    changed = [dict(copies[0], text=copies[0]["text"] + " A correction was appended to this story later."),
               dict(originals[3], text=originals[7]["text"]), originals[10]]
    return [write_jsonl(d / "night1.jsonl", originals[:half]),
            write_jsonl(d / "night2.jsonl", originals[half:] + copies
                        + [dict(originals[0], text=originals[0]["text"] + " The figures were revised on Monday.")]),
            write_jsonl(d / "night3.jsonl", changed)]


def test_engines_extend_each_others_index(spark, batches: list[Path], tmp_path: Path) -> None:
    """Local on a Spark-built index (night 2, replacing a document Spark indexed), Spark on a local commit
    (night 3, replacing documents either engine indexed)."""
    for night in batches:
        dedup.ingest(night, tmp_path / "local")
    summaries = [dedup.ingest(night, tmp_path / "mixed", engine=e)
                 for night, e in zip(batches, ("spark", "local", "spark"))]
    assert [s.unchanged for s in summaries] == [0, 0, 1] and [s.replaced for s in summaries] == [0, 1, 2]
    assert_same_index(tmp_path / "local", tmp_path / "mixed")


def test_bad_input_is_rejected_as_locally(spark, tmp_path: Path) -> None:
    """The committed corpus of broken files: the same exit code, stderr lines, summary and `rejected` rows."""
    expected = json.loads((NASTY / "EXPECTED.json").read_text("utf-8"))
    out = {}
    for engine in ("local", "spark"):
        res = CliRunner().invoke(main, ["ingest", str(NASTY / "files"), "--index", str(tmp_path / engine), "--json",
                                        "--max-chars", str(expected["max_chars"]), "--engine", engine])
        summary = json.loads(res.stdout)
        for k in ("seconds", "timings"):
            summary.pop(k)
        # dedup's own lines (pyspark may warn about its dependencies on stderr too)
        out[engine] = res.exit_code, [ln for ln in res.stderr.splitlines() if ln.startswith("dedup:")], summary
    assert out["local"][0] == 3
    assert out["spark"] == out["local"]
    assert_same_index(tmp_path / "local", tmp_path / "spark")


def without_uris(t: pa.Table) -> list[dict]:
    """The rows with files named as the local engine names local files: `file` and `detail` (a duplicate id
    names where it was first seen) without `file://`."""
    rows = t.to_pylist()
    for r in rows:
        for k in ("file", "detail"):
            if r.get(k):
                r[k] = r[k].replace("file://", "")
    return rows


def test_uris_are_read_on_the_executors(spark, sample_index: Path, tmp_path: Path) -> None:
    """A directory given as a URI is listed by Hadoop's FileSystem and read by the executors: the index is the
    local engine's, each document's file named by its URI."""
    on_spark = dedup.ingest([f"file://{ARTICLES}"], tmp_path / "idx", engine="spark")
    assert on_spark.indexed == 327 and on_spark.rejected == 0
    local, remote = index_tables(sample_index), index_tables(tmp_path / "idx")
    assert remote["documents"]["file"].to_pylist() == [f"file://{f}" for f in local["documents"]["file"].to_pylist()]
    for name in RESULT_KEYS:
        assert without_uris(remote[name]) == local[name].to_pylist(), name


def test_rejections_of_uris_are_the_local_ones(spark, tmp_path: Path) -> None:
    """The broken files read from a `file://` URI on the executors: the exit code, dedup's stderr lines, the
    summary and every table as the local engine gives them, the files named by their URIs."""
    expected = json.loads((NASTY / "EXPECTED.json").read_text("utf-8"))
    out, idx = {}, {}
    for engine, path in (("local", str(NASTY / "files")), ("spark", f"file://{NASTY / 'files'}")):
        idx[engine] = tmp_path / engine
        res = CliRunner().invoke(main, ["ingest", path, "--index", str(idx[engine]), "--json", "--max-chars",
                                        str(expected["max_chars"]), "--engine", engine])
        summary = json.loads(res.stdout)
        for k in ("seconds", "timings"):
            summary.pop(k)
        lines = [ln for ln in res.stderr.splitlines() if ln.startswith("dedup:")]
        out[engine] = res.exit_code, lines, summary
    assert out["local"][0] == 3 and len(out["local"][1]) > 20
    assert all("file://" in ln for ln in out["spark"][1] if ln.startswith("dedup: rejected:"))
    assert out["spark"][0] == out["local"][0] and out["spark"][2] == out["local"][2]
    assert [ln.replace("file://", "") for ln in out["spark"][1]] == out["local"][1]
    local, remote = index_tables(idx["local"]), index_tables(idx["spark"])
    for name in RESULT_KEYS:
        assert without_uris(remote[name]) == local[name].to_pylist(), name


def test_uri_inputs_and_their_errors(spark, tmp_path: Path) -> None:
    """--strict stops at a bad row of a URI (exit 6); a missing URI is a usage error that creates no index, as
    a missing path is; the local engine refuses URIs, either engine an index given as a URI; a file that
    vanishes between listing and reading is an unreadable_file rejection after the rows read before it."""
    from dedup.engines.spark import SparkEngine
    from dedup.progress import InputMeter
    from dedup.readers import FieldMap, Record

    text = "Officials said the harbour bridge would reopen on Monday after repairs to its cables. " * 3
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": "x1", "text": text}])
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "x1", "text": text}, {"id": "x2"}])
    runner = CliRunner()
    res = runner.invoke(main, ["ingest", f"file://{bad}", "--index", str(tmp_path / "a"), "--strict",
                               "--engine", "spark"])
    assert res.exit_code == 6 and f"file://{bad}:2" in res.stderr
    res = runner.invoke(main, ["ingest", f"file://{tmp_path}/missing.jsonl", "--index", str(tmp_path / "b"),
                               "--engine", "spark"])
    assert res.exit_code == 2 and "missing.jsonl: no such file or directory" in res.stderr
    assert not (tmp_path / "b").exists()
    res = runner.invoke(main, ["ingest", f"file://{good}", "--index", str(tmp_path / "c")])
    assert res.exit_code == 2 and "only --engine spark reads them" in res.stderr
    for engine in ("local", "spark"):
        res = runner.invoke(main, ["ingest", str(good), "--index", "hdfs://namenode/news-idx", "--engine", engine])
        assert res.exit_code == 2 and "POSIX filesystem" in res.stderr and "NFS" in res.stderr
    gone = write_jsonl(tmp_path / "gone.jsonl", [{"id": "x3", "text": text}])
    with SparkEngine() as engine:
        files: list = [f"file://{good}", f"file://{gone}"]
        engine.list_uris(files, [])
        gone.unlink()
        rows = list(engine.read_files(files, FieldMap(), 100_000, InputMeter(files)))
    assert isinstance(rows[0], Record) and rows[0].doc_id == "x1" and rows[0].file == f"file://{good}"
    assert rows[1].reason == "unreadable_file" and rows[1].file == f"file://{gone}" and len(rows) == 2


def test_strict_stops_and_commits_nothing(spark, tmp_path: Path) -> None:
    """The bad row comes after a first chunk (2,500 rows) whose bucket files the executors already staged: the
    writer lists them as they come, so its abort leaves none behind."""
    idx = tmp_path / "idx"
    dedup.ingest([ARTICLES], idx, engine="spark")
    before = (idx / "manifest.json").read_bytes()
    texts = [r["text"] for r in load_articles()]
    good = [{"id": f"x{i}", "text": texts[i % len(texts)]} for i in range(2_600)]
    bad = write_jsonl(tmp_path / "bad.jsonl", [*good, {"id": "no text"}])
    res = CliRunner().invoke(main, ["ingest", str(bad), "--index", str(idx), "--strict", "--engine", "spark"])
    assert res.exit_code == 6 and "bad.jsonl:2601" in res.stderr
    assert (idx / "manifest.json").read_bytes() == before
    assert not [f for f in (idx / "staging").rglob("*") if f.is_file()]


def test_star_components_are_connected_components(spark) -> None:
    """Large-star/small-star on a chain (the slowest case for label propagation), a star, a cycle and pairs."""
    import numpy as np

    chain = [(i, i + 1) for i in range(40)]
    star = [(100, 100 + k) for k in range(1, 12)]
    cycle = [(200 + k, 200 + (k + 1) % 9) for k in range(9)]
    edges = chain[::-1] + star + cycle + [(300, 301), (303, 302)]
    a, b = np.array(edges).T
    got = star_components(spark.createDataFrame(pa.table({"a": a, "b": b}))).toArrow()
    root = dict(zip(got["node"].to_pylist(), got["root"].to_pylist()))
    labels = components(304, a, b)
    nodes = sorted(set(a) | set(b))
    assert sorted(root) == nodes
    for n in nodes:  # the same partition, each part named by its smallest node
        assert root[n] == min(m for m in nodes if labels[m] == labels[n])


def test_spark_submit_builds_the_same_index(sample_index: Path, tmp_path: Path) -> None:
    """The module as spark-submit runs it on a cluster, here with a local master and a JVM of its own."""
    import dedup.engines.spark as module

    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    res = subprocess.run([str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]",
                          "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=4",
                          module.__file__, str(ARTICLES), "--index", str(tmp_path / "idx"), "--json"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    # spark-submit passes the driver's stderr on its stdout: the summary is the JSON line
    summary = json.loads(next(ln for ln in res.stdout.splitlines() if ln.startswith('{"read"')))
    assert summary["indexed"] == 327 and summary["pairs"] > 20
    assert_same_index(sample_index, tmp_path / "idx")


def test_partition_on_spark_is_partition(spark) -> None:
    """Components and splits on Spark give `cluster.partition`'s labels, with scores right at the thresholds
    (0.7 as float32 is below 0.7: such a pair links) and a hub whose two stories split by average linkage."""
    import numpy as np

    from dedup.cluster import partition
    from dedup.engines.spark import SparkEngine

    f32 = np.float32
    edges = [(0, 1, f32(0.7)), (1, 2, 0.95), (0, 2, 0.9),                 # one story, linked at the threshold
             (3, 4, 0.9), (4, 5, 0.9), (3, 5, 0.85), (5, 6, 0.75),          # a hub (5) between two stories
             (6, 7, 0.9), (7, 8, 0.92), (6, 8, 0.9), (3, 6, 0.1),
             (9, 10, f32(0.3)), (10, 11, 0.8), (9, 11, 0.8), (12, 13, 0.69)]  # a pair below the threshold
    a, b, s = (np.array(c) for c in zip(*edges))
    a, b, s = a.astype(np.int64), b.astype(np.int64), s.astype(np.float32)
    with SparkEngine() as engine:
        got = engine.partition(15, a, b, s, 0.7, 0.3)
    assert got.tolist() == partition(15, a, b, s, 0.7, 0.3).tolist()
    assert len(set(got[3:9].tolist())) == 2  # the hub's stories were split


def test_a_windowed_index_is_refused_clearly(spark, tmp_path: Path) -> None:
    """An index with a time window is ingested by the local engine only: Spark says so and commits nothing."""
    rows = [dict(r, published_at="2024-05-01") for r in load_articles()[:20]]
    idx = tmp_path / "idx"
    dedup.ingest(rows[:10], idx, dedup.Params(window_days=30))
    before = (idx / "manifest.json").read_text()
    with pytest.raises(dedup.ParamsError, match="local engine only"):
        dedup.ingest(rows[10:], idx, engine="spark")
    assert (idx / "manifest.json").read_text() == before


def test_a_retired_index_is_honoured_as_locally(spark, tmp_path: Path) -> None:
    """The dates `dedup retire` recorded hold for Spark as for the local engine: a later document dated before the
    purge is rejected, one before the retirement gets no buckets (never matched), a newer one is linked."""
    rows = [dict(r, published_at="2024-05-01") for r in load_articles()[:20]]
    base = tmp_path / "base"
    dedup.ingest(rows, base)
    dedup.retire.retire(base, datetime(2025, 1, 1))
    dedup.retire.retire(base, datetime(2024, 6, 1), purge=True)
    text = rows[0]["text"]
    night = [{"id": f"{kind}{i}", "text": text, "published_at": day} for kind, day in
             (("purged", "2024-05-15"), ("retired", "2024-09-01"), ("kept", "2025-06-01")) for i in (1, 2)]
    for engine in ("local", "spark"):
        shutil.copytree(base, tmp_path / engine)
        s = dedup.ingest(night, tmp_path / engine, engine=engine)
        assert [r.reason for r in s.rejections] == ["purged_date"] * 2 and s.flags == {"retired_on_arrival": 2}
    assert_same_index(tmp_path / "local", tmp_path / "spark")
    ix = dedup.Index(tmp_path / "spark")
    assert set(ix.sql("SELECT DISTINCT doc_id FROM buckets")["doc_id"].to_pylist()) == {"kept1", "kept2"}
    assert ix.sql("SELECT doc_a, doc_b FROM pairs WHERE linked").to_pylist() == [{"doc_a": "kept1", "doc_b": "kept2"}]


def test_v7_second_trees_score_alike_on_spark(spark, tmp_path: Path) -> None:
    """Real LLM rewrites (the L2R fixture) reach v7's second trees, whose paraphrase encoder runs on the executors:
    the pairs, their paraphrase signals and scores included, are the local engine's, bit for bit."""
    fixture = Path(__file__).resolve().parent / "rewrites" / "l2r_sample.jsonl"
    dedup.ingest([fixture], tmp_path / "local")
    dedup.ingest([fixture], tmp_path / "spark", engine="spark")
    second = dedup.Index(tmp_path / "local").sql("SELECT count(*) AS n FROM pairs WHERE para_cover IS NOT NULL")
    assert second["n"][0].as_py() >= 10
    assert_same_index(tmp_path / "local", tmp_path / "spark")
