"""Other tools read the index right: a table folder holds only the files of the last commit (superseded and
staged files live elsewhere), and views.sql names files relative to the index, so a copied or moved index reads
its own files — checked with pyarrow, DuckDB globs and the DuckDB CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import dedup
from dedup.store import compact

from conftest import ARTICLES, load_articles


def _replace_some(tmp_path: Path, idx: Path, note: str = "Updated at noon.") -> None:
    """A batch that replaces 40 documents: clusters are rewritten, documents files lose rows."""
    rows = load_articles()[:40]
    feed = tmp_path / "replaced.jsonl"
    feed.write_text("".join(json.dumps({"id": r["id"], "text": f"{r['text']} {note}"}) + "\n" for r in rows), "utf-8")
    dedup.ingest([feed], idx)


@pytest.fixture(scope="module")
def rewritten(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("folders")
    idx = tmp / "idx"
    dedup.ingest([ARTICLES], idx)
    _replace_some(tmp, idx)
    compact(idx)
    return idx


def test_table_folders_hold_the_current_state_only(rewritten: Path) -> None:
    ix = dedup.Index(rewritten)
    manifest = json.loads((rewritten / "manifest.json").read_text())
    assert manifest["garbage"], "the test needs superseded files"
    for name, files in manifest["tables"].items():
        on_disk = sorted(p.relative_to(rewritten).as_posix() for p in (rewritten / "tables" / name).iterdir())
        assert on_disk == sorted(files), name
    for g in manifest["garbage"]:  # kept for readers of older manifests, out of the way
        assert not (rewritten / g["file"]).exists() and (rewritten / "superseded" / g["file"]).exists()
    want = ix.sql("SELECT count(*) AS n, count(DISTINCT doc_id) AS ids FROM clusters").to_pylist()[0]
    assert want["n"] == want["ids"] == 327
    assert pq.read_table(rewritten / "tables" / "clusters").num_rows == 327                      # pyarrow, pandas
    glob = str(rewritten / "tables" / "documents" / "*.parquet")
    assert duckdb.sql(f"SELECT count(*), count(DISTINCT doc_id) FROM read_parquet('{glob}')").fetchall()[0] == (327, 327)
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}') WHERE text LIKE '%Updated at noon.'"
                      ).fetchall()[0] == (40,)


def test_a_reader_of_an_older_state_follows_its_moved_files(tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    dedup.ingest([ARTICLES], idx)
    old = dedup.Index(idx)
    before = old.sql("SELECT count(*) AS n FROM clusters")["n"][0].as_py()
    _replace_some(tmp_path, idx)  # clusters' file moves to superseded/ under the old reader
    assert old.sql("SELECT count(*) AS n FROM clusters")["n"][0].as_py() == before == 327
    assert old.sql("SELECT count(*) AS n FROM documents WHERE text LIKE '%Updated at noon.'")["n"][0].as_py() == 0


def _duckdb_cli() -> str | None:
    return shutil.which("duckdb") or next((str(p) for p in [Path(sys.executable).parent / "duckdb"] if p.exists()),
                                          None)


def test_views_sql_reads_a_moved_and_a_copied_index(rewritten: Path, tmp_path: Path) -> None:
    original = tmp_path / "original"
    shutil.copytree(rewritten, original)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    views = (copy / "views.sql").read_text()
    assert str(original) not in views and str(rewritten) not in views and "'tables/documents/" in views
    _replace_some(tmp_path, original, "Updated at six.")  # the original changes after the copy was made
    moved = tmp_path / "moved"
    original.rename(moved)
    query = ("SELECT count(*) FILTER (text LIKE '%Updated at noon.'), count(*) FILTER (text LIKE '%Updated at six.'), "
             "count(*) FROM documents;")
    cli = _duckdb_cli()
    for where, want in ((copy, (40, 0, 327)), (moved, (0, 40, 327))):
        if cli:  # the DuckDB CLI, as the README says: cd DIR && duckdb -init views.sql
            out = subprocess.run([cli, "-init", "views.sql", "-csv", "-noheader", "-c", query], cwd=where,
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == ",".join(map(str, want)), out
        con = duckdb.connect()  # from anywhere else: file_search_path names the index
        con.execute(f"SET file_search_path = '{where}'")
        con.execute((where / "views.sql").read_text())
        assert con.sql(query).fetchall()[0] == want
