"""SIGKILL at many points of the other writing commands, `dedup compact` and `dedup upgrade` (ingest: see
tests/test_crash.py). After every kill the index opens at its last commit, every query answers as before, `dedup
check` finds nothing wrong, and running the command again completes it with the leftovers removed.

Each command runs on a copy of the index in a warm process (imports done, see `Warm`), so a kill costs the
command's own run time. DEDUP_THOROUGH=1 multiplies the points by 5.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

import dedup
from dedup.check import check_index
from dedup.cli import main
from dedup.store import read_manifest

from conftest import load_articles
from test_crash import Warm, check_clean, doc_state, pairs, partition

POINTS = 22 * (5 if os.environ.get("DEDUP_THOROUGH") else 1)  # planned kill points
MIN_KILLS = 20  # real kills (of a running process) required: more points are drawn when runs finish first


def answers(idx: Path) -> tuple:
    """Everything a query sees: documents, clusters, pairs; and the index passes `dedup check`."""
    problems = check_index(idx).problems
    assert not problems, problems
    return doc_state(idx), frozenset(partition(idx)), tuple(pairs(idx))


def kill_at_many_points(base: Path, args: list[str], tmp_path: Path, state: Callable[[Path], object]) -> dict:
    """Run `dedup *args --index COPY` once to the end (reference), then POINTS times on a fresh copy of `base`,
    killed at points spread over its run time; `state(idx)` must be the state before or after every time, and the
    command run again must reach the reference. Returns counts of the outcomes."""
    ref = tmp_path / "ref"
    shutil.copytree(base, ref)
    w = Warm([*args, "--index", str(ref)])
    t0 = w.go()
    _, err = w.p.communicate()
    duration = time.monotonic() - t0
    assert w.p.returncode == 0, err
    pre, post = state(base), state(ref)
    rng = random.Random(20261206)
    delays = [(i + rng.random()) / POINTS * duration for i in range(POINTS)]
    work = tmp_path / "work"
    shutil.copytree(base, work)
    nxt = Warm([*args, "--index", str(work)])
    outcomes = {"killed_pre": 0, "killed_post": 0, "finished": 0}
    attempt = 0
    while outcomes["killed_pre"] + outcomes["killed_post"] < min(MIN_KILLS, POINTS) or attempt < len(delays):
        assert attempt < 3 * POINTS, f"the runs keep finishing before the kill: {outcomes}"
        # every planned point first; then earlier random points (a run can be faster than the reference)
        delay = delays[attempt] if attempt < len(delays) else rng.uniform(0, 0.8 * duration)
        attempt += 1
        w = nxt
        started = w.go()
        try:
            w.p.wait(timeout=max(0.0, delay - (time.monotonic() - started)))
            finished = True
        except subprocess.TimeoutExpired:
            w.p.send_signal(signal.SIGKILL)
            finished = False
        w.p.communicate()
        nxt = Warm([*args, "--index", str(work)])  # starts up while this one is checked (it waits for go())
        now = state(work)
        assert now in (pre, post), f"kill at {delay:.2f}s: a partial state"
        outcomes["finished" if finished else "killed_pre" if now == pre else "killed_post"] += 1
        # the same command again completes it, with the killed run's leftovers removed
        again = CliRunner().invoke(main, [*args, "--index", str(work)])  # in-process: no interpreter start-up
        assert again.exit_code == 0, again.output
        assert state(work) == post
        check_clean(work)
        shutil.rmtree(work)
        shutil.copytree(base, work)
    nxt.p.kill()
    nxt.p.communicate()
    print(f"\n{args[0]}: run {duration:.2f}s; {outcomes}")
    assert outcomes["killed_pre"] + outcomes["killed_post"] >= min(MIN_KILLS, POINTS)
    return outcomes


@pytest.fixture(scope="module")
def two_nights(sample_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample plus a second batch that replaces 10 texts and adds 5 documents: small files to merge, and
    files rewritten by the replacements."""
    idx = tmp_path_factory.mktemp("two") / "idx"
    shutil.copytree(sample_index, idx)
    rows = load_articles()
    night = [dict(r, text=r["text"] + " (Corrected.)") for r in rows[:10]]
    night += [dict(r, id=r["id"] + "-again") for r in rows[10:15]]
    dedup.ingest([pa.Table.from_pylist([{k: r.get(k) for k in ("id", "title", "text")} for r in night])], idx)
    return idx


def test_sigkill_compact(two_nights: Path, tmp_path: Path) -> None:
    before = answers(two_nights)

    def state(idx: Path) -> tuple:
        assert answers(idx) == before  # compaction changes no answer, killed or not
        return read_manifest(idx).generation

    out = kill_at_many_points(two_nights, ["compact"], tmp_path, state)
    assert out["killed_pre"] >= 5


def test_sigkill_upgrade(tmp_path: Path) -> None:
    v1 = Path(__file__).parent / "format_v1" / "idx"

    def state(idx: Path) -> tuple:
        m = read_manifest(idx, upgrading=True)
        if m.version == 1:
            return (1,)
        return (2, answers(idx))

    out = kill_at_many_points(v1, ["upgrade"], tmp_path, state)
    assert out["killed_pre"] >= 5
    assert dedup.Index(tmp_path / "ref").stats()["format_version"] == 2
