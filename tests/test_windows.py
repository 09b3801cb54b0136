"""Time windows and retention on the real text of data/: the sample's documents dated over two years, each story's
copies 17 days apart (so in a 30-day window a story of three has two linked pairs and one pair too far apart),
pairs in and out of the window, incremental = one-shot, late arrivals, the files a night reads, compaction's time
layout, `dedup retire` with and without --purge, and retire/purge killed at random points.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import load_truth
from test_crash_writers import answers, kill_at_many_points
from test_incremental import all_records, partition_of, table

import dedup
import dedup.batch.plan
import dedup.link
import dedup.windows
import dedup.retire
from dedup.check import check_index
from dedup.cli import main
from dedup.params import Params, ParamsError
from dedup.store import DamagedError, compact, read_manifest
from dedup.windows import DAY, epoch_seconds, meets, periods

WINDOW = 30
START = dt.datetime(2024, 1, 1)


def dated_records() -> list[dict]:
    """Every sample document with a date: a story's base day over two years (from its name), its members 17 days
    apart in id order."""
    truth = load_truth()
    rows = all_records()
    members: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        members.setdefault(truth.get(r["id"], r["id"]), []).append(r["id"])
    for r in rows:
        story = truth.get(r["id"], r["id"])
        base = int(hashlib.sha1(story.encode()).hexdigest(), 16) % 730
        day = START + dt.timedelta(days=base + 17 * members[story].index(r["id"]), hours=9)
        r["published_at"] = day.isoformat()
    return rows


def date_of(rows: list[dict]) -> dict[str, dt.datetime]:
    return {r["id"]: dt.datetime.fromisoformat(r["published_at"]) for r in rows}


def scored(idx: Path) -> set[tuple]:
    t = dedup.Index(idx).sql("SELECT doc_a, doc_b, score, linked FROM pairs")
    return set(zip(*(c.to_pylist() for c in t.columns)))


def ingest(rows: list[dict], idx: Path, window: int | None = WINDOW) -> dedup.ingest.Summary:
    return dedup.ingest([table(rows)], idx, Params(window_days=window) if window else None)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return dated_records()


@pytest.fixture(scope="module")
def one_shot(rows: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    idx = tmp_path_factory.mktemp("w") / "one"
    ingest(rows, idx)
    return idx


@pytest.fixture(scope="module")
def unwindowed(rows: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    idx = tmp_path_factory.mktemp("w") / "all"
    ingest(rows, idx, None)
    return idx


def test_window_keeps_exactly_the_pairs_dated_within_it(rows: list[dict], one_shot: Path, unwindowed: Path) -> None:
    """The window is a property of the pair: the windowed index has the unwindowed index's pairs whose documents
    are at most 30 days apart, and none other."""
    when = date_of(rows)
    near = {p for p in scored(unwindowed) if abs(when[p[0]] - when[p[1]]) <= dt.timedelta(days=WINDOW)}
    far = scored(unwindowed) - near
    assert scored(one_shot) == near
    assert len([p for p in near if p[3]]) >= 15 and len([p for p in far if p[3]]) >= 5  # both kinds exist
    # a story whose first and last copies are too far apart is still one story through the copy between them
    part = partition_of(one_shot)
    assert [p for p in far if p[3] and any({p[0], p[1]} <= g for g in part)]


def test_manifest_records_window_and_file_dates(one_shot: Path, unwindowed: Path) -> None:
    m = json.loads((one_shot / "manifest.json").read_text())
    assert m["params"]["window_days"] == WINDOW and m["params"]["period_days"] == WINDOW
    ranges = m["ranges"]
    assert set(ranges) == set(m["tables"]["buckets"]) - {f for f in m["tables"]["buckets"]
                                                        if pq.ParquetFile(one_shot / f).metadata.num_rows == 0}
    for lo, hi in ranges.values():  # one period a file
        assert lo <= hi and periods(np.array([lo]), WINDOW)[0] == periods(np.array([hi]), WINDOW)[0]
    # without a window the manifest is as before windows existed
    plain = json.loads((unwindowed / "manifest.json").read_text())
    assert "ranges" not in plain and "window_days" not in plain["params"]


def nights_with_late_arrivals(rows: list[dict]) -> list[list[dict]]:
    """Four batches in date order, a tenth of the documents held back to arrive in the last one (up to two years
    late)."""
    rng = random.Random(22)
    ordered = sorted(rows, key=lambda r: r["published_at"])
    late = set(rng.sample(range(len(ordered)), len(ordered) // 10))
    on_time = [r for i, r in enumerate(ordered) if i not in late]
    batches = [on_time[k * len(on_time) // 4:(k + 1) * len(on_time) // 4] for k in range(4)]
    batches[-1] = batches[-1] + [ordered[i] for i in sorted(late)]
    return batches


def test_incremental_with_late_arrivals_equals_one_shot(rows: list[dict], one_shot: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Late arrivals (`nights_with_late_arrivals`): the same pairs, scores and stories as one shot, though the
    nights leave out the rows of the files they read whose documents are outside their window."""
    left_out = []

    def near(*args: object) -> np.ndarray:
        mask = dedup.windows.near(*args)  # type: ignore[arg-type]
        left_out.append(int((~mask).sum()))
        return mask

    monkeypatch.setattr(dedup.batch.plan, "near", near)
    idx = tmp_path / "inc"
    for b in nights_with_late_arrivals(rows):
        ingest(b, idx)
    assert sum(left_out) > 0
    assert scored(idx) == scored(one_shot)
    assert partition_of(idx) == partition_of(one_shot)
    assert not check_index(idx).problems


