"""Input formats, field mapping and rejections, on real articles from data/."""

from __future__ import annotations

import csv
import gzip
import json
import random
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup.readers import (_CONTROL, _MOJIBAKE_START, FieldMap, InputError, Record, Rejection,
                           checked_texts, easy_rows, expand_paths, plain_texts, read_file, record_texts,
                           validate)

from conftest import ARTICLES, SEED_COPY


def _read(path: Path, fields: FieldMap = FieldMap()) -> tuple[list[Record], list[Rejection]]:
    out = list(read_file(path, fields))
    return [r for r in out if isinstance(r, Record)], [r for r in out if isinstance(r, Rejection)]


def test_txt_seed_takes_date_line_as_published_at_not_text() -> None:
    recs, rej = _read(ARTICLES / "seeds" / f"{SEED_COPY}.txt")
    assert not rej and len(recs) == 1
    r = recs[0]
    assert r.doc_id == SEED_COPY
    assert r.published_at == datetime(2025, 9, 14)
    assert "date 2025" not in r.text and r.text.lstrip().startswith("The United States promised")


def test_same_records_from_jsonl_gz_csv_parquet(tmp_path: Path, articles: list[dict]) -> None:
    rows = articles[::10]
    with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(tmp_path / "a.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    results = {}
    for name in ("a.jsonl.gz", "a.csv", "a.parquet"):
        recs, rej = _read(tmp_path / name)
        assert not rej, rej
        results[name] = [(r.doc_id, r.text, r.title, r.source, r.published_at) for r in recs]
    assert results["a.jsonl.gz"] == results["a.csv"] == results["a.parquet"]
    assert len(results["a.csv"]) == len(rows)
    assert any(r[4] is not None for r in results["a.csv"])


def test_texts_scanned_by_arrow_give_the_records_of_the_python_scans(tmp_path: Path, articles: list[dict]) -> None:
    """Parquet batches and blocks of JSONL lines are scanned for control characters and mojibake by Arrow's RE2;
    rows it finds clean skip the Python scans. Real texts, their mojibake (UTF-8 read as cp1252) and texts with
    C0/C1 controls must give the records and flags that scanning every row in Python gives."""
    rows = []
    for i, r in enumerate(articles[:60]):
        text = r["text"]
        if i % 3 == 1:
            text = text.encode("utf-8").decode("cp1252", errors="ignore")
        elif i % 3 == 2:
            text = text[:50] + ("\x07" if i % 2 else "\x85") + text[50:]
        rows.append({"id": r["id"], "text": text})
    # texts the Arrow checks must leave to Python (blank, no ASCII letter, too long) and one with U+FFFD
    rows += [{"id": "blank", "text": " \u3000\t "}, {"id": "greek", "text": "Αθήνα, ΣΑΣ"},
             {"id": "long", "text": articles[0]["text"] * 40}, {"id": "fffd", "text": "caf\ufffd au lait"}]
    assert plain_texts(pa.array([r["text"] for r in rows])).tolist() == [
        not (_CONTROL.search(r["text"]) or _MOJIBAKE_START.search(r["text"])) for r in rows]
    limit = 50_000
    scanned = [validate(dict(r), FieldMap(), "x", i, limit) for i, r in enumerate(rows, 1)]
    expected = [(r.doc_id, r.text, sorted(r.flags)) if isinstance(r, Record) else r.reason for r in scanned]
    flags = [f for e in expected if isinstance(e, tuple) for f in e[2]]
    assert "mojibake_suspected" in flags and "control_chars_removed" in flags and "has_replacement_char" in flags
    assert expected[-4] == "empty_text" and expected[-2] == "too_long" and expected[-3][0] == "greek"
    with open(tmp_path / "a.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    for name in ("a.jsonl", "a.parquet"):
        got = list(read_file(tmp_path / name, FieldMap(), limit))
        assert [(r.doc_id, r.text, sorted(r.flags)) if isinstance(r, Record) else r.reason for r in got] == expected
    # Parquet texts that pass Arrow's checks stay in their column, the others become Python strings
    got = list(read_file(tmp_path / "a.parquet", FieldMap(), limit))
    assert sum(r.string is None for r in got if isinstance(r, Record)) >= 30
    assert got[-1].string is None and got[-3].string == "Αθήνα, ΣΑΣ"


def test_rows_cleared_by_arrow_give_the_records_validate_gives(tmp_path: Path, articles: list[dict]) -> None:
    """Parquet rows whose fields Arrow's kernels find clean become Records without `validate`; every field's
    awkward values (white space around ids and titles, also Unicode spaces; control characters; empty, blank and
    null values; dates good and bad; aware and naive timestamps) must give what `validate` gives row by row."""
    ids = ["a", " padded ", "", None, "c\x01d", "x" * 2000, "\u3000wide", "tab\tin", "ok.1", "ok 2"]
    optional = ["Plain title", None, "", "  ", " padded ", "tab\tinside", "bell\x07", "\u00a0nbsp", "end\u2029",
                "Café “quoted”"]
    dates = ["2024-01-02", "2024/01/02", "garbage", "", None, "2024-01-02T10:00:00+02:00", "2024-01-02T10:00Z"]
    rows = []
    for i, r in enumerate(articles[:70]):
        text = r["text"] if i % 10 != 1 else r["text"][:40] + "\ufffd" + r["text"][40:]
        row = {"id": ids[i // 3 % len(ids)] if i % 3 == 0 else f"{r['id']}-{i}", "text": text,
               "published_at": dates[i % len(dates)]}
        for k, name in enumerate(("title", "source", "url", "lang")):  # an awkward value in every fifth row
            row[name] = optional[(i // 5 + k) % len(optional)] if (i + k) % 5 == 0 else f"{name} {r['id']}"
        rows.append(row)

    def fields_of(out: list) -> list:
        return [(r.doc_id, r.text, r.title, r.source, r.url, r.published_at, r.lang, r.line, r.flags)
                if isinstance(r, Record) else (r.line, r.field, r.reason) for r in out]

    expected = fields_of([validate(dict(r), FieldMap(), "a.parquet", i, 50_000) for i, r in enumerate(rows, 1)])
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    batch = pa.Table.from_pylist(rows).to_batches()[0]
    easy = easy_rows(batch, FieldMap(), checked_texts(batch.column("text"), 50_000)[1])
    assert 10 <= easy.sum() < len(rows)  # the lane is taken, and not by the awkward rows
    assert fields_of(list(read_file(tmp_path / "a.parquet", FieldMap(), 50_000))) == expected
    assert any(len(e) == 9 and e[2] == "padded" for e in expected)
    assert any(len(e) == 9 and e[8] == ["has_replacement_char"] for e in expected)

    # timestamps (aware and naive) and dates are taken as they are
    when = [datetime(2024, 5, 1, 12, 30), None, datetime(1999, 12, 31)]
    for typ in (pa.timestamp("us"), pa.timestamp("us", tz="Europe/Paris"), pa.date32()):
        values = [w.date() if w and typ == pa.date32() else w for w in when] * 3
        table = pa.table({"id": [r["id"] for r in articles[:9]], "text": [r["text"] for r in articles[:9]],
                          "published_at": pa.array(values, typ)})
        pq.write_table(table, tmp_path / "t.parquet")
        want = fields_of([validate(dict(r), FieldMap(), "t.parquet", i, 50_000)
                          for i, r in enumerate(table.to_pylist(), 1)])
        assert fields_of(list(read_file(tmp_path / "t.parquet", FieldMap(), 50_000))) == want
        assert want[0][5] is not None and want[1][5] is None


def test_field_mapping(tmp_path: Path, articles: list[dict]) -> None:
    p = tmp_path / "feed.jsonl"
    p.write_text("\n".join(json.dumps({"guid": a["id"], "body": a["text"], "headline": a["title"]})
                           for a in articles[:5]), "utf-8")
    recs, rej = _read(p, FieldMap(id="guid", text="body", title="headline"))
    assert not rej and [r.doc_id for r in recs] == [a["id"] for a in articles[:5]]
    assert recs[0].title == articles[0]["title"]


def test_bad_rows_are_rejected_with_file_line_and_field(tmp_path: Path, articles: list[dict]) -> None:
    text = articles[0]["text"]
    lines = [
        json.dumps({"id": "ok-1", "text": text}),
        '{"id": "broken", "text": "unterminated',
        json.dumps({"text": text}),
        json.dumps({"id": "", "text": text}),
        json.dumps({"id": "no-text"}),
        json.dumps({"id": "blank", "text": "   "}),
        json.dumps({"id": ["list"], "text": text}),
        json.dumps({"id": "nul", "text": "a\u0000b " + text}),
        json.dumps([1, 2]),
        json.dumps({"id": 42, "text": text}),
    ]
    p = tmp_path / "mixed.jsonl"
    p.write_text("\n".join(lines) + "\n", "utf-8")
    recs, rej = _read(p)
    assert [r.doc_id for r in recs] == ["ok-1", "42"]
    got = {(r.line, r.reason, r.field) for r in rej}
    assert got == {(2, "malformed_json", None), (3, "missing_id", "id"), (4, "empty_id", "id"),
                   (5, "missing_text", "text"), (6, "empty_text", "text"), (7, "bad_type", "id"),
                   (8, "control_chars", "text"), (9, "malformed_json", None)}
    assert all(r.file == str(p) for r in rej)
    assert "mixed.jsonl:3" in next(r for r in rej if r.line == 3).message()


def test_invalid_utf8_is_repaired_and_flagged(tmp_path: Path, articles: list[dict]) -> None:
    p = tmp_path / "latin1.jsonl"
    line = json.dumps({"id": "x", "text": "caf@@ " + articles[0]["text"]}).encode()
    p.write_bytes(line.replace(b"@@", b"\xe9") + b"\n")
    recs, rej = _read(p)
    assert not rej and recs[0].flags == ["utf8_repaired"] and "caf\ufffd" in recs[0].text


def test_truncated_gzip_keeps_rows_before_the_cut(tmp_path: Path, articles: list[dict]) -> None:
    full = tmp_path / "full.jsonl.gz"
    with gzip.open(full, "wt", encoding="utf-8") as f:
        for a in articles[:50]:
            f.write(json.dumps(a) + "\n")
    cut = tmp_path / "cut.jsonl.gz"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    recs, rej = _read(cut)
    assert 0 < len(recs) < 50
    assert [r.reason for r in rej] == ["truncated_file"] and rej[0].line is None


def test_directory_walk_reports_unsupported_files_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("some text here", "utf-8")
    (tmp_path / "notes.md").write_text("x", "utf-8")
    files, skipped = expand_paths([tmp_path])
    assert [f.name for f in files] == ["a.txt"]
    assert [s.reason for s in skipped] == ["unsupported_file"]
    with pytest.raises(InputError, match="no such file"):
        expand_paths([tmp_path / "missing.jsonl"])


def test_record_texts_keep_record_order_across_columns_and_strings(articles: list[dict]) -> None:
    """Ingest takes a chunk's texts from their Arrow columns (runs of rows sliced) and Python strings."""
    rng = random.Random(1)
    cols = [pa.array([a["text"] for a in articles[k * 40:(k + 1) * 40]]) for k in range(3)]
    for _ in range(200):
        recs = []
        for _ in range(rng.randint(0, 30)):
            if rng.random() < 0.3:
                recs.append(Record("x", None, None, None, None, None, "f", 1, [], rng.choice(articles)["text"][:80]))
            else:
                recs.append(Record("x", None, None, None, None, None, "f", 1, [], None, rng.choice(cols),
                                   rng.randrange(40) if rng.random() < 0.3 else 0))
        assert record_texts(recs).to_pylist() == [r.text for r in recs]
