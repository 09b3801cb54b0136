"""`dedup sql` and `Index.sql` are read-only and confined to the index's current files: hostile or mistaken
statements are refused with a clear message (exit 2) and leave every byte of the index as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

import dedup
from dedup.cli import main
from dedup.query import SQLRefused


def fingerprint(idx: Path) -> dict[str, str]:
    """sha256 of every file under the index directory (the lock file included)."""
    return {p.relative_to(idx).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(idx.rglob("*")) if p.is_file()}


@pytest.fixture()
def idx(sample_index: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "idx"
    shutil.copytree(sample_index, copy)
    return copy


def hostile(idx: Path, out: Path) -> list[str]:
    a_table_file = next((idx / "tables" / "documents").glob("*.parquet"))
    return [
        f"COPY (SELECT 'x' AS doc_id) TO '{idx / 'manifest.json'}' (FORMAT csv, HEADER false)",
        f"COPY (SELECT * FROM documents LIMIT 1) TO '{a_table_file}' (FORMAT parquet, USE_TMP_FILE false)",
        f"COPY (SELECT 1 AS x) TO '{idx / 'tables' / 'documents' / 'extra.parquet'}' (FORMAT parquet)",
        f"COPY (SELECT 1 AS x) TO '{out / 'elsewhere.csv'}'",
        "SELECT count(*) FROM documents; COPY (SELECT 1 AS x) TO 'relative.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/hostname')",
        f"SELECT * FROM read_text('{idx / 'manifest.json'}')",
        f"SELECT * FROM read_parquet('{idx}/tables/*/*.parquet')",
        "SELECT * FROM glob('/etc/*')",
        f"ATTACH '{out / 'x.duckdb'}' AS x",
        "ATTACH ':memory:' AS m",
        "SET enable_external_access = true",
        "RESET allowed_paths",
        "SET threads = 1",
        "PRAGMA threads = 1",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        f"EXPORT DATABASE '{out / 'export'}'",
        "CREATE TABLE t AS SELECT 1 AS x",
        "DROP VIEW documents",
        "CREATE OR REPLACE VIEW documents AS SELECT 1 AS doc_id",
        "CHECKPOINT",
    ]


def test_hostile_statements_refused_and_index_byte_identical(idx: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    before = fingerprint(idx)
    for q in hostile(idx, out):
        res = CliRunner().invoke(main, ["sql", "--index", str(idx), q])
        assert res.exit_code == 2, (q, res.exit_code, res.output)
        assert isinstance(res.exception, SystemExit) and "Traceback" not in res.stderr, (q, res.exception)
        assert "refused" in res.stderr or "disabled by configuration" in res.stderr, (q, res.stderr)
        assert fingerprint(idx) == before, q
    assert not list(out.iterdir())  # nothing written elsewhere either
    ix = dedup.Index(idx)
    for q in hostile(idx, out):
        with pytest.raises((SQLRefused, duckdb.Error)):
            ix.sql(q)
    assert fingerprint(idx) == before and not list(out.iterdir())
    # the session still works and still sees the real tables
    assert ix.sql("SELECT count(*) AS n FROM documents")["n"][0].as_py() == 327


def test_queries_still_run(idx: Path) -> None:
    for q in ("SELECT count(*) FROM copies", "WITH c AS (SELECT * FROM clusters) SELECT count(*) FROM c",
              "FROM cluster_summary LIMIT 1", "DESCRIBE documents", "SUMMARIZE pairs",
              "SELECT 1 AS a; SELECT 2 AS b"):
        res = CliRunner().invoke(main, ["sql", "--index", str(idx), q, "--format", "json"])
        assert res.exit_code == 0, (q, res.output)
    # similar and clusters register in-memory tables on the confined connection
    ix = dedup.Index(idx)
    text = ix.sql("SELECT text FROM documents LIMIT 1")["text"][0].as_py()
    assert ix.similar(text=text).num_rows >= 1 and ix.clusters().num_rows > 0


def test_output_file_and_explicit_opt_out(idx: Path, tmp_path: Path) -> None:
    before = fingerprint(idx)
    dest = tmp_path / "ids.jsonl"
    res = CliRunner().invoke(main, ["sql", "--index", str(idx), "SELECT doc_id FROM documents ORDER BY doc_id",
                                    "--output", str(dest)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in dest.read_text("utf-8").splitlines()]
    assert len(rows) == 327 and rows == sorted(rows, key=lambda r: r["doc_id"])
    res = CliRunner().invoke(main, ["sql", "--index", str(idx), "SELECT 1 AS x", "--output", str(idx / "x.csv")])
    assert res.exit_code == 2 and "inside the index" in res.stderr and not (idx / "x.csv").exists()
    assert fingerprint(idx) == before
    # the opt-out is a plain DuckDB session: COPY TO works
    csv_out = tmp_path / "n.csv"
    res = CliRunner().invoke(main, ["sql", "--index", str(idx), "--allow-writes",
                                    f"COPY (SELECT count(*) AS n FROM documents) TO '{csv_out}' (HEADER false)"])
    assert res.exit_code == 0, res.output
    assert csv_out.read_text().strip() == "327"
