"""The Python API as a caller meets it: one path is one input, DataFrames and dicts are inputs, errors form one
family without shadowing builtins, Index closes as a context manager, an unknown id raises DocumentNotFound."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pytest

import dedup

from conftest import ARTICLES, SEED_COPY, SEED_ORIGINAL


def _ids(idx: Path) -> set[str]:
    with dedup.Index(idx) as ix:
        return set(ix.sql("SELECT doc_id FROM documents")["doc_id"].to_pylist())


def test_a_string_or_path_is_one_input(tmp_path: Path) -> None:
    for i, one in enumerate([str(ARTICLES / "seeds"), ARTICLES / "seeds"]):
        s = dedup.ingest(one, tmp_path / f"i{i}")
        assert s.indexed == 2 and _ids(tmp_path / f"i{i}") == {SEED_ORIGINAL, SEED_COPY}
    with pytest.raises(dedup.InputError, match="no such file"):
        dedup.ingest(str(tmp_path / "nope.jsonl"), tmp_path / "i2")
    assert not (tmp_path / "i2").exists()


def test_dataframes_and_dicts_are_inputs(tmp_path: Path, articles: list[dict]) -> None:
    rows = [{"id": a["id"], "text": a["text"], "title": a.get("title"), "published_at": "2017/2/7"}
            for a in articles[:30]]
    sources = {"pandas": pd.DataFrame(rows[:10]), "polars": pl.DataFrame(rows[10:20]), "dicts": rows[20:]}
    for name, src in sources.items():
        s = dedup.ingest(src, tmp_path / name)
        assert s.indexed == 10 and s.rejected == 0, name
        with dedup.Index(tmp_path / name) as ix:
            got = ix.sql("SELECT doc_id, title, published_at FROM documents ORDER BY doc_id").to_pylist()
        want = sorted((r for r in rows if r["id"] in {g["doc_id"] for g in got}), key=lambda r: r["id"])
        assert [g["doc_id"] for g in got] == [r["id"] for r in want] and len(got) == 10
        assert [g["title"] for g in got] == [r["title"] for r in want]
        assert {g["published_at"].isoformat() for g in got} == {"2017-02-07T00:00:00"}
    bad = dedup.ingest([{"id": "x"}, {"text": "no id"}, rows[0]], tmp_path / "bad")   # rejected, not raised
    assert (bad.indexed, bad.rejected) == (1, 2)
    assert [r.reason for r in bad.rejections] == ["missing_text", "missing_id"]
    with pytest.raises(dedup.InputError, match="cannot ingest a int"):
        dedup.ingest([ARTICLES / "seeds", 42], tmp_path / "never")


def test_errors_are_one_family_and_shadow_no_builtin(tmp_path: Path, sample_index: Path) -> None:
    assert not hasattr(dedup, "IndexError") and not hasattr(dedup, "LockedError")
    for name in ("InputError", "IndexProblem", "IndexNotFound", "IndexLocked", "DocumentNotFound", "ParamsError",
                 "StrictError"):
        assert issubclass(getattr(dedup, name), dedup.DedupError), name
    assert set(dedup.__all__) <= set(dir(dedup))
    with pytest.raises(dedup.IndexNotFound, match="no such index"):
        dedup.Index(tmp_path / "missing")
    with pytest.raises(dedup.DocumentNotFound, match="no document with id 'unknown'") as e:
        dedup.Index(sample_index).similar("unknown")
    assert isinstance(e.value, KeyError)


def test_index_is_a_context_manager(sample_index: Path) -> None:
    with dedup.Index(sample_index) as ix:
        assert ix.sql("SELECT count(*) AS n FROM documents")["n"][0].as_py() == 327
    with pytest.raises(Exception, match="(?i)closed"):
        ix.sql("SELECT 1")
