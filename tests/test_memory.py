"""Memory is bounded by --max-chars, not by the input: compressed bombs are rejected line by line without being
held; running out of memory is a clear message and exit 7; a failed first ingest leaves no index behind."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pyarrow as pa

from conftest import ROOT, load_articles

ZEROS = 1 << 30  # one line of 1 GiB: a 1 MB compressed file


def compressed_bomb(path: Path, head: bytes, tail: bytes, compression: str) -> None:
    """`head`, ZEROS zero digits, `tail`, compressed as the file name says, written a block at a time."""
    block = b"0" * (16 << 20)
    if compression == "gzip":
        z = zlib.compressobj(1, zlib.DEFLATED, 31)
        with open(path, "wb") as f:
            f.write(z.compress(head))
            for _ in range(ZEROS // len(block)):
                f.write(z.compress(block))
            f.write(z.compress(tail) + z.flush())
    else:
        with pa.output_stream(str(path), compression=compression) as f:
            f.write(head)
            for _ in range(ZEROS // len(block)):
                f.write(block)
            f.write(tail)


def dedup(args: list[str], limit_as: int | None = None) -> tuple[int, str, int]:
    """Run `dedup` in a new process: (exit code, stderr, its peak RSS in MB)."""
    def limit() -> None:
        if limit_as:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen([sys.executable, "-m", "dedup.cli", *args], stdout=subprocess.DEVNULL, stderr=err,
                             cwd=ROOT, preexec_fn=limit)
        _, status, usage = os.wait4(p.pid, 0)  # this child's own peak, not the largest of every child so far
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return p.returncode, err.read().decode(), usage.ru_maxrss // 1024


def test_bombs_rejected_too_long_with_small_memory(tmp_path: Path) -> None:
    good = load_articles()[:2]
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "good.jsonl").write_text("".join(json.dumps(r) + "\n" for r in good))
    compressed_bomb(feed / "bomb.jsonl.gz", b'{"id": "bomb", "text": "', b'"}\n' + json.dumps(good[0] | {"id": "after"})
                    .encode() + b"\n", "gzip")
    compressed_bomb(feed / "bomb.csv.zst", b"id,text\nbomb,", b"\nafter-csv,short text after the bomb\n", "zstd")
    with open(feed / "bomb.txt", "wb") as f:  # a sparse file: 2 GiB of zero bytes that take no disk
        f.truncate(2 << 30)
    idx = tmp_path / "idx"
    code, err, peak = dedup(["ingest", str(feed), "--index", str(idx), "--json", "--max-chars", "100000"])
    assert code == 3, err
    assert "Traceback" not in err and "bomb.txt" in err and "too_long" in err
    # one line of 1 GiB held as bytes, then as a str, would take well over 2 GB; a 100k-character limit keeps the
    # process at what it takes for two articles (~0.3 GB), plus what numba takes to compile a kernel no earlier
    # test left in a fresh checkout's cache (~0.5 GB seen in CI)
    assert peak < 1500, f"peak RSS {peak} MB"
    import dedup as api
    ix = api.Index(idx)
    ids = set(ix.sql("SELECT doc_id FROM documents")["doc_id"].to_pylist())
    assert ids == {good[0]["id"], good[1]["id"], "after"} | ({"after-csv"} & ids)
    rej = ix.sql("SELECT file, line, reason FROM rejected ORDER BY file").to_pylist()
    too_long = {(Path(r["file"]).name, r["line"]) for r in rej if r["reason"] == "too_long"}
    assert too_long == {("bomb.csv.zst", 2), ("bomb.jsonl.gz", 1), ("bomb.txt", None)}, rej


def test_address_space_too_small_is_exit_7_and_leaves_no_index(tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    code, err, _ = dedup(["ingest", str(ROOT / "data" / "articles"), "--index", str(idx)], limit_as=2_000_000_000)
    assert code == 7, err
    assert "address space" in err and "Traceback" not in err
    assert not (idx / "manifest.json").exists()


def test_out_of_memory_in_a_query_is_exit_7(sample_index: Path) -> None:
    code, err, _ = dedup(["sql", "--index", str(sample_index),
                          "SELECT length(string_agg(repeat(text, 20000), '')) FROM documents"],
                         limit_as=3_000_000_000)
    assert code == 7, err
    assert "out of memory" in err and "Traceback" not in err


def test_failed_first_ingest_commits_no_empty_index(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    rows = load_articles()[:3]
    feed.write_text(json.dumps(rows[0]) + "\n{not json\n" + json.dumps(rows[1]) + "\n")
    idx = tmp_path / "idx"
    code, err, _ = dedup(["ingest", str(feed), "--index", str(idx), "--strict"])
    assert code == 6, err
    assert not (idx / "manifest.json").exists()  # nothing committed: not an (empty) index
    assert not idx.exists()  # and nothing left behind: the failed first batch removed what it made
    code, err, _ = dedup(["stats", "--index", str(idx)])
    assert code == 5 and "no such index" in err
    # the next run starts the index afresh
    code, err, _ = dedup(["ingest", str(feed), "--index", str(idx)])
    assert code == 3, err
    assert os.path.exists(idx / "manifest.json")
