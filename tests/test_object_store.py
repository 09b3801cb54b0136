"""An index on S3 (`--index s3://bucket/prefix`): the same index as in a directory, batch after batch, with either
engine; commits that lose a race change nothing; leftovers, damage and old files are handled as in a directory.

The S3 API is moto's server on loopback (the real HTTP protocol, which pyarrow's S3 client and boto3 both speak),
reached through AWS_ENDPOINT_URL as any S3-compatible store is.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

import dedup
from dedup.cli import main
from dedup.errors import IndexLocked, IndexProblem
from dedup.store import DamagedError, SCHEMAS
from dedup.store.remote import ObjectStore
from dedup.store.writer import open_writer

from conftest import ARTICLES, index_tables, load_articles

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3():
    """A bucket on moto's S3 server; the environment points every S3 client of this process at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {**AWS, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket="news")
    yield env
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


_prefixes = iter(range(1_000_000))


@pytest.fixture
def uri(s3) -> str:
    return f"s3://news/index-{next(_prefixes)}"


def tables(index: str | Path) -> dict[str, list[dict]]:
    return {name: t.to_pylist() for name, t in index_tables(index).items()}


def nights(d: Path) -> list[Path]:
    """The sample in three batches: copies after their originals, a document replaced in each later night, one
    repeated unchanged, and a line that is not JSON."""
    rows = load_articles()
    copies = [r for r in rows if "~" in r["id"]]
    originals = [r for r in rows if r not in copies]
    half = len(originals) // 2
    parts = [originals[:half],
             originals[half:] + copies + [dict(originals[0], text=originals[0]["text"] + " Figures were revised.")],
             [dict(copies[0], text=copies[0]["text"] + " A correction was appended later."),
              dict(originals[3], text=originals[7]["text"]), originals[10]]]
    out = []
    for i, rows in enumerate(parts, 1):
        path = d / f"night{i}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows) + ('{"id": "broken", "text": \n' if i == 2
                                                                        else ""), "utf-8")
        out.append(path)
    return out


def listed(store: ObjectStore) -> set[str]:
    m = dedup.store.read_manifest(store)
    return {f for files in m.tables.values() for f in files} | {g["file"] for g in m.garbage}


def test_nights_on_s3_build_the_directory_index(uri: str, tmp_path: Path) -> None:
    """Three nights through the CLI into S3 and into a directory: the same summaries, exit codes and tables; the
    read-only commands and `dedup check` work on the URI; views.sql names the files' URIs."""
    runner = CliRunner()
    for night in nights(tmp_path):
        got = [runner.invoke(main, ["ingest", str(night), "--index", ix, "--json"])
               for ix in (uri, str(tmp_path / "dir"))]
        assert got[0].exit_code == got[1].exit_code and got[0].exit_code in (0, 3), got[0].output
        on_s3, in_dir = (json.loads(g.stdout) for g in got)
        for field in ("read", "indexed", "replaced", "unchanged", "rejected", "pairs", "linked", "clusters",
                      "documents"):
            assert on_s3[field] == in_dir[field], field
    assert on_s3["documents"] > 300 and on_s3["linked"] > 0
    assert tables(uri) == tables(tmp_path / "dir")

    store = ObjectStore.of(uri)
    assert set(store.listing("tables")) == listed(store)  # nothing but what the manifest lists
    assert store.manifests() == [f"manifests/{g:010d}.json" for g in (1, 2, 3)]
    views = store.read("views.sql").decode()
    assert all(store.path(f) in views for f in dedup.store.read_manifest(store).tables["pairs"])
    sql = runner.invoke(main, ["sql", "--index", uri, "SELECT count(*) AS n FROM cluster_summary", "--format", "json"])
    assert sql.exit_code == 0 and json.loads(sql.stdout)[0]["n"] == dedup.Index(tmp_path / "dir").stats()["clusters"]
    refused = runner.invoke(main, ["sql", "--index", uri, f"COPY documents TO '{store.path('x.parquet')}'"])
    assert refused.exit_code != 0 and "x.parquet" not in store.listing("")
    check = runner.invoke(main, ["check", "--index", uri, "--json"])
    assert check.exit_code == 0 and json.loads(check.stdout)["ok"]


