"""Checksums and `dedup check`; damaged files (garbled, truncated, missing) are an index problem: exit 5, the file
named, a pointer to `dedup check` — for every command, and nothing is written on top of them."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import xxhash
from click.testing import CliRunner

from dedup.cli import main
from dedup.integrity import _READ, _xxh3, file_checksum
from dedup.store import MANIFEST, read_manifest

from conftest import ARTICLES, SEED_COPY, load_articles


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.stdout, res.stderr


def fingerprint(idx: Path) -> dict[str, str]:
    return {p.relative_to(idx).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(idx.rglob("*")) if p.is_file() and p.name != "lock"}


@pytest.fixture()
def idx(sample_index: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "idx"
    shutil.copytree(sample_index, copy)
    return copy


def biggest(idx: Path, table: str) -> str:
    """The listed file of `table` with the most rows (relative path)."""
    files = read_manifest(idx).tables[table]
    return max(files, key=lambda f: pq.ParquetFile(idx / f).metadata.num_rows)


def garble(path: Path, at: int, n: int = 64) -> None:
    b = bytearray(path.read_bytes())
    for i in range(at, min(at + n, len(b))):
        b[i] ^= 0x5A
    path.write_bytes(bytes(b))


def test_every_file_has_a_checksum_and_check_passes(idx: Path) -> None:
    m = read_manifest(idx)
    listed = [f for fs in m.tables.values() for f in fs]
    assert sorted(m.checksums) == sorted(listed)
    for f in listed:
        assert m.checksums[f] == file_checksum(idx / f)
    code, out, err = run("check", "--index", str(idx), "--json")
    r = json.loads(out)
    assert code == 0 and r["ok"] and r["files"] == r["files_with_checksum"] == len(listed) and not r["problems"]


def test_checksum_covers_every_byte_of_a_file_longer_than_one_read(tmp_path: Path) -> None:
    # the hash is fed a block at a time from one reused buffer: a file of several blocks and a part, made of the
    # sample's articles, must hash as its whole content does, and a byte flipped in its last block must show
    data = b"".join(f.read_bytes() for f in sorted(ARTICLES.rglob("*.jsonl")))
    blob = (data * (-(-5 * _READ // 2 // len(data))))[:5 * _READ // 2 + 123]
    path = tmp_path / "blob.bin"
    path.write_bytes(blob)
    assert len(blob) > 2 * _READ and _xxh3(path) == xxhash.xxh3_64(blob).hexdigest()
    path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    assert _xxh3(path) != xxhash.xxh3_64(blob).hexdigest()


def test_flipped_bytes_in_a_bucket_file_are_found_and_not_carried_forward(idx: Path, tmp_path: Path) -> None:
    rel = biggest(idx, "buckets")
    garble(idx / rel, (idx / rel).stat().st_size // 2)
    before = fingerprint(idx)
    code, out, err = run("check", "--index", str(idx), "--json")
    assert code == 5 and [p["file"] for p in json.loads(out)["problems"]] == [rel]
    assert rel in err and "checksum" in err
    night = tmp_path / "night.jsonl"
    night.write_text(json.dumps({"id": "new-1", "text": "A new article about harbour cranes. " * 20}) + "\n")
    for cmd in (["ingest", str(night)], ["compact"], ["upgrade"]):
        code, _, err = run(*cmd, "--index", str(idx))
        assert code == 5, (cmd, err)
        assert rel in err and "dedup check --index" in err, (cmd, err)
    assert fingerprint(idx) == before  # no writer wrote anything on top of the damaged file


@pytest.mark.parametrize("damage", ["truncated", "missing", "garbled_footer"])
def test_damaged_file_is_an_index_problem_for_every_command(idx: Path, tmp_path: Path, damage: str) -> None:
    rel = biggest(idx, "documents")
    path = idx / rel
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "missing":
        path.unlink()
    else:
        garble(path, path.stat().st_size - 200, 150)
    text = tmp_path / "q.txt"
    text.write_text(load_articles()[0]["text"])  # an indexed text: its candidates are read from documents
    for cmd in (["stats"], ["clusters"], ["similar", "--id", SEED_COPY], ["similar", "--text-file", str(text)],
                ["sql", "SELECT count(*) FROM documents"], ["ingest", str(ARTICLES)], ["compact"], ["check"]):
        code, _, err = run(*cmd, "--index", str(idx))
        assert code == 5, (damage, cmd, code, err)
        assert rel in err and "dedup check" in err or cmd == ["check"] and rel in err, (damage, cmd, err)
        assert "internal error" not in err


def test_index_without_checksums_is_checked_for_what_it_has_then_upgraded(idx: Path) -> None:
    m = json.loads((idx / MANIFEST).read_text())
    del m["checksums"]  # as written before checksums existed
    (idx / MANIFEST).write_text(json.dumps(m))
    code, out, _ = run("check", "--index", str(idx), "--json")
    r = json.loads(out)
    assert code == 0 and r["files_with_checksum"] == 0 and r["files"] > 0
    code, _, _ = run("stats", "--index", str(idx))
    assert code == 0
    # a truncated file is still found: its pages do not decode
    rel = biggest(idx, "pairs")
    saved = (idx / rel).read_bytes()
    (idx / rel).write_bytes(saved[: len(saved) - 300])
    code, out, _ = run("check", "--index", str(idx), "--json")
    assert code == 5 and [p["file"] for p in json.loads(out)["problems"]] == [rel]
    (idx / rel).write_bytes(saved)
    code, _, err = run("upgrade", "--index", str(idx))
    assert code == 0, err
    m = read_manifest(idx)
    assert sorted(m.checksums) == sorted(f for fs in m.tables.values() for f in fs)


def test_check_finds_tables_that_disagree(idx: Path) -> None:
    """A clusters file that lost a row (as a faulty writer would leave it, with a matching checksum)."""
    m = json.loads((idx / MANIFEST).read_text())
    rel = biggest(idx, "clusters")
    t = pq.read_table(idx / rel)
    pq.write_table(t.slice(1), idx / rel)
    m["checksums"][rel] = file_checksum(idx / rel)
    (idx / MANIFEST).write_text(json.dumps(m))
    code, out, err = run("check", "--index", str(idx), "--json")
    problems = json.loads(out)["problems"]
    assert code == 5
    assert any("without a cluster row: 1 rows" in p["problem"] for p in problems), problems
