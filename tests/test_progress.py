"""What `dedup ingest` shows while it runs: on a terminal (a real pseudo-terminal) a bar over the input's bytes
with its total, rate and percent, then one line per stage with counts; on a pipe, or with --quiet, none of it."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from dedup.progress import InputMeter
from dedup.readers import read_file

from conftest import ARTICLES


def _input_mb() -> str:
    total = sum(f.stat().st_size for f in ARTICLES.rglob("*") if f.is_file())
    return f"{total / 1e6:,.1f} MB"


def _on_terminal(*args: str) -> str:
    """Run `dedup` with stdout and stderr on a pseudo-terminal; everything it drew there."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "dedup.cli", *args], stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=slave, close_fds=True)
    os.close(slave)
    out = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.wait(timeout=600) == 0, out.decode(errors="replace")
    return out.decode("utf-8", errors="replace")


def test_a_terminal_gets_a_bar_with_totals_then_a_line_per_stage(tmp_path: Path) -> None:
    seen = _on_terminal("ingest", str(ARTICLES), "--index", str(tmp_path / "idx"))
    bar = re.search(r"dedup: reading\s+\[#*-*\]\s+(\d+)%\s+.*? of (\S+ MB), \S+ MB/s, ([\d,]+) documents", seen)
    assert bar, seen
    assert bar.group(2) == _input_mb() and 0 <= int(bar.group(1)) <= 100, seen
    assert "dedup: reading" in seen and "100%" in seen  # the bar ends full
    for stage, count in (("read", "327"), ("link", None), ("verify", None), ("cluster", None), ("commit", "327")):
        line = re.search(rf"^dedup: {stage}\s+([\d,]+) .*\s(\d+\.\d)s\r?$", seen, re.M)
        assert line, (stage, seen)
        assert count is None or line.group(1) == count
    assert "dedup: batch 1: read 327, indexed 327" in seen


def test_a_pipe_and_quiet_get_plain_lines_only(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "dedup.cli", "ingest", str(ARTICLES), "--index",
                           str(tmp_path / "idx")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "reading" not in done.stderr and "\r" not in done.stderr and "%" not in done.stderr
    assert not re.search(r"^dedup: (read|link|verify|cluster|commit) ", done.stderr, re.M)
    assert done.stderr.strip().splitlines()[-1].startswith("dedup: batch 1: read 327")
    seen = _on_terminal("--quiet", "ingest", str(ARTICLES), "--index", str(tmp_path / "idx2"))
    assert seen.strip() == "", seen


def test_the_meter_follows_the_file_being_read(tmp_path: Path, articles: list[dict]) -> None:
    first = ARTICLES / "news_sample.jsonl"
    second = tmp_path / "titles.jsonl"  # more lines than a reader parses before its first record
    second.write_text("".join(json.dumps({"id": f"{a['id']}-{k}", "text": a["title"]}) + "\n"
                              for k in range(20) for a in articles), "utf-8")
    meter = InputMeter([first, second])
    assert meter.total == first.stat().st_size + second.stat().st_size and meter.done() == 0
    meter.start(1)
    rows = read_file(second)
    next(rows)
    at = meter.done()
    assert first.stat().st_size < at < meter.total  # the first file, and some of the second
    for _ in rows:
        pass
    assert meter.done() == first.stat().st_size  # closed: counted once the next file starts
    meter.start(2)
    assert meter.done() == meter.total