def test_a_writer_that_loses_the_race_commits_nothing(uri: str) -> None:
    """Two writers open the same commit: the second to commit fails clearly and the index is the first's; its
    files are removed by the next writer, and a running writer's files (a later generation) are left alone."""
    dedup.ingest([ARTICLES / "news_sample.jsonl"], uri)
    store = ObjectStore.of(uri)
    first, second = open_writer(uri), open_writer(uri)
    first.stage("rejected", SCHEMAS["rejected"].empty_table())
    lost = second.stage("rejected", SCHEMAS["rejected"].empty_table())
    first.commit()
    with pytest.raises(IndexLocked, match="another writer committed generation 2"):
        second.commit()
    assert dedup.store.read_manifest(store).generation == 2 and lost in store.listing("tables")
    running = open_writer(uri)  # opened at generation 2: its files are named for generation 3
    mine = running.stage("rejected", SCHEMAS["rejected"].empty_table())
    open_writer(uri)  # a writer opening the index meanwhile removes the loser's file, not the running one's
    files = store.listing("tables")
    assert lost not in files and mine in files
    running.commit()
    assert dedup.store.read_manifest(store).generation == 3 and set(store.listing("tables")) == listed(store)


def test_replaced_files_stay_for_readers_until_the_grace_period(uri: str, monkeypatch) -> None:
    """A reader of an older commit still reads it after a replacing commit; the files that commit dropped are
    deleted by a writer after the grace period, not before."""
    rows = load_articles()[:40]
    batch = [dict(r, text=r["text"] + " Updated.") if i < 3 else r for i, r in enumerate(rows)]
    dedup.ingest(rows, uri)
    reader = dedup.Index(uri)
    dedup.ingest(batch, uri)
    store = ObjectStore.of(uri)
    garbage = {g["file"] for g in dedup.store.read_manifest(store).garbage}
    assert garbage and garbage <= set(store.listing("tables"))
    assert reader.sql("SELECT count(*) AS n FROM documents")["n"][0].as_py() == 40  # the old commit, still whole
    monkeypatch.setenv("DEDUP_GRACE_SECONDS", "0")
    dedup.ingest(rows[5:6], uri)  # unchanged: a commit that collects the garbage
    assert not garbage & set(store.listing("tables"))
    assert dedup.Index(uri).sql("SELECT count(*) AS n FROM documents WHERE text LIKE '%Updated.'")["n"][0].as_py() == 3
    # the old reader's files are gone now: its next query moves it to the last commit by itself
    assert reader.sql("SELECT count(*) AS n FROM documents WHERE text LIKE '%Updated.'")["n"][0].as_py() == 3
    assert reader.snapshot.manifest.generation == 3


def test_damage_and_wrong_places_are_reported(uri: str, tmp_path: Path) -> None:
    runner = CliRunner()
    dedup.ingest([ARTICLES / "news_copies.jsonl"], uri)
    store = ObjectStore.of(uri)
    victim = dedup.store.read_manifest(store).tables["documents"][0]
    data = store.read(victim)
    store.write(victim, data[:-10])
    with pytest.raises(DamagedError, match=victim):
        dedup.Index(uri)
    with pytest.raises(DamagedError, match=victim):
        dedup.ingest([ARTICLES / "news_sample.jsonl"], uri)
    check = runner.invoke(main, ["check", "--index", uri, "--json"])
    assert check.exit_code != 0 and json.loads(check.stdout)["problems"][0]["file"] == victim
    store.write(victim, data[:-16] + bytes(6) + data[-10:])  # the right size, other bytes
    check = runner.invoke(main, ["check", "--index", uri, "--json"])
    assert "checksum" in json.loads(check.stdout)["problems"][0]["problem"]
    compact = runner.invoke(main, ["compact", "--index", uri])  # reads every file: hashes them first
    assert compact.exit_code == 5 and victim in compact.output

    other = ObjectStore.of(f"{uri}-other")
    other.write("notes.txt", b"not an index")
    for args in (["ingest", str(ARTICLES), "--index", other.uri], ["sql", "--index", other.uri, "SELECT 1"],
                 ["ingest", str(ARTICLES), "--index", "s3://news"], ["compact", "--index", other.uri]):
        got = runner.invoke(main, args)
        assert got.exit_code not in (0, 1) and "Traceback" not in got.output, args
    assert set(other.listing("")) == {"notes.txt"}


