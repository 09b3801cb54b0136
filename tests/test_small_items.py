"""The smaller everyday items: TSV and other CSV delimiters, DEDUP_INDEX, messages that name the fields there are
and the configured id field, file-level errors never hidden by the cap on row messages."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from dedup.cli import main

from conftest import ARTICLES


def run(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), env=env)
    return res.exit_code, res.stdout, res.stderr


def _write_csv(path: Path, rows: list[dict], delimiter: str) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "title", "text"], delimiter=delimiter, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def test_tsv_files_and_a_chosen_delimiter(tmp_path: Path, articles: list[dict]) -> None:
    tsv = _write_csv(tmp_path / "feed.tsv", articles[:5], "\t")
    code, out, err = run("ingest", str(tsv), "--index", str(tmp_path / "a"), "--json")
    assert code == 0 and json.loads(out)["indexed"] == 5, err
    semi = _write_csv(tmp_path / "feed.csv", articles[5:9], ";")
    code, out, err = run("ingest", str(semi), "--index", str(tmp_path / "b"), "--json", "--delimiter", ";")
    assert code == 0 and json.loads(out)["indexed"] == 4, err
    code, out, _ = run("sql", "--index", str(tmp_path / "b"), "SELECT title FROM documents ORDER BY doc_id",
                       "--format", "json")
    assert sorted(r["title"] for r in json.loads(out)) == sorted(a["title"] for a in articles[5:9])


def test_dedup_index_environment_variable(tmp_path: Path) -> None:
    env = {"DEDUP_INDEX": str(tmp_path / "idx")}
    code, _, err = run("ingest", str(ARTICLES / "seeds"), env=env)
    assert code == 0, err
    code, out, _ = run("stats", "--json", env=env)
    assert code == 0 and json.loads(out)["documents"] == 2
    code, _, err = run("stats")
    assert code == 2 and "DEDUP_INDEX" in err


def test_missing_text_lists_the_fields_and_duplicates_name_the_id_field(tmp_path: Path, articles: list[dict]
                                                                        ) -> None:
    feed = tmp_path / "feed.jsonl"
    a, b = articles[:2]
    feed.write_text("\n".join(json.dumps(r) for r in [
        {"guid": a["id"], "body": a["text"]}, {"guid": b["id"], "content": b["text"], "headline": "x"},
        {"guid": a["id"], "body": b["text"]}]) + "\n", "utf-8")
    code, out, err = run("ingest", str(feed), "--index", str(tmp_path / "i"), "--id-field", "guid",
                         "--text-field", "body", "--json")
    assert code == 3 and json.loads(out)["rejected"] == 2
    assert "field 'body'" in err and "missing_text" in err and "fields: 'guid', 'content', 'headline'" in err
    assert f"field 'guid' (id '{a['id']}') duplicate_id: guid '{a['id']}' already seen at {feed}:1" in err


def test_file_level_errors_are_never_hidden_by_the_message_cap(tmp_path: Path, articles: list[dict]) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a_bad_rows.jsonl").write_text("{broken\n" * 80 + json.dumps(articles[0]) + "\n", "utf-8")
    (tmp_path / "in" / "b_empty.jsonl").write_bytes(b"")
    (tmp_path / "in" / "c_notes.docx").write_bytes(b"PK\x03\x04")
    code, out, err = run("ingest", str(tmp_path / "in"), "--index", str(tmp_path / "i"), "--json")
    assert code == 3 and json.loads(out)["rejected"] == 80
    assert err.count("malformed_json") == 50 and "... and 30 more rejected rows" in err
    assert "b_empty.jsonl: empty_file" in err and "c_notes.docx: unsupported_file" in err


def test_quiet_and_verbose_go_through_logging(tmp_path: Path, articles: list[dict]) -> None:
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps(articles[0]) + "\n{broken\n", "utf-8")
    code, _, err = run("ingest", str(feed), "--index", str(tmp_path / "a"))
    assert code == 3 and "dedup: batch 1: read 2" in err and "malformed_json" in err and "stage seconds" not in err
    code, _, err = run("--quiet", "ingest", str(feed), "--index", str(tmp_path / "b"))
    assert code == 3 and "malformed_json" in err and "batch 1" not in err          # warnings only
    code, _, err = run("-v", "ingest", str(feed), "--index", str(tmp_path / "c"))
    assert code == 3 and "dedup: stage seconds: read+sketch+store" in err and "batch 1" in err


def test_a_first_run_is_told_that_kernels_compile(tmp_path: Path) -> None:
    from dedup.kernel_cache import kernels_cached

    package = tmp_path / "pkg"
    (package / "__pycache__").mkdir(parents=True)
    assert not kernels_cached(package)
    (package / "__pycache__" / "sketch.sketch_kernel-42.py311.nbi").write_bytes(b"x")
    assert kernels_cached(package)
