"""Crash safety and locking with real processes: `dedup ingest` runs as a subprocess and is SIGKILLed at
many points of its run; a second writer is refused; readers never block and never see a half-written batch.

After every kill the index must open at the last committed state — the documents of before the batch or of
after it, never a mix, never a duplicate — and running the same command again must finish with exactly the
state of an uninterrupted run, with the killed runs' leftover files cleaned up.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import dedup
from dedup.cli import main
from dedup.store import TABLES, read_manifest

from conftest import ARTICLES, load_articles

KILLS = 22          # planned kill points in the main test, stratified over the whole run time
MIN_KILLS = 20      # real kills (of a running process) required; more points are drawn if runs finish first
GROUP = 8           # at most this many kills in a row on one index before running the command to completion
VIEWS = TABLES + ("cluster_summary", "copies")


def ingest_cmd(batch: Path, idx: Path) -> list[str]:
    return [sys.executable, "-m", "dedup.cli", "ingest", str(batch), "--index", str(idx), "--json",
            "--store-signatures"]


def popen(cmd: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ARTICLES.parent.parent)


def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    p = popen(cmd)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def doc_state(idx: Path) -> frozenset[tuple[str, int]]:
    """(doc_id, text_hash) of every document; fails on any duplicate."""
    ix = dedup.Index(idx)
    rows = ix.sql("SELECT doc_id, text_hash FROM documents")
    state = list(zip(rows["doc_id"].to_pylist(), rows["text_hash"].to_pylist()))
    assert len(state) == len({d for d, _ in state}), "a document is doubled"
    return frozenset(state)


def partition(idx: Path) -> set[frozenset[str]]:
    t = dedup.Index(idx).sql("SELECT doc_id, cluster_id FROM clusters")
    groups: dict[int, set[str]] = {}
    for d, c in zip(t["doc_id"].to_pylist(), t["cluster_id"].to_pylist()):
        groups.setdefault(c, set()).add(d)
    return {frozenset(g) for g in groups.values()}


def pairs(idx: Path) -> list[tuple]:
    t = dedup.Index(idx).sql("SELECT doc_a, doc_b, score, linked FROM pairs ORDER BY doc_a, doc_b")
    return list(zip(*(c.to_pylist() for c in t.columns)))


def check_readable(idx: Path) -> frozenset[tuple[str, int]]:
    """The index opens, every table and view answers SQL, and the tables agree with each other."""
    ix = dedup.Index(idx)
    for t in VIEWS:
        ix.sql(f"SELECT count(*) FROM {t}")
    state = doc_state(idx)
    ids = {d for d, _ in state}
    for t in ("signatures", "clusters"):
        got = ix.sql(f"SELECT doc_id FROM {t}")["doc_id"].to_pylist()
        assert len(got) == len(ids) and set(got) == ids, t
    dup = ix.sql("SELECT count(*) - count(DISTINCT (doc_a, doc_b)) AS n FROM pairs")["n"][0].as_py()
    assert dup == 0, "a pair is doubled"
    return state


def check_clean(idx: Path) -> None:
    """Every file under tables/ is listed by the manifest or its garbage list; no temporary files remain."""
    m = read_manifest(idx)
    known = {f for fs in m.tables.values() for f in fs} | {g["file"] for g in m.garbage}
    on_disk = {p.relative_to(idx).as_posix() for p in (idx / "tables").rglob("*") if p.is_file()}
    assert on_disk <= known, sorted(on_disk - known)[:5]
    assert not [p.name for p in idx.iterdir() if ".tmp" in p.name]
    assert {p.name for p in (idx / "tables").iterdir()} <= set(TABLES)


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Night 1 (committed, the base) and night 2 (the batch that gets killed): night 2 has 20 documents of
    night 1 unchanged, 10 replaced (text corrected), 150 new articles and the 25 MT copies (which link)."""
    tmp = tmp_path_factory.mktemp("nights")
    rows = load_articles()
    sample, copies = rows[:300], rows[300:]
    night1 = write_jsonl(tmp / "night1.jsonl", sample[:150])
    night2 = write_jsonl(tmp / "night2.jsonl", sample[120:140] + [dict(r, text=r["text"] + " (Corrected.)")
                                                                  for r in sample[140:150]]
                         + sample[150:] + copies)
    base = tmp / "base"
    # in-process: also fills numba's on-disk cache before any subprocess runs
    dedup.ingest([night1], base, store_signatures=True)
    return {"tmp": tmp, "night1": night1, "night2": night2, "base": base}


