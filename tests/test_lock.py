"""The writer lock holds even when DIR/lock is removed under a running writer: the second writer is refused before
it deletes anything, and the first one commits nothing once its lock file is no longer the one at DIR/lock."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dedup
from dedup.store import SCHEMAS, LockedError, LockLostError, Writer, read_manifest

from conftest import ROOT


@pytest.fixture()
def idx(sample_index: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "idx"
    shutil.copytree(sample_index, copy)
    return copy


def staged_batches_file(w: Writer) -> Path:
    return w.root / w.stage("batches", SCHEMAS["batches"].empty_table())


def test_removed_lock_file_second_writer_refused_first_aborts(idx: Path) -> None:
    before = (idx / "manifest.json").read_bytes()
    w1 = Writer(idx, create=False)
    try:
        staged = staged_batches_file(w1)
        (idx / "lock").unlink()  # an operator's `rm DIR/lock` while the writer runs
        # a second writer, in another process as a nightly job would be: refused, exit 4, nothing deleted
        p = subprocess.run([sys.executable, "-m", "dedup.cli", "compact", "--index", str(idx)],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert p.returncode == 4, p.stderr
        assert "was the lock file removed?" in p.stderr and "Traceback" not in p.stderr
        assert staged.exists()  # the live writer's staged file survived the second writer
        with pytest.raises(LockedError, match="was the lock file removed"):
            Writer(idx, create=False)
        # the first writer notices that DIR/lock is not its file any more: nothing is committed
        with pytest.raises(LockLostError, match="removed or replaced"):
            w1.commit()
        w1.abort()
        assert not staged.exists()
    finally:
        w1.close()
    assert (idx / "manifest.json").read_bytes() == before
    # afterwards a writer works normally (a new lock file is created)
    assert dedup.Index(idx).sql("SELECT count(*) AS n FROM documents")["n"][0].as_py() == 327
    with Writer(idx, create=False) as w:
        w.commit(batch=False)
    assert read_manifest(idx).generation == json.loads(before)["generation"] + 1


def test_replaced_lock_file_aborts_the_commit(idx: Path) -> None:
    before = (idx / "manifest.json").read_bytes()
    with Writer(idx, create=False) as w1:
        staged_batches_file(w1)
        os.replace(idx / "lock", idx / "lock.old")
        (idx / "lock").write_text("someone else\n")
        with pytest.raises(LockLostError):
            w1.commit()
        w1.abort()
    assert (idx / "manifest.json").read_bytes() == before
