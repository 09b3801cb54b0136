"""Mistakes a person makes at the command line get one clear line and exit 2 (or 130 for Ctrl-C), never
"internal error", and a command that fails before reading anything leaves no index behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import dedup
from dedup.cli import main

from conftest import ARTICLES, load_articles


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    idx = tmp_path_factory.mktemp("ue") / "idx"
    dedup.ingest([ARTICLES / "seeds"], idx)
    return idx


def test_empty_sql_is_a_usage_error(small_index: Path) -> None:
    for query in ("", "  ;  ", "/* only a comment */"):
        code, out, err = run("sql", "--index", str(small_index), query)
        assert code == 2 and "no SQL statement" in err and "internal error" not in err, (query, err)


def test_sql_errors_come_without_the_usage_banner(small_index: Path) -> None:
    for query in ("SELEC 1", "SELECT * FROM nope", "SELECT 1; SELECT * FROM nope"):
        code, _, err = run("sql", "--index", str(small_index), query)
        assert code == 2 and err.startswith("dedup: error: SQL error") and "Usage:" not in err, err
    assert "in statement 2 of 2" in run("sql", "--index", str(small_index), "SELECT 1; SELECT * FROM nope")[2]


def test_negative_limits_are_refused_as_usage(small_index: Path) -> None:
    code, _, err = run("clusters", "--index", str(small_index), "--limit", "-1")
    assert code == 2 and "--limit" in err and "internal error" not in err
    code, _, err = run("similar", "--index", str(small_index), "--id", "x", "--limit", "-1")
    assert code == 2 and "--limit" in err


def test_similar_refuses_a_binary_text_file(small_index: Path, tmp_path: Path) -> None:
    binary = Path(sys.executable).resolve().read_bytes()[:4096]
    (tmp_path / "a.bin").write_bytes(binary)
    code, _, err = run("similar", "--index", str(small_index), "--text-file", str(tmp_path / "a.bin"))
    assert code == 2 and "a.bin" in err and "internal error" not in err, err
    (tmp_path / "nul.txt").write_bytes(b"some words\x00\x00\x00 and more")
    code, _, err = run("similar", "--index", str(small_index), "--text-file", str(tmp_path / "nul.txt"))
    assert code == 2 and "binary data" in err


def test_a_missing_input_leaves_no_index(tmp_path: Path) -> None:
    idx = tmp_path / "new"
    code, _, err = run("ingest", str(ARTICLES), str(tmp_path / "missing.jsonl"), "--index", str(idx),
                       "--num-perm", "64")
    assert code == 2 and "missing.jsonl" in err and not idx.exists()
    code, _, err = run("ingest", str(ARTICLES / "seeds"), "--index", str(idx))  # other parameters: fine
    assert code == 0, err


def _big_feed(path: Path, copies: int) -> Path:
    """The sample's real articles `copies` times under new ids: long enough to interrupt mid-way."""
    rows = load_articles()
    with open(path, "w", encoding="utf-8") as f:
        for k in range(copies):
            for r in rows:
                f.write(json.dumps({"id": f"{r['id']}-{k}", "text": r["text"]}) + "\n")
    return path


def _interrupt_ingest(feed: Path, idx: Path) -> subprocess.CompletedProcess:
    """Start `dedup ingest`, press Ctrl-C (SIGINT) once it holds the writer lock, wait for it to exit."""
    lock = idx / "lock"
    before = lock.stat().st_mtime_ns if lock.exists() else None
    p = subprocess.Popen([sys.executable, "-m", "dedup.cli", "ingest", str(feed), "--index", str(idx)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:
        if lock.exists() and lock.stat().st_mtime_ns != before and lock.read_text().strip():
            break
        time.sleep(0.02)
    time.sleep(0.5)  # reading and sketching
    assert p.poll() is None, "the ingest ended before it could be interrupted"
    # Ctrl-C, and again every 2 s as a person would: a SIGINT that lands inside a DuckDB query is consumed by it
    for _ in range(30):
        p.send_signal(signal.SIGINT)
        try:
            out, err = p.communicate(timeout=2)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def test_ctrl_c_exits_130_and_commits_nothing(tmp_path: Path) -> None:
    feed = _big_feed(tmp_path / "big.jsonl", 60)  # ~20k documents
    idx = tmp_path / "idx"
    done = _interrupt_ingest(feed, idx)  # the first batch of a new index
    assert done.returncode == 130 and "interrupted; nothing was committed" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "Aborted" not in done.stderr
    assert not idx.exists()  # no empty index left holding the parameters
    dedup.ingest([ARTICLES / "seeds"], idx)
    before = sorted(dedup.Index(idx).sql("SELECT doc_id, text_hash FROM documents").to_pylist(), key=str)
    generation = json.loads((idx / "manifest.json").read_text())["generation"]
    done = _interrupt_ingest(feed, idx)
    assert done.returncode == 130 and "nothing was committed" in done.stderr, done.stderr
    assert json.loads((idx / "manifest.json").read_text())["generation"] == generation
    assert sorted(dedup.Index(idx).sql("SELECT doc_id, text_hash FROM documents").to_pylist(), key=str) == before
    assert sorted(p.name for p in (idx / "tables" / "documents").iterdir()) == sorted(
        Path(f).name for f in json.loads((idx / "manifest.json").read_text())["tables"]["documents"])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_ctrl_c_stops_a_running_query(small_index: Path) -> None:
    """A SIGINT that arrives while DuckDB runs a query ends the command at once with 130, not minutes later."""
    slow = "SELECT count(*) FROM range(300000000000) t WHERE hash(t.range) % 7 = 1"  # hours of work
    p = subprocess.Popen([sys.executable, "-m", "dedup.cli", "sql", "--index", str(small_index), slow],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # starting Python and importing dedup costs ~2 CPU-seconds; the query then burns every core
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None and _cpu_seconds(p.pid) < 8:
        time.sleep(0.1)
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGINT)
    sent = time.monotonic()
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("the query went on after Ctrl-C")
    assert p.returncode == 130 and "dedup: error: interrupted" in err and out == "", err
    assert "Traceback" not in err and time.monotonic() - sent < 30