# A real `dedup ingest` process whose interpreter has already imported the package and waits for "go" on stdin
# before calling the CLI's main() with the real arguments: the next victim starts up while the previous one is
# being checked, so each kill costs the ingest's own run time, not ~1.5 s of interpreter and import start-up
# (which never touches the index anyway).
WARM = """
import sys
from dedup.cli import main
print("ready", file=sys.stderr, flush=True)
sys.stdin.readline()
main(sys.argv[1:], prog_name="dedup")
"""


class Warm:
    def __init__(self, args: list[str]):
        self.p = subprocess.Popen([sys.executable, "-c", WARM, *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  cwd=ARTICLES.parent.parent)
        self.pid = self.p.pid

    def go(self) -> float:
        assert self.p.stdin is not None and self.p.stderr is not None
        assert self.p.stderr.readline().strip() == "ready"  # imports done
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        return time.monotonic()


def test_sigkill_at_many_points_never_corrupts(nights: dict, tmp_path: Path) -> None:
    base, night2 = nights["base"], nights["night2"]
    pre = check_readable(base)
    ref, work = tmp_path / "ref", tmp_path / "work"
    args = lambda idx: ingest_cmd(night2, idx)[3:]  # noqa: E731  ["ingest", batch, "--index", idx, ...]

    # the uninterrupted run: reference state, duration, and when the writer held the index (its lock line)
    shutil.copytree(base, ref)
    shutil.copytree(base, work)
    w = Warm(args(ref))
    t0 = w.go()
    nxt = Warm(args(work))  # as in the kill runs below: the next process starts up meanwhile
    held_from = held_to = None
    while w.p.poll() is None:
        t = time.monotonic() - t0
        holder = (ref / "lock").read_text(errors="replace")
        if held_from is None and f"pid {w.pid} " in holder:
            held_from = t
        elif held_from is not None and held_to is None and f"pid {w.pid} " not in holder:
            held_to = t
        time.sleep(0.003)
    duration = time.monotonic() - t0
    out, err = w.p.communicate()
    assert w.p.returncode == 0, err
    assert held_from is not None
    held_to = held_to or duration
    summary = json.loads(out)
    assert (summary["unchanged"], summary["replaced"], summary["new"]) == (20, 10, 175)
    post, ref_partition, ref_pairs = check_readable(ref), partition(ref), pairs(ref)
    assert post != pre and len(post) == 150 + 175

    # Kill points, stratified: half over the whole run (reading, sketching, writing, commit, exit), half over
    # the part where the writer holds the index (staging files, rewriting, committing) -- the part that matters.
    rng = random.Random(20251121)
    half = KILLS // 2
    delays = [(i + rng.random()) / half * duration for i in range(half)]
    delays += [held_from + (i + rng.random()) / (KILLS - half) * (held_to - held_from) for i in range(KILLS - half)]
    rng.shuffle(delays)
    kills = in_writer = in_a_row = completions = 0
    outcomes = {"pre": 0, "post": 0}
    log = []

    def reset() -> None:
        nonlocal in_a_row
        in_a_row = 0
        shutil.rmtree(work)
        shutil.copytree(base, work)

    def complete() -> None:
        # the same command, as the scheduler would run it again
        nonlocal completions
        res = run(ingest_cmd(night2, work))
        assert res.returncode == 0, res.stderr
        assert check_readable(work) == post
        assert partition(work) == ref_partition and pairs(work) == ref_pairs
        check_clean(work)
        completions += 1
        reset()

    attempt = 0
    while kills < MIN_KILLS or attempt < len(delays) or not outcomes["post"]:
        assert attempt < 2 * KILLS, "the runs keep finishing before the kill"
        # every planned point first; then more random points if some runs finished before their kill, and points
        # past the reference run's commit while no run has got there (a killed run can be slower than the
        # reference, whose commit comes a few tenths of a second before its end)
        if attempt < len(delays):
            delay = delays[attempt]
        elif not outcomes["post"]:
            delay = rng.uniform(held_to, 1.5 * duration)
        else:
            delay = rng.uniform(0, duration)
        attempt += 1
        w = nxt
        started = w.go()
        nxt = Warm(args(work))  # starts up while this one runs and its state is checked
        try:
            w.p.wait(timeout=max(0.0, delay - (time.monotonic() - started)))
            finished = True
        except subprocess.TimeoutExpired:
            # did the writer hold the index? (its lock line names it)
            in_writer += f"pid {w.pid} " in (work / "lock").read_text(errors="replace")
            w.p.send_signal(signal.SIGKILL)
            finished = False
        w.p.communicate()
        kills += not finished
        state = check_readable(work)
        assert state in (pre, post), "the index holds a partial batch"
        outcome = "pre" if state == pre else "post"
        outcomes[outcome] += 1
        log.append(f"{delay:.2f}s:{'done' if finished else 'killed'}:{outcome}")
        in_a_row += 1
        if outcome == "post" and completions:
            reset()  # committed before the kill; re-running it (a no-op) was checked once already
        elif outcome == "post" or in_a_row >= GROUP:
            complete()  # after one or several kills in a row: the same command finishes the batch
    nxt.p.kill()
    nxt.p.communicate()
    if in_a_row:
        complete()
    print(f"\nrun {duration:.2f}s (index held {held_from:.2f}-{held_to:.2f}s); {kills} kills "
          f"({in_writer} while the writer held the index); index states after a kill or finish: {outcomes}; "
          f"{completions} completions\n" + " ".join(log))
    assert kills >= MIN_KILLS
    assert in_writer >= MIN_KILLS // 2 - 2
    assert outcomes["pre"] >= 5  # kills before the commit point ...
    assert outcomes["post"] >= 1  # ... and after it


def test_first_ingest_killed_then_rerun(nights: dict, tmp_path: Path) -> None:
    """A brand-new index whose first ingest dies before the first commit: the leftovers are not 'a directory
    that is not an index' — the next run cleans them up and creates the index."""
    idx = tmp_path / "fresh"
    # simulated leftovers first (deterministic), then real kills at a few points
    (idx / "tables" / "documents").mkdir(parents=True)
    (idx / "tables" / "documents" / "00000000-deadbeef0000.parquet").write_bytes(b"PAR1 truncated")
    (idx / "manifest.json.tmp4242").write_text("{")
    (idx / "lock").write_text("pid 4242 on host since 2025-01-01 00:00:00: dedup ingest x\n")
    with pytest.raises(dedup.IndexProblem, match="not a dedup index"):
        dedup.Index(idx)
    s = dedup.ingest([nights["night1"]], idx, store_signatures=True)
    assert s.new == 150 and s.stale_lock and "pid 4242" in s.stale_lock
    check_clean(idx)
    shutil.rmtree(idx)
    no_manifest = 0
    for offset in (0.0, 0.0, 0.02, 0.3):  # seconds after the writer took the lock (it then creates the index)
        p = popen(ingest_cmd(nights["night1"], idx))
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            lock = idx / "lock"
            if lock.exists() and f"pid {p.pid} " in lock.read_text(errors="replace"):
                time.sleep(offset)
                break
            time.sleep(0.002)
        p.send_signal(signal.SIGKILL)
        p.communicate()
        if (idx / "manifest.json").exists():
            assert check_readable(idx) in (frozenset(), doc_state(nights["base"]))
        else:
            no_manifest += 1
            with pytest.raises(dedup.IndexProblem, match="not a dedup index"):
                dedup.Index(idx)
    assert no_manifest >= 1  # at least one kill hit the creation of the index
    res = run(ingest_cmd(nights["night1"], idx))
    assert res.returncode == 0, res.stderr
    assert check_readable(idx) == doc_state(nights["base"])
    check_clean(idx)
    # but a directory with someone else's files is still refused
    other = tmp_path / "other"
    (other / "tables").mkdir(parents=True)
    (other / "tables" / "notes.txt").write_text("mine")
    with pytest.raises(dedup.IndexProblem, match="not empty"):
        dedup.ingest([nights["night1"]], other, store_signatures=True)


HOLDER = """
import sys, time
import pyarrow as pa
from dedup.store import SCHEMAS, Writer
w = Writer(sys.argv[1], create=False)
# half of a batch: a staged file that is never committed
w.stage("documents", pa.Table.from_pylist([{"doc_id": "half-written"}], schema=SCHEMAS["documents"]))
print("locked", flush=True)
time.sleep(300)
"""


def start_holder(idx: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(idx)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def test_second_writer_refused_and_dead_holder_detected(nights: dict, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    shutil.copytree(nights["base"], idx)
    holder = start_holder(idx)
    try:
        t0 = time.monotonic()
        res = run(ingest_cmd(nights["night2"], idx))
        elapsed = time.monotonic() - t0
        assert res.returncode == 4, res.stderr
        assert f"pid {holder.pid} " in res.stderr and "locked by another writer" in res.stderr
        assert res.stdout == "" and "Traceback" not in res.stderr
        assert elapsed < 15  # fails at once: the lock is never waited for (this is mostly interpreter start-up)
        comp = CliRunner().invoke(main, ["compact", "--index", str(idx)])
        assert comp.exit_code == 4 and f"pid {holder.pid} " in comp.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the holder died with the lock: the kernel released it, the next writer notes it and cleans up
    staged = [p for p in (idx / "staging" / "documents").iterdir() if p.name.startswith("00000002-")]
    assert staged  # the dead holder's half-written file
    res = CliRunner().invoke(main, ["ingest", str(nights["night2"]), "--index", str(idx), "--json",
                                    "--store-signatures"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert f"pid {holder.pid} " in s["stale_lock"] and "did not exit cleanly" in res.stderr
    assert not any(p.exists() for p in staged)
    state = check_readable(idx)
    assert "half-written" not in {d for d, _ in state} and len(state) == 325
    check_clean(idx)
    assert (idx / "lock").read_text() == ""  # a clean exit leaves no holder line


def test_readers_never_blocked_and_see_last_commit(nights: dict, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    shutil.copytree(nights["base"], idx)
    old_reader = dedup.Index(idx)  # opened before any writer: a snapshot of generation 1
    holder = start_holder(idx)
    try:
        cli = [sys.executable, "-m", "dedup.cli"]
        procs = [popen(cli + ["sql", "--index", str(idx), "--format", "json",
                              "SELECT count(*) AS n, count(*) FILTER (doc_id = 'half-written') AS half "
                              "FROM documents"]),
                 popen(cli + ["clusters", "--index", str(idx), "--limit", "3"]),
                 popen(cli + ["stats", "--index", str(idx), "--json"])]
        outs = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
        assert [o[2] for o in outs] == [0, 0, 0], [o[1] for o in outs]
        sim = CliRunner().invoke(main, ["similar", "--index", str(idx), "--id", load_articles()[0]["id"]])
        assert sim.exit_code == 0, sim.output
        assert json.loads(outs[0][0]) == [{"n": 150, "half": 0}]
        assert "cluster " in outs[1][0] or "no clusters" in outs[1][0]
        assert json.loads(outs[2][0])["documents"] == 150 and json.loads(outs[2][0])["batches"] == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # a writer commits while the old reader is open: the writer is not blocked, the reader keeps its snapshot
    res = CliRunner().invoke(main, ["ingest", str(nights["night2"]), "--index", str(idx), "--store-signatures"])
    assert res.exit_code == 0, res.output
    assert old_reader.sql("SELECT count(*) AS n FROM documents")["n"][0].as_py() == 150
    assert old_reader.sql("SELECT count(*) AS n FROM pairs")["n"][0].as_py() >= 0
    assert dedup.Index(idx).sql("SELECT count(*) AS n FROM documents")["n"][0].as_py() == 325
