"""published_at as real feeds write it: read, or dropped and reported (stderr line, count per flag in --json)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

import dedup
from dedup.cli import main
from dedup.dates import parse_date

FEB7 = datetime(2017, 2, 7)
FEB7_10H = datetime(2017, 2, 7, 10, 0)

# (what a feed carries, what is stored: naive UTC)
READ = [
    ("2017/2/7", FEB7),                                   # NewsArticles
    ("2017-2-7", FEB7),
    ("2017-02-07", FEB7),
    ("2017-02-07T12:00:00+02:00", FEB7_10H),              # ISO 8601 with an offset
    ("2017-02-07T10:00:00Z", FEB7_10H),
    ("2017/2/7 10:00", FEB7_10H),
    ("Feb 7, 2017", FEB7),
    ("7 February 2017", FEB7),
    ("Tue, 07 Feb 2017 10:00:00 GMT", FEB7_10H),          # RFC 2822, as in RSS
    ("Tue, 07 Feb 2017 05:00:00 EST", FEB7_10H),
    ("1486461600", FEB7_10H),                             # epoch seconds as a string
    (1486461600, FEB7_10H),                               # ... and as a JSON number
    (1486461600000, FEB7_10H),                            # epoch milliseconds
    ("07.02.2017", FEB7),                                 # dotted: day first
    ("13.02.2017", datetime(2017, 2, 13)),
    ("02/07/2017", FEB7),                                 # slashes, year last: month first (US)
]
REFUSED = ["not a date", "2025/13/45", "March", "Feb 2017", "10:00", 2017, True, "31.02.2017"]


@pytest.mark.parametrize("value,expected", READ)
def test_forms_feeds_carry_are_read(value: object, expected: datetime) -> None:
    assert parse_date(value) == expected


@pytest.mark.parametrize("value", REFUSED)
def test_incomplete_or_impossible_dates_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_date(value)


def test_date_format_is_tried_first() -> None:
    assert parse_date("07/02/2017", "%d/%m/%Y") == FEB7          # without it: 2 July (month first)
    assert parse_date("07/02/2017") == datetime(2017, 7, 2)
    assert parse_date("2017-02-07", "%d/%m/%Y") == FEB7           # the known forms still apply


def _feed(tmp_path: Path, articles: list[dict], dates: list[object]) -> Path:
    path = tmp_path / "feed.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for a, d in zip(articles, dates):
            f.write(json.dumps({"id": a["id"], "text": a["text"], "published_at": d}) + "\n")
    return path


def test_ingest_stores_dates_and_reports_every_dropped_one(tmp_path: Path, articles: list[dict]) -> None:
    dates = [v for v, _ in READ] + ["7th of Feb, around noon", "2017/2/30", "sometime"]
    feed = _feed(tmp_path, articles, dates)
    res = CliRunner().invoke(main, ["ingest", str(feed), "--index", str(tmp_path / "i"), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["flags"]["bad_published_at"] == 3
    assert "published_at of 3 documents" in res.stderr and "feed.jsonl:17: '7th of Feb, around noon'" in res.stderr
    rows = dedup.Index(tmp_path / "i").sql("SELECT doc_id, published_at FROM documents").to_pylist()
    stored = {r["doc_id"]: r["published_at"] for r in rows}
    for a, (_, want) in zip(articles, READ):
        assert stored[a["id"]] == want, a["id"]
    assert [stored[a["id"]] for a in articles[len(READ):len(dates)]] == [None, None, None]


def test_date_format_option_reads_a_feeds_own_form(tmp_path: Path, articles: list[dict]) -> None:
    feed = _feed(tmp_path, articles[:3], ["07/02/2017 - 10h00", "07/02/2017 - 10h00", "2017-02-07"])
    res = CliRunner().invoke(main, ["ingest", str(feed), "--index", str(tmp_path / "i"), "--json",
                                    "--date-format", "%d/%m/%Y - %Hh%M"])
    assert res.exit_code == 0, res.output
    assert "bad_published_at" not in json.loads(res.stdout)["flags"] and "published_at of" not in res.stderr
    got = dedup.Index(tmp_path / "i").sql("SELECT published_at FROM documents ORDER BY doc_id").column(0).to_pylist()
    assert sorted(got) == [FEB7, FEB7_10H, FEB7_10H]


def test_a_time_of_day_is_kept_whatever_parser_reads_it() -> None:
    assert parse_date("March 9, 2017 2:05 PM") == datetime(2017, 3, 9, 14, 5)
    assert parse_date("2016/12/30 7:11") == datetime(2016, 12, 30, 7, 11)   # NewsArticles: a one-digit hour
    assert parse_date("9 Mar 2017 14:05 +0100") == datetime(2017, 3, 9, 13, 5)
