"""Long-lived readers: `Index.refresh()`, a read that re-resolves the files when an older commit's are gone, and
the grace period before a writer deletes them (DEDUP_GRACE_SECONDS)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import dedup
from dedup.cli import main
from dedup.store import compact

from conftest import load_articles


@pytest.fixture()
def idx(sample_index: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "idx"
    shutil.copytree(sample_index, copy)
    return copy


def count(ix: dedup.Index) -> int:
    return ix.sql("SELECT count(*) AS n FROM documents")["n"][0].as_py()


def one_more(idx: Path, tmp_path: Path) -> None:
    """A nightly batch of one new document (a commit, which collects garbage past the grace period)."""
    night = tmp_path / "night.jsonl"
    night.write_text(json.dumps(dict(load_articles()[0], id="night-1")) + "\n")
    dedup.ingest([night], idx)


def old_files_gone(ix: dedup.Index) -> bool:
    return not all(Path(f).exists() for f in ix.snapshot.files("documents"))


def test_reader_survives_compaction_and_collection(idx: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_GRACE_SECONDS", "0")
    ix, explicit = dedup.Index(idx), dedup.Index(idx)
    assert count(ix) == 327 and explicit.refresh() is False
    compact(idx)
    one_more(idx, tmp_path)
    assert old_files_gone(ix)  # grace 0: the commit deleted what compaction stopped using
    assert count(ix) == 328  # the failed read re-resolved the files of the last commit and ran again
    assert explicit.refresh() is True and not old_files_gone(explicit) and count(explicit) == 328
    assert explicit.refresh() is False


def test_default_grace_keeps_old_files_for_open_readers(idx: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEDUP_GRACE_SECONDS", raising=False)
    ix = dedup.Index(idx)
    compact(idx)
    one_more(idx, tmp_path)
    assert not old_files_gone(ix) and count(ix) == 327  # still the state it opened, within the grace period
    assert ix.refresh() and count(ix) == 328


def test_bad_grace_value_is_a_clear_error(idx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_GRACE_SECONDS", "five minutes")
    res = CliRunner().invoke(main, ["compact", "--index", str(idx)])
    assert res.exit_code == 5 and "DEDUP_GRACE_SECONDS='five minutes'" in res.stderr