def test_a_night_opens_only_the_files_of_its_window(rows: list[dict], one_shot: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A night of copies of one month's articles, and a late night of copies of articles a year older: each opens
    only the bucket files dated within the window of its documents, and links each copy to its original."""
    idx = tmp_path / "idx"
    shutil.copytree(one_shot, idx)
    opened: list[str] = []
    read_rows = dedup.link.read_rows
    monkeypatch.setattr(dedup.link, "read_rows", lambda path, numbering: (opened.append(path),
                                                                           read_rows(path, numbering))[1])
    when = date_of(rows)
    long = [r for r in rows if len(r["text"].split()) > 150]
    for month in (START + dt.timedelta(days=600), START + dt.timedelta(days=240)):
        originals = [r for r in long if month <= when[r["id"]] < month + dt.timedelta(days=30)][:4]
        assert originals
        night = [dict(r, id=r["id"] + "@night", published_at=(when[r["id"]] + dt.timedelta(days=3)).isoformat())
                 for r in originals]
        before = read_manifest(idx)
        opened.clear()
        s = ingest(night, idx)
        lo = min(epoch_seconds(when[r["id"]]) for r in originals) + 3 * DAY
        hi = max(epoch_seconds(when[r["id"]]) for r in originals) + 3 * DAY
        near = {str(idx / f) for f in before.tables["buckets"]
                if meets(before.ranges.get(f), lo, hi, WINDOW) and f in before.ranges}
        old = {p for p in opened if "/tables/buckets/" in p and "staging" not in p}
        assert old and old <= near, (len(old), len(near))
        assert len(before.tables["buckets"]) >= 5 * len(near)  # the archive is much larger than the window
        assert s.link_files <= len(near) + len(read_manifest(idx).tables["buckets"]) - len(before.tables["buckets"])
        linked = {(a, b) for a, b, _, ok in scored(idx) if ok}
        assert {(r["id"], r["id"] + "@night") for r in originals} <= linked


def test_a_night_hashes_the_bucket_files_it_reads_and_no_others(rows: list[dict], one_shot: Path,
                                                                 tmp_path: Path) -> None:
    """A writer compares every file it reads with its checksum before reading it, but a night does not read the
    bucket files outside its window, and hashing them grew with the archive: damage there does not stop the
    night (nothing of that file is read or carried) and `dedup check` still finds it; damage in a file of the
    window stops the night before anything is committed, the file named."""
    when = date_of(rows)
    month = START + dt.timedelta(days=600)
    originals = [r for r in rows if len(r["text"].split()) > 150
                 and month <= when[r["id"]] < month + dt.timedelta(days=30)][:4]
    night = [dict(r, id=r["id"] + "@night", published_at=(when[r["id"]] + dt.timedelta(days=3)).isoformat())
             for r in originals]
    lo = min(epoch_seconds(when[r["id"]]) for r in originals) + 3 * DAY
    hi = max(epoch_seconds(when[r["id"]]) for r in originals) + 3 * DAY
    m = read_manifest(one_shot)
    rowful = [f for f in m.tables["buckets"] if f in m.ranges]
    far = next(f for f in rowful if not meets(m.ranges[f], lo, hi, WINDOW))
    near = next(f for f in rowful if meets(m.ranges[f], lo, hi, WINDOW))

    def garbled(rel: str, name: str) -> Path:
        idx = tmp_path / name
        shutil.copytree(one_shot, idx)
        data = bytearray((idx / rel).read_bytes())
        for i in range(len(data) // 2, len(data) // 2 + 64):
            data[i] ^= 0x5A
        (idx / rel).write_bytes(bytes(data))
        return idx

    idx = garbled(far, "far")
    s = ingest(night, idx)
    assert s.new == len(night) and far in read_manifest(idx).tables["buckets"]
    assert [p.file for p in check_index(idx).problems] == [far]
    idx = garbled(near, "near")
    before = (idx / "manifest.json").read_bytes()
    with pytest.raises(DamagedError, match=near):
        ingest(night, idx)
    assert (idx / "manifest.json").read_bytes() == before


def test_window_is_a_parameter_of_the_index(one_shot: Path, unwindowed: Path, tmp_path: Path) -> None:
    extra = [{"id": "x1", "text": "Ice on the runway grounded flights for a day.", "published_at": "2025-01-02"}]
    with pytest.raises(ParamsError, match="window_days"):
        dedup.ingest(extra, one_shot, Params(window_days=60))
    with pytest.raises(ParamsError, match="window_days"):
        dedup.ingest(extra, unwindowed, Params(window_days=30))
    r = CliRunner().invoke(main, ["ingest", "data/articles", "--index", str(tmp_path / "bad"), "--window", "soon"])
    assert r.exit_code == 2 and "30d or 4w" in r.output and not (tmp_path / "bad").exists()
    r = CliRunner().invoke(main, ["ingest", "data/articles", "--index", str(unwindowed), "--window", "4w"])
    assert r.exit_code == 5 and "window_days: index has 0, requested 28" in r.output


def test_compaction_keeps_the_time_layout(rows: list[dict], one_shot: Path, tmp_path: Path) -> None:
    """Several batches leave many small files a period; compaction merges each period's apart, answers stay, and a
    later batch links as it would have without compaction."""
    idx = tmp_path / "idx"
    ordered = sorted(rows[:-20], key=lambda r: r["published_at"])
    for k in range(3):
        ingest(ordered[k::3], idx)
    plain = tmp_path / "plain"
    shutil.copytree(idx, plain)
    before = answers(idx)
    n_before = len(read_manifest(idx).tables["buckets"])
    compact(idx)
    m = read_manifest(idx)
    assert answers(idx) == before
    assert len(m.tables["buckets"]) < n_before
    for f in m.tables["buckets"]:
        if f not in m.ranges:  # the new index's empty placeholder
            assert pq.ParquetFile(idx / f).metadata.num_rows == 0
            continue
        lo, hi = m.ranges[f]
        assert periods(np.array([lo]), WINDOW)[0] == periods(np.array([hi]), WINDOW)[0]
        t = pq.read_table(idx / f, columns=["doc_id"])
        dates = dedup.Index(idx).sql(f"SELECT min(published_at) a, max(published_at) b FROM documents WHERE doc_id IN "
                                     f"(SELECT doc_id FROM read_parquet('{idx / f}'))")
        assert lo <= epoch_seconds(dates["a"][0].as_py()) and epoch_seconds(dates["b"][0].as_py()) <= hi, t.num_rows
    for i in (idx, plain):
        ingest(rows[-20:], i)
    assert scored(idx) == scored(plain) == scored(one_shot)


def test_retire_stops_matching_old_documents(rows: list[dict], one_shot: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    shutil.copytree(one_shot, idx)
    keep = (scored(idx), partition_of(idx), dedup.Index(idx).sql("SELECT count(*) n FROM documents")["n"][0])
    cutoff = START + dt.timedelta(days=365)
    r = CliRunner().invoke(main, ["retire", "--index", str(idx), "--before", "2025-01-01", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    when = date_of(rows)
    old = {d for d, t in when.items() if t < cutoff}
    assert out["documents"] == len(old) and out["bucket_rows"] > 0
    ix = dedup.Index(idx)
    assert ix.sql("SELECT count(*) n FROM buckets b JOIN documents d USING (doc_id) "
                  "WHERE d.published_at < TIMESTAMP '2025-01-01'")["n"][0].as_py() == 0
    assert ix.sql("SELECT count(DISTINCT doc_id) n FROM buckets")["n"][0].as_py() > 0
    assert (scored(idx), partition_of(idx), ix.sql("SELECT count(*) n FROM documents")["n"][0]) == keep
    assert not check_index(idx).problems
    gen = read_manifest(idx).generation  # again: nothing left to retire, no commit
    assert dedup.retire.retire(idx, cutoff).bucket_rows == 0 and read_manifest(idx).generation == gen
    # a late copy of a retired article is not linked to it; of a kept one it is
    long = [x for x in rows if len(x["text"].split()) > 150]
    a = next(x for x in long if when[x["id"]] < cutoff - dt.timedelta(days=40))
    b = next(x for x in long if when[x["id"]] > cutoff + dt.timedelta(days=40))
    ingest([dict(x, id=x["id"] + "@late") for x in (a, b)], idx)
    linked = {(p[0], p[1]) for p in scored(idx) if p[3]}
    assert (b["id"], b["id"] + "@late") in linked and (a["id"], a["id"] + "@late") not in linked


def test_purge_removes_old_documents_and_keeps_stories_consistent(rows: list[dict], one_shot: Path,
                                                                  tmp_path: Path) -> None:
    """After a purge the index holds what an index of the remaining documents holds (pairs, stories), the old
    documents are gone from every table, and each story that lost members has a `purge` event."""
    idx = tmp_path / "idx"
    shutil.copytree(one_shot, idx)
    when = date_of(rows)
    cutoff = START + dt.timedelta(days=400)
    old = {d for d, t in when.items() if t < cutoff}
    stories_before = {d: c for d, c in zip(*(col.to_pylist() for col in dedup.Index(idx).sql(
        "SELECT doc_id, cluster_id FROM clusters WHERE size >= 2").columns))}
    r = CliRunner().invoke(main, ["retire", "--index", str(idx), "--before", cutoff.isoformat(), "--purge"])
    assert r.exit_code == 0, r.output
    fresh = tmp_path / "fresh"
    ingest([x for x in rows if x["id"] not in old], fresh)
    assert scored(idx) == scored(fresh)
    assert partition_of(idx) == partition_of(fresh)
    ix = dedup.Index(idx)
    for t, col in (("documents", "doc_id"), ("buckets", "doc_id"), ("clusters", "doc_id"), ("pairs", "doc_a"),
                   ("pairs", "doc_b")):
        left = set(ix.sql(f"SELECT DISTINCT {col} FROM {t}")[col].to_pylist())
        assert not left & old, t
    hit = {c for d, c in stories_before.items() if d in old}
    ev = ix.sql("SELECT cluster_id, size FROM cluster_events WHERE kind = 'purge'")
    assert set(ev["cluster_id"].to_pylist()) == hit and hit
    assert ix.sql("SELECT inputs FROM batches ORDER BY batch DESC LIMIT 1")["inputs"][0].as_py()[0].endswith("--purge")
    assert not check_index(idx).problems
    # nothing left to retire: nothing changes, no commit
    gen = read_manifest(idx).generation
    r = CliRunner().invoke(main, ["retire", "--index", str(idx), "--before", cutoff.isoformat(), "--purge", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["documents"] == 0 and read_manifest(idx).generation == gen


def test_retire_refuses_a_bad_date(one_shot: Path) -> None:
    r = CliRunner().invoke(main, ["retire", "--index", str(one_shot), "--before", "someday"])
    assert r.exit_code == 2 and "--before" in r.output


@pytest.mark.parametrize("purge", [False, True])
def test_sigkill_retire(one_shot: Path, tmp_path: Path, purge: bool) -> None:
    """Killed at random points, retire and purge leave the index before or after, never between."""
    args = ["retire", "--before", "2025-01-01", *(["--purge"] if purge else [])]

    def state(idx: Path) -> tuple:
        ix = dedup.Index(idx)
        buckets = ix.sql("SELECT count(*) n FROM buckets")["n"][0].as_py()
        return answers(idx), buckets

    out = kill_at_many_points(one_shot, args, tmp_path, state)
    assert out["killed_pre"] >= 3


def copies(x: dict, tag: str, n: int, **changes: str) -> list[dict]:
    """`n` exact copies of the record `x` under new ids (`<id>@<tag><i>`), with `changes`."""
    return [dict(x, id=f"{x['id']}@{tag}{i}", **changes) for i in range(n)]


def old_and_new(rows: list[dict], cutoff: dt.datetime) -> tuple[dict, dict]:
    """A long article dated well before `cutoff` and one well after it."""
    when = date_of(rows)
    long = [x for x in rows if len(x["text"].split()) > 150]
    return (next(x for x in long if when[x["id"]] < cutoff - dt.timedelta(days=40)),
            next(x for x in long if when[x["id"]] > cutoff + dt.timedelta(days=40)))


def pairs_with(idx: Path, tag: str) -> set[tuple[str, str, bool]]:
    return {(a, b, linked) for a, b, _, linked in scored(idx) if tag in a or tag in b}


def with_buckets(idx: Path, tag: str) -> set[str]:
    return set(dedup.Index(idx).sql(f"SELECT DISTINCT doc_id FROM buckets WHERE doc_id LIKE '%{tag}%'")["doc_id"]
               .to_pylist())


@pytest.mark.parametrize("base", ["one_shot", "unwindowed"])
def test_retire_records_its_cutoff_and_later_batches_honour_it(rows: list[dict], base: str, tmp_path: Path,
                                                                request: pytest.FixtureRequest) -> None:
    """Documents dated before a past retire's date that arrive later are indexed without buckets (flagged), so
    they match neither the archive nor each other; newer ones are linked as before. The date survives compaction
    and later batches."""
    idx = tmp_path / "idx"
    shutil.copytree(request.getfixturevalue(base), idx)
    window = WINDOW if base == "one_shot" else None
    cutoff = dt.datetime(2025, 1, 1)
    r = dedup.retire.retire(idx, cutoff)
    assert r.retired_before == "2025-01-01 00:00:00" and r.purged_before == ""
    assert read_manifest(idx).params.retired_before == "2025-01-01 00:00:00"
    a, b = old_and_new(rows, cutoff)
    s = ingest(copies(a, "late", 2) + copies(b, "late", 2), idx, window)
    assert s.flags.get("retired_on_arrival") == 2 and s.rejected == 0 and s.indexed == 4
    assert not pairs_with(idx, f"{a['id']}@")
    late_b = {f"{b['id']}@late{i}" for i in range(2)}
    assert {(x, y) for x, y, linked in pairs_with(idx, f"{b['id']}@") if linked} == {
        (b["id"], f"{b['id']}@late0"), (b["id"], f"{b['id']}@late1"), (f"{b['id']}@late0", f"{b['id']}@late1")}
    assert with_buckets(idx, "@late") == late_b
    flagged = dedup.Index(idx).sql("SELECT doc_id FROM documents WHERE list_contains(flags, 'retired_on_arrival')")
    assert set(flagged["doc_id"].to_pylist()) == {f"{a['id']}@late{i}" for i in range(2)}
    compact(idx)
    assert read_manifest(idx).params.retired_before == "2025-01-01 00:00:00"
    ingest(copies(a, "again", 1) + copies(b, "again", 1), idx, window)
    assert read_manifest(idx).params.retired_before == "2025-01-01 00:00:00"
    assert not pairs_with(idx, f"{a['id']}@") and with_buckets(idx, "@again") == {f"{b['id']}@again0"}
    assert {(x, y) for x, y, linked in pairs_with(idx, "@again") if linked} == {
        (b["id"], f"{b['id']}@again0"), *((f"{b['id']}@again0", x) for x in late_b)}
    assert not check_index(idx).problems


def test_after_a_purge_older_documents_are_rejected(rows: list[dict], one_shot: Path, tmp_path: Path) -> None:
    """A document dated before a past purge's date is rejected (`purged_date`, named on stderr with its file and
    line, counted in --json, exit 3): it does not come back into a purged index."""
    idx = tmp_path / "idx"
    shutil.copytree(one_shot, idx)
    cutoff = START + dt.timedelta(days=400)
    assert CliRunner().invoke(main, ["retire", "--index", str(idx), "--before", "2025-02-04", "--purge"]
                              ).exit_code == 0
    params = read_manifest(idx).params
    assert params.purged_before == params.retired_before == "2025-02-04 00:00:00"
    a, b = old_and_new(rows, cutoff)
    late = tmp_path / "late.jsonl"
    late.write_text("".join(json.dumps(x) + "\n" for x in copies(a, "late", 1) + copies(b, "late", 1)
                            + copies(b, "undated", 1, published_at=None)), "utf-8")
    res = CliRunner().invoke(main, ["ingest", str(late), "--index", str(idx), "--json"])
    assert res.exit_code == 3, res.output
    out = json.loads(res.stdout)
    assert out["rejected"] == 1 and out["rejected_by_reason"] == {"purged_date": 1} and out["indexed"] == 2
    assert f"{late}:1: field 'published_at' (id '{a['id']}@late0') purged_date: " in res.stderr
    ix = dedup.Index(idx)
    assert ix.sql(f"SELECT count(*) n FROM documents WHERE doc_id = '{a['id']}@late0'")["n"][0].as_py() == 0
    rej = ix.sql("SELECT doc_id, line, field, reason FROM rejected WHERE reason = 'purged_date'").to_pylist()
    assert rej == [{"doc_id": f"{a['id']}@late0", "line": 1, "field": "published_at", "reason": "purged_date"}]
    # undated: dated by the batch's start, after the cutoff (and outside the window of the others)
    assert {(x, y) for x, y, linked in pairs_with(idx, "@") if linked} == {(b["id"], f"{b['id']}@late0")}


def test_an_earlier_date_does_not_move_the_cutoff_back(rows: list[dict], one_shot: Path, tmp_path: Path) -> None:
    """The recorded dates only move forward (a later one stays, and the command says so); a purge before the
    retirement date purges up to its own date; a date that moves commits even when no document is old."""
    idx = tmp_path / "idx"
    shutil.copytree(one_shot, idx)
    dedup.retire.retire(idx, dt.datetime(2025, 1, 1))
    gen = read_manifest(idx).generation
    res = CliRunner().invoke(main, ["retire", "--index", str(idx), "--before", "2024-06-01"])
    assert res.exit_code == 0 and "keeps its later cutoff: retired before 2025-01-01 00:00:00" in res.stderr
    assert read_manifest(idx).generation == gen and read_manifest(idx).params.retired_before.startswith("2025-01-01")
    r = dedup.retire.retire(idx, dt.datetime(2024, 6, 1), purge=True)
    assert (r.retired_before, r.purged_before) == ("2025-01-01 00:00:00", "2024-06-01 00:00:00")
    assert r.documents > 0 and read_manifest(idx).generation == gen + 1
    r = dedup.retire.retire(idx, dt.datetime(2023, 1, 1))  # no document that old: the date stays, no commit
    assert r.documents == 0 and read_manifest(idx).generation == gen + 1
    r = dedup.retire.retire(idx, dt.datetime(2025, 1, 2))  # moves on: recorded even if only one day's documents
    assert r.retired_before == "2025-01-02 00:00:00" and read_manifest(idx).generation == gen + 2
    a = next(x for x in rows if len(x["text"].split()) > 150)
    s = ingest([dict(a, id="purged", published_at="2024-03-01"), dict(a, id="retired", published_at="2024-09-01"),
                dict(a, id="kept", published_at="2025-03-01")], idx)
    assert [x.doc_id for x in s.rejections] == ["purged"] and s.flags.get("retired_on_arrival") == 1
    assert with_buckets(idx, "kept") == {"kept"} and not with_buckets(idx, "retired")


def test_retirement_dates_are_recorded_parameters() -> None:
    """Normalised to UTC text, left out of a manifest that has none, and not compared when a caller leaves them
    unset (only `dedup retire` moves them)."""
    p = Params(retired_before="2025-01-01T02:00:00+02:00", purged_before="2024-06-01")
    assert (p.retired_before, p.purged_before) == ("2025-01-01 00:00:00", "2024-06-01 00:00:00")
    assert "retired_before" not in Params().manifest_dict() and p.manifest_dict()["purged_before"] == p.purged_before
    p.check_requested(Params().to_dict())
    with pytest.raises(ParamsError, match="retired_before at or after"):
        Params(retired_before="2024-01-01", purged_before="2024-06-01")
    with pytest.raises(ParamsError, match="ISO date"):
        Params(retired_before="last year")