def test_a_first_batch_that_fails_leaves_nothing(uri: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": \n', "utf-8")
    with pytest.raises(dedup.errors.DedupError):
        dedup.ingest([bad], uri, strict=True)
    assert ObjectStore.of(uri).listing("") == {}
    with pytest.raises(IndexProblem):
        dedup.Index(uri)


def test_spark_is_refused_an_index_uri_its_hadoop_cannot_read(uri: str) -> None:
    """pyspark from pip has no S3 filesystem (S3A needs hadoop-aws, see scripts/check_s3.py, which runs the Spark
    engine on an index on S3): refused before anything runs, naming the scheme, not at the candidate join."""
    got = CliRunner().invoke(main, ["ingest", str(ARTICLES), "--index", uri, "--engine", "spark",
                                    "--spark-master", "local[1]"])
    assert got.exit_code == 2 and 'No FileSystem for scheme "s3"' in got.output and "s3a://" in got.output
    assert ObjectStore.of(uri).listing("") == {}


@pytest.mark.parametrize("window", [0, 30])
def test_compact_retire_and_upgrade_on_s3_as_in_a_directory(s3, tmp_path: Path, monkeypatch, window: int) -> None:
    """The maintenance commands on an index on S3, with and without a time window, change it as they change the
    same index in a directory: compaction merges its files (streamed to S3), a purge removes old documents from
    every table, upgrade finds nothing to do; `dedup check` passes and, after the grace period, S3 holds exactly
    the files the manifest lists."""
    monkeypatch.setenv("DEDUP_GRACE_SECONDS", "0")
    runner = CliRunner()
    uri = f"s3://news/maintained-{next(_prefixes)}"
    indexes = (uri, str(tmp_path / "dir"))
    for k, night in enumerate(nights(tmp_path)):
        for ix in indexes:
            got = runner.invoke(main, ["ingest", str(night), "--index", ix,
                                       *(["--window", str(window)] if window and not k else [])])
            assert got.exit_code in (0, 3), got.output
    for args in (["compact"], ["retire", "--before", "2005-01-01", "--purge"]):
        got = [runner.invoke(main, [*args, "--index", ix, "--json"]) for ix in indexes]
        assert got[0].exit_code == got[1].exit_code == 0, got[0].output
        a, b = (json.loads(g.stdout) for g in got)
        for k in ("files_before", "files_after", "documents", "bucket_rows", "pairs", "clusters"):
            assert a.get(k) == b.get(k), (args, k)
    got = runner.invoke(main, ["upgrade", "--index", uri])
    assert got.exit_code == 0 and "at format version 2" in got.output
    assert json.loads(runner.invoke(main, ["stats", "--index", uri, "--json"]).stdout)["documents"] < 300  # purged
    assert tables(uri) == tables(indexes[1])
    assert bool(dedup.store.read_manifest(ObjectStore.of(uri)).ranges) == bool(window)  # dated bucket files
    assert json.loads(runner.invoke(main, ["check", "--index", uri, "--json"]).stdout)["ok"]
    kept = dedup.Index(uri).sql("SELECT doc_id AS id, text FROM documents LIMIT 1").to_pylist()
    dedup.ingest(kept, uri)  # unchanged: a commit after the grace period, which collects the garbage
    store = ObjectStore.of(uri)
    assert not dedup.store.read_manifest(store).garbage
    assert set(store.listing("tables")) == listed(store)


def test_killed_writers_leave_the_last_commit(s3, tmp_path: Path) -> None:
    """`dedup ingest` into S3, SIGKILLed at points spread over its run: the index opens at the commit before the
    batch or after it, never a mix; the same command then completes it with the uninterrupted result, and the
    killed runs' files go once their generation is committed."""
    uri = f"s3://news/killed-{next(_prefixes)}"
    first, second, _ = nights(tmp_path)
    for ix in (uri, tmp_path / "dir"):
        dedup.ingest([first], ix)
    dedup.ingest([second], tmp_path / "dir")
    def state(ix: str | Path) -> list[dict]:
        return dedup.Index(ix).sql("SELECT doc_id, text_hash FROM documents ORDER BY doc_id").to_pylist()

    before, after = state(uri), state(tmp_path / "dir")
    cmd = [sys.executable, "-m", "dedup.cli", "ingest", str(second), "--index", uri, "--json"]
    timed = f"{uri}-timed"  # the same run, uninterrupted, on a copy of the state: how long a run takes here
    dedup.ingest([first], timed)
    started = time.perf_counter()
    assert subprocess.run(cmd[:-2] + [timed, "--json"], capture_output=True, env=os.environ).returncode == 3
    run = time.perf_counter() - started
    store = ObjectStore.of(uri)
    killed, mid_write = 0, 0
    for delay in (run * f for f in (0.45, 0.55, 0.65, 0.72, 0.8, 0.86, 0.92, 0.97)):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
        time.sleep(delay)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait()
        assert state(uri) in (before, after), delay
        if state(uri) == after:  # that run committed before the kill
            break
        mid_write += bool(set(store.listing("tables")) - listed(store))  # killed with files written
    assert killed >= 3 and mid_write >= 1
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    assert done.returncode in (0, 3), done.stderr
    # a run that committed before its kill leaves the last one nothing but an unchanged batch to do: every table
    # but `rejected` (the night's broken line, rejected by each run) is the uninterrupted run's
    assert ({k: v for k, v in tables(uri).items() if k != "rejected"}
            == {k: v for k, v in tables(tmp_path / "dir").items() if k != "rejected"})
    open_writer(uri)  # a writer's opening removes what the killed runs wrote for generations now taken
    assert set(store.listing("tables")) == listed(store)


def test_s3a_settings_reach_the_index_without_the_environment(s3, monkeypatch) -> None:
    """A cluster configured for S3A only (spark-defaults.conf, no AWS variable): the Spark engine takes the
    index's endpoint and keys from S3A's settings, a bucket's own first, and with them alone a writer commits;
    executors receive the settings with the store, not the driver's state. (scripts/check_s3.py runs whole
    ingests so, through S3A's jars.)"""
    from dedup.engines.spark import SparkEngine

    with SparkEngine("local[1]") as engine:
        conf = engine.spark.sparkContext._jsc.hadoopConfiguration()
        for key, value in {"fs.s3a.endpoint": "http://127.0.0.1:9", "fs.s3a.access.key": "testing",
                           "fs.s3a.bucket.news.endpoint": s3["AWS_ENDPOINT_URL"], "fs.s3a.secret.key": "testing",
                           "fs.s3a.path.style.access": "true"}.items():
            conf.set(key, value)
        settings = engine.s3_settings("s3a://news/cluster-index")
        assert engine.s3_settings("s3://news/cluster-index") == ()  # EMR's s3:// is not S3A: the environment's
    assert dict(settings) == {"endpoint": s3["AWS_ENDPOINT_URL"], "access_key": "testing", "secret_key": "testing",
                              "path_style": "true", "ssl": "true"}  # Hadoop's default; the endpoint's http:// wins
    for name in s3:
        monkeypatch.delenv(name)
    w = open_writer("s3a://news/cluster-index", settings)
    w.stage("rejected", SCHEMAS["rejected"].empty_table())
    w.commit()
    store = ObjectStore.of("s3a://news/cluster-index", settings)
    assert store.manifests() == ["manifests/0000000001.json"] and set(store.listing("tables")) == listed(store)
    sent = pickle.loads(pickle.dumps(w.root))
    assert sent == store and sent.settings == settings and not sent.written and w.root.written


@pytest.mark.parametrize("outcome", ["written", "lost", "unknown"])
def test_a_commit_whose_answer_is_lost_is_settled_by_reading_back(uri: str, monkeypatch, outcome: str) -> None:
    """The commit's put fails without an answer (a connection lost): if its manifest is there it was committed;
    if not, nothing was and the writer's files go; if that cannot be told, its files stay (the manifest may list
    them) for the next writer to sort out."""
    import botocore.client
    from botocore.exceptions import EndpointConnectionError

    dedup.ingest([ARTICLES / "news_copies.jsonl"], uri)
    store = ObjectStore.of(uri)
    real = botocore.client.BaseClient._make_api_call

    def cut(self, operation, params):
        if operation == "PutObject":
            if outcome == "written":
                real(self, operation, params)
            raise EndpointConnectionError(endpoint_url="http://s3")
        return real(self, operation, params)

    w = open_writer(uri)
    mine = w.stage("rejected", SCHEMAS["rejected"].empty_table())
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", cut)
    if outcome == "unknown":
        monkeypatch.setattr(ObjectStore, "read", lambda self, rel: (_ for _ in ()).throw(OSError("timed out")))
    if outcome == "written":
        with w:
            w.commit()
    else:
        with pytest.raises(IndexProblem, match="cannot tell" if outcome == "unknown" else "cannot write"), w:
            w.commit()  # the error leaves the writer as a failed ingest does
    monkeypatch.undo()
    assert dedup.store.read_manifest(store).generation == (2 if outcome == "written" else 1)
    assert (mine in store.listing("tables")) == (outcome != "lost")


def test_duckdb_asks_s3_nothing_it_was_told_by_the_listing(uri: str, monkeypatch) -> None:
    """DuckDB asks each file's size, time and existence several times per query (a HEAD request each on S3,
    ~20 ms apiece on a real bucket): the listing the index was opened with answers them all."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    dedup.ingest([ARTICLES / "news_copies.jsonl"], uri)
    asked: list[str] = []
    real = ArrowFSWrapper.info
    monkeypatch.setattr(ArrowFSWrapper, "info", lambda self, path, **kw: asked.append(path) or real(self, path, **kw))
    ix = dedup.Index(uri)
    n = ix.sql("SELECT count(*) AS n FROM copies")["n"][0].as_py()
    assert n == 25 and asked == []


def test_threads_reading_one_file_through_duckdb_bridge_get_their_own_bytes(uri: str) -> None:
    """DuckDB reads a file at an offset as `seek` then `read`, from several threads on one handle: every thread
    must get the bytes at its own offset (a shared position garbled Parquet footers under load)."""
    dedup.ingest([ARTICLES / "news_copies.jsonl"], uri)
    store = ObjectStore.of(uri)
    rel = max(store.listing("tables").items(), key=lambda kv: kv[1].size)[0]
    data = store.read(rel)
    f = store.duckdb_filesystem().open(store.path(rel), "rb")
    wrong: list[tuple[int, int]] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            at, n = rng.randrange(len(data)), rng.randrange(1, 4096)
            f.seek(at)
            if f.read(n) != data[at:at + n]:
                wrong.append((at, n))

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(data) > 10_000 and not wrong


def test_a_writer_outlasting_the_kept_manifests_commits_nothing(uri: str) -> None:
    """Only the last 10 manifests are kept, so a writer that ran across more commits than that finds the manifest
    of its generation gone and its conditional put succeeds: it must still fail, committing nothing, and leave
    the index at the later commits."""
    dedup.ingest([ARTICLES / "news_copies.jsonl"], uri)
    store = ObjectStore.of(uri)
    slow = open_writer(uri)
    mine = slow.stage("rejected", SCHEMAS["rejected"].empty_table())
    for _ in range(11):
        w = open_writer(uri)
        w.stage("rejected", SCHEMAS["rejected"].empty_table())
        w.commit()
    assert "manifests/0000000002.json" not in store.manifests()  # its generation's manifest, removed
    with pytest.raises(IndexLocked, match="other writers committed up to"), slow:
        slow.commit()
    assert store.manifests()[-1] == "manifests/0000000012.json" and "manifests/0000000002.json" not in store.manifests()
    assert dedup.store.read_manifest(store).generation == 12 and mine not in store.listing("tables")
