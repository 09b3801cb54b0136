"""Bad input never crashes ingestion and never loses a row silently; failed runs leave the index unchanged.

- the committed corpus tests/nasty/files/ (real articles + broken bits) against tests/nasty/EXPECTED.json;
- --strict, full disk, read-only, bad index paths: exit codes and an index that is byte-for-byte unchanged;
- ids that break string-built SQL;
- hypothesis: random bytes and random JSON through the readers, and a few through a full ingest, checking that
  every non-blank line ends as exactly one document or one rejection.
"""

from __future__ import annotations

import builtins
import errno
import gzip
import hashlib
import io
import json
import os
import shutil
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dedup
from dedup.cli import main
from dedup.readers import DEFAULT_MAX_CHARS, MAX_ID_CHARS, FieldMap, Record, Rejection, read_file, validate
from dedup.store import Writer

from conftest import load_articles

NASTY = Path(__file__).resolve().parent / "nasty"
FILES = NASTY / "files"
EXPECTED = json.loads((NASTY / "EXPECTED.json").read_text("utf-8"))

REASONS = {"malformed_json", "malformed_csv", "missing_id", "empty_id", "bad_type", "control_chars", "missing_text",
           "empty_text", "too_long", "no_words", "duplicate_id", "empty_file", "truncated_file", "unreadable_file",
           "wrong_format", "unsupported_file"}
FLAGS = {"utf8_repaired", "has_replacement_char", "control_chars_removed", "mojibake_suspected", "bad_title",
         "bad_source", "bad_url", "bad_lang", "bad_published_at"}
# derandomize: the same examples on every run, so that CI never fails on an input no earlier run tried
SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.stdout, res.stderr


def index_state(idx: Path, rows: bool = True) -> tuple[bytes, dict[str, str], dict[str, list]]:
    """Everything a reader can see: the manifest bytes, the bytes of every listed file, every table's rows
    (implied by the first two; `rows=False` skips reading them)."""
    manifest = (idx / "manifest.json").read_bytes()
    listed = {f for files in json.loads(manifest)["tables"].values() for f in files}
    digests = {f: hashlib.sha256((idx / f).read_bytes()).hexdigest() for f in sorted(listed)}
    if not rows:
        return manifest, digests, {}
    ix = dedup.Index(idx)
    rows = {t: sorted(json.dumps(r, sort_keys=True, default=str) for r in ix.table(t).to_pylist())
            for t in json.loads(manifest)["tables"]}
    return manifest, digests, rows


def assert_valid_index(idx: Path) -> dict:
    """The index opens, every query works and the tables agree with each other."""
    ix = dedup.Index(idx)
    docs = ix.sql("SELECT doc_id FROM documents")["doc_id"].to_pylist()
    assert len(docs) == len(set(docs))
    assert sorted(ix.sql("SELECT doc_id FROM clusters")["doc_id"].to_pylist()) == sorted(docs)
    for t in ("buckets", "signatures"):
        orphans = ix.sql(f"SELECT count(*) AS n FROM {t} WHERE doc_id NOT IN (SELECT doc_id FROM documents)")
        assert orphans["n"][0].as_py() == 0
    ix.sql("SELECT * FROM cluster_summary"), ix.sql("SELECT * FROM copies")
    return ix.stats()


def rel(path: str) -> str:
    return Path(path).relative_to(FILES).as_posix()


# ---------------------------------------------------------------------------------------------------------------
# the committed corpus


@pytest.fixture(scope="module")
def nasty_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """tests/nasty/files ingested as one batch into an index whose path has spaces, non-ASCII and a quote."""
    idx = tmp_path_factory.mktemp("nasty") / "índice con espacios 'q'"
    code, out, err = run("ingest", str(FILES), "--index", str(idx), "--json", "--max-chars", str(EXPECTED["max_chars"]))
    assert code == 3, err
    return idx, json.loads(out), err


def test_corpus_matches_expected_exactly(nasty_index: tuple[Path, dict, str]) -> None:
    idx, summary, _ = nasty_index
    ix = dedup.Index(idx)
    got: dict[str, dict] = defaultdict(lambda: {"indexed": [], "rejected": []})
    for d in ix.sql("SELECT doc_id, file, line FROM documents ORDER BY file, line").to_pylist():
        got[rel(d["file"])]["indexed"].append(d["doc_id"])
    for r in ix.sql("SELECT file, line, reason FROM rejected").to_pylist():
        got[rel(r["file"])]["rejected"].append([r["line"], r["reason"]])
    assert sorted(got) == sorted(EXPECTED["files"])
    for name, want in EXPECTED["files"].items():
        assert got[name]["indexed"] == want["indexed"], name
        key = lambda lr: (lr[0] or 0, lr[1])  # noqa: E731
        assert sorted(got[name]["rejected"], key=key) == sorted(want["rejected"], key=key), name
    flags = {d["doc_id"]: sorted(d["flags"]) for d in ix.sql("SELECT doc_id, flags FROM documents").to_pylist()}
    assert flags == {k: sorted(v) for k, v in EXPECTED["flags"].items()}


def test_corpus_summary_reconciles(nasty_index: tuple[Path, dict, str]) -> None:
    idx, s, _ = nasty_index
    want_rows = [lr for f in EXPECTED["files"].values() for lr in f["rejected"] if lr[0] is not None]
    want_files = [lr for f in EXPECTED["files"].values() for lr in f["rejected"] if lr[0] is None]
    indexed = sum(len(f["indexed"]) for f in EXPECTED["files"].values())
    assert (s["indexed"], s["rejected"], s["file_errors"], s["unchanged"]) == (indexed, len(want_rows),
                                                                               len(want_files), 0)
    assert s["read"] == s["indexed"] + s["rejected"] + s["unchanged"]
    assert s["new"] + s["replaced"] == s["indexed"]
    assert s["rejected_by_reason"] == dict(Counter(r for f in EXPECTED["files"].values() for _, r in f["rejected"]))
    st_ = assert_valid_index(idx)
    assert st_["documents"] == indexed and st_["rejected"] == len(want_rows) + len(want_files)
    batch = dedup.Index(idx).sql("SELECT read, new, rejected FROM batches").to_pylist()
    assert batch == [{"read": s["read"], "new": s["new"], "rejected": s["rejected"]}]


def test_corpus_every_jsonl_line_is_accounted_for(nasty_index: tuple[Path, dict, str]) -> None:
    """For JSON Lines files read to the end: each non-blank line is exactly one document or one rejection."""
    idx, _, _ = nasty_index
    ix = dedup.Index(idx)
    seen: dict[str, list[int]] = defaultdict(list)
    for r in ix.sql("SELECT file, line FROM documents UNION ALL SELECT file, line FROM rejected WHERE line IS NOT "
                    "NULL").to_pylist():
        seen[rel(r["file"])].append(r["line"])
    checked = 0
    for name, want in EXPECTED["files"].items():
        if not name.endswith((".jsonl", ".ndjson")) or any(line is None for line, _ in want["rejected"]):
            continue
        data = (FILES / name).read_bytes().removeprefix(b"\xef\xbb\xbf")
        lines = [i for i, b in enumerate(data.split(b"\n"), start=1) if b.strip()]
        assert sorted(seen[name]) == lines, name
        checked += 1
    assert checked >= 5


def test_corpus_messages_are_one_line_each_with_file_line_and_reason(nasty_index: tuple[Path, dict, str]) -> None:
    _, s, err = nasty_index
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.startswith("dedup: rejected: ")]
    assert len(lines) == min(50, s["rejected"] + s["file_errors"])
    for x in lines:
        assert str(FILES) in x and any(f" {r}: " in x for r in REASONS), x
    assert any("good_and_bad.jsonl:3: malformed_json" in x for x in lines)
    assert any("good_and_bad.jsonl:19: field 'text' (id 'nasty-nul') control_chars" in x for x in lines)
    assert any("not_gzip.jsonl.gz: wrong_format" in x for x in lines)


def test_corpus_reingest_changes_nothing(nasty_index: tuple[Path, dict, str], tmp_path: Path) -> None:
    idx, first, _ = nasty_index
    copy = tmp_path / "copy"
    shutil.copytree(idx, copy)
    code, out, _ = run("ingest", str(FILES), "--index", str(copy), "--json", "--max-chars",
                       str(EXPECTED["max_chars"]))
    s = json.loads(out)
    assert code == 3
    assert (s["indexed"], s["unchanged"], s["rejected"], s["file_errors"]) == (0, first["indexed"], first["rejected"],
                                                                              first["file_errors"])
    assert s["read"] == s["indexed"] + s["rejected"] + s["unchanged"]
    assert assert_valid_index(copy)["documents"] == first["indexed"]


def test_gigantic_text_obeys_max_chars(tmp_path: Path) -> None:
    code, out, err = run("ingest", str(FILES / "gigantic.jsonl"), "--index", str(tmp_path / "a"), "--json",
                         "--max-chars", "20000")
    assert code == 3 and json.loads(out)["rejected_by_reason"] == {"too_long": 1} and "> limit 20,000" in err
    code, out, _ = run("ingest", str(FILES / "gigantic.jsonl"), "--index", str(tmp_path / "b"), "--json")
    assert code == 0 and json.loads(out)["indexed"] == 3  # the default limit is generous
    code, _, err = run("ingest", str(FILES / "gigantic.jsonl"), "--index", str(tmp_path / "c"), "--max-chars", "0")
    assert code == 2 and "Traceback" not in err and not (tmp_path / "c").exists()


# ---------------------------------------------------------------------------------------------------------------
# SQL built from user input


def test_ids_with_quotes_and_sql_are_parameters(nasty_index: tuple[Path, dict, str]) -> None:
    idx, s, _ = nasty_index
    for doc_id, other in (("o'brien", "' OR '1'='1"), ('x"; DROP TABLE documents; --', "o'brien"),
                          ("' OR '1'='1", "o'brien")):
        code, out, err = run("similar", "--index", str(idx), "--id", doc_id, "--format", "jsonl")
        assert code == 0, err
        found = [json.loads(x) for x in out.splitlines()]
        assert doc_id not in [f["doc_id"] for f in found] and other in [f["doc_id"] for f in found]
        assert next(f for f in found if f["doc_id"] == other)["linked"]
    code, _, err = run("similar", "--index", str(idx), "--id", "Robert'); DROP TABLE students;--")
    assert code == 0, err
    for probe in ("nasty-001' OR '1'='1", "' OR 1=1 --", "'; DROP TABLE documents; --", '"'):
        code, _, err = run("similar", "--index", str(idx), "--id", probe)
        assert code == 2 and "not found" in err and "Traceback" not in err
    ix = dedup.Index(idx)
    assert ix.sql("SELECT count(*) AS n FROM documents")["n"][0].as_py() == s["indexed"]
    got = ix.sql("SELECT doc_id FROM documents WHERE doc_id = $i", {"i": "o'brien"})["doc_id"].to_pylist()
    assert got == ["o'brien"]


# ---------------------------------------------------------------------------------------------------------------
# failed runs: --strict, full disk, read-only, bad index paths


@pytest.fixture(scope="module")
def base_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small committed index (two batches) that failure tests copy and try to change."""
    idx = tmp_path_factory.mktemp("base") / "idx"
    arts = load_articles()
    root = tmp_path_factory.mktemp("base_in")
    (root / "one.jsonl").write_text("".join(json.dumps(a) + "\n" for a in arts[:30]), "utf-8")
    (root / "two.jsonl").write_text("".join(json.dumps(a) + "\n" for a in arts[30:40] + arts[-6:]), "utf-8")
    assert run("ingest", str(root / "one.jsonl"), "--index", str(idx))[0] == 0
    assert run("ingest", str(root / "two.jsonl"), "--index", str(idx))[0] == 0
    return idx


@pytest.fixture()
def index_copy(base_index: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy of idx é"
    shutil.copytree(base_index, copy)
    return copy


@pytest.fixture(scope="module")
def new_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good input that adds, replaces and links documents (so every table gets written)."""
    arts = load_articles()
    f = tmp_path_factory.mktemp("new") / "new rows.jsonl"
    changed = dict(arts[0], text=arts[0]["text"] + " Updated.")
    f.write_text("".join(json.dumps(a) + "\n" for a in [changed] + arts[40:46] + arts[-10:-6]), "utf-8")
    return f


def test_strict_stops_at_first_bad_row_and_commits_nothing(index_copy: Path) -> None:
    before = index_state(index_copy)
    code, out, err = run("ingest", str(FILES), "--index", str(index_copy), "--strict")
    assert code == 6 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "--strict: stopped at" in err and "nothing from this batch was committed" in err
    assert index_state(index_copy) == before
    # a bad row in the middle of good ones, one file: named with its line
    f = index_copy.parent / "one bad row.jsonl"
    arts = load_articles()
    f.write_text(json.dumps(arts[100]) + "\n{broken\n" + json.dumps(arts[101]) + "\n", "utf-8")
    code, _, err = run("ingest", str(f), "--index", str(index_copy), "--strict")
    assert code == 6 and f"{f}:2: malformed_json" in err
    assert index_state(index_copy) == before
    # strict with clean input commits normally
    good = index_copy.parent / "good.jsonl"
    good.write_text(json.dumps(arts[100]) + "\n", "utf-8")
    code, out, _ = run("ingest", str(good), "--index", str(index_copy), "--strict", "--json")
    assert code == 0 and json.loads(out)["new"] == 1


def test_strict_on_a_new_index_leaves_no_documents(tmp_path: Path) -> None:
    idx = tmp_path / "fresh"
    code, _, _ = run("ingest", str(FILES), "--index", str(idx), "--strict")
    assert code == 6
    if (idx / "manifest.json").exists():
        st_ = assert_valid_index(idx)
        assert (st_["documents"], st_["batches"], st_["rejected"]) == (0, 0, 0)
    code, _, _ = run("ingest", str(FILES / "dated.txt"), "--index", str(idx))
    assert code == 0 and assert_valid_index(idx)["documents"] == 1


class FailingWrites:
    """Make the n-th write-like call (Parquet write, fsync, rename) fail with `err`, as a full or read-only disk
    would. Records whether the manifest had already been renamed into place (the commit point) at that moment."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int | None, err: int = errno.ENOSPC):
        self.calls, self.fail_at, self.err, self.committed, self.failed_after_commit = 0, fail_at, err, False, None
        self.real = {"write_table": pq.write_table, "fsync": os.fsync, "replace": os.replace}
        monkeypatch.setattr(pq, "write_table", self._wrap("write_table"))
        monkeypatch.setattr(os, "fsync", self._wrap("fsync"))
        monkeypatch.setattr(os, "replace", self._wrap("replace"))

    def _wrap(self, name: str):  # noqa: ANN202
        def call(*args: object, **kwargs: object) -> object:
            self.calls += 1
            if self.calls == self.fail_at:
                self.failed_after_commit = self.committed
                target = str(args[1]) if name in ("write_table", "replace") and len(args) > 1 else None
                raise OSError(self.err, os.strerror(self.err), target)
            result = self.real[name](*args, **kwargs)
            if name == "replace" and str(args[1]).endswith("manifest.json"):
                self.committed = True
            return result
        return call


def _count_write_calls(monkeypatch: pytest.MonkeyPatch, idx: Path, rows: Path) -> tuple[int, int]:
    """(write-like calls of a successful ingest, the call number of the manifest rename)."""
    probe = idx.parent / "probe"
    shutil.copytree(idx, probe)
    with monkeypatch.context() as m:
        fw = FailingWrites(m, None)
        commit_at = {}
        real_replace = fw.real["replace"]

        def replace(src: object, dst: object) -> None:
            if str(dst).endswith("manifest.json"):
                commit_at["n"] = fw.calls
            real_replace(src, dst)
        fw.real["replace"] = replace
        code, _, err = run("ingest", str(rows), "--index", str(probe))
        assert code == 0, err
    shutil.rmtree(probe)
    return fw.calls, commit_at["n"]


def test_full_disk_at_every_write_before_commit_leaves_index_unchanged(
        monkeypatch: pytest.MonkeyPatch, base_index: Path, new_rows: Path, tmp_path: Path) -> None:
    total, commit_at = _count_write_calls(monkeypatch, base_index, new_rows)
    assert total >= 10 and commit_at <= total
    before = index_state(base_index)
    present = sorted(p.relative_to(base_index) for p in (base_index / "tables").rglob("*.parquet"))  # with garbage
    idx = tmp_path / "idx"
    for n in range(1, commit_at + 1):
        shutil.copytree(base_index, idx)
        with monkeypatch.context() as m:
            fw = FailingWrites(m, n, errno.ENOSPC if n % 2 else errno.EROFS)
            code, out, err = run("ingest", str(new_rows), "--index", str(idx), "--json")
        assert fw.calls >= n and not fw.failed_after_commit
        assert code == 7, (n, err)
        assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
        assert "the index is unchanged" in err and os.strerror(fw.err) in err
        full = n in (1, commit_at)  # same manifest and same file bytes imply same rows; read them twice anyway
        assert index_state(idx, rows=full) == (before if full else before[:2] + ({},)), n
        # at most the one file whose write failed is left (store: an fsync failure orphans it), and the next
        # writer to open the index removes it
        left = set((idx / "tables").rglob("*.parquet")) - {idx / p for p in present}
        assert len(left) <= 1, left
        with Writer(idx):
            pass
        assert set((idx / "tables").rglob("*.parquet")) == {idx / p for p in present}
        shutil.rmtree(idx)
    # and the index still takes the batch afterwards
    shutil.copytree(base_index, idx)
    code, out, _ = run("ingest", str(new_rows), "--index", str(idx), "--json")
    assert code == 0 and json.loads(out)["replaced"] == 1


def test_full_disk_after_the_manifest_rename_is_not_reported_as_a_failure(
        monkeypatch: pytest.MonkeyPatch, base_index: Path, new_rows: Path, tmp_path: Path) -> None:
    total, commit_at = _count_write_calls(monkeypatch, base_index, new_rows)
    before = index_state(base_index)
    idx = tmp_path / "idx"
    for n in range(commit_at + 1, total + 1):
        shutil.copytree(base_index, idx)
        with monkeypatch.context() as m:
            FailingWrites(m, n)
            code, _, err = run("ingest", str(new_rows), "--index", str(idx))
        if code == 7:
            assert index_state(idx) == before, n
        else:
            assert code == 0, err
            assert assert_valid_index(idx)["batches"] == 3
        shutil.rmtree(idx)


def test_read_only_index(monkeypatch: pytest.MonkeyPatch, index_copy: Path, new_rows: Path) -> None:
    """Every attempt to create, change or delete something under the index fails with EROFS."""
    before = index_state(index_copy)
    root = str(index_copy.resolve())
    inside = lambda p: isinstance(p, (str, bytes, os.PathLike)) and os.fsdecode(p).startswith(root)  # noqa: E731

    def deny(real, path_arg: int = 0, check=lambda *a, **k: True):  # noqa: ANN001, ANN202
        def call(*args: object, **kwargs: object) -> object:
            path = args[path_arg] if len(args) > path_arg else None
            if inside(path) and check(*args, **kwargs):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
            return real(*args, **kwargs)
        return call

    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    monkeypatch.setattr(os, "open", deny(os.open, check=lambda p, flags, *a, **k: flags & writes))
    writing = lambda p, mode="r", *a, **k: any(c in mode for c in "wax+")  # noqa: E731
    monkeypatch.setattr(builtins, "open", deny(builtins.open, check=writing))
    monkeypatch.setattr(io, "open", deny(io.open, check=writing))
    for name in ("replace", "rename", "unlink", "remove", "mkdir", "rmdir"):
        monkeypatch.setattr(os, name, deny(getattr(os, name)))
    monkeypatch.setattr(pq, "write_table", deny(pq.write_table, path_arg=1))
    code, out, err = run("ingest", str(new_rows), "--index", str(index_copy), "--json")
    monkeypatch.undo()
    assert code == 7, err
    assert out == "" and err.count("\n") == 1 and "Read-only file system" in err and "Traceback" not in err
    assert index_state(index_copy) == before


def test_bad_index_paths(tmp_path: Path, index_copy: Path) -> None:
    src = str(FILES / "dated.txt")
    # a regular file
    (tmp_path / "a file").write_text("x")
    code, _, err = run("ingest", src, "--index", str(tmp_path / "a file"))
    assert code in (2, 5) and "Traceback" not in err and (tmp_path / "a file").read_text() == "x"
    # a directory that is not an index: refused, nothing added
    other = tmp_path / "not an index ü"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = run("ingest", src, "--index", str(other))
    assert code == 5 and "not a dedup index" in err and sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    # missing for queries
    for cmd in (["stats"], ["clusters"], ["similar", "--id", "x"], ["sql", "SELECT 1"]):
        code, _, err = run(*cmd, "--index", str(tmp_path / "missing"))
        assert code == 5 and "no such index" in err and "Traceback" not in err
    assert not (tmp_path / "missing").exists()
    # a damaged manifest: refused, left as it is
    (index_copy / "manifest.json").write_text("{not json")
    code, _, err = run("ingest", src, "--index", str(index_copy))
    assert code == 5 and "manifest" in err and "Traceback" not in err
    assert (index_copy / "manifest.json").read_text() == "{not json"


def test_missing_and_unsupported_input_paths(tmp_path: Path, index_copy: Path) -> None:
    before = index_state(index_copy)
    (tmp_path / "notes.md").write_text("x")
    for path, msg in ((tmp_path / "nope.jsonl", "no such file"), (tmp_path / "notes.md", "unsupported file type")):
        code, _, err = run("ingest", str(path), "--index", str(index_copy))
        assert code == 2 and msg in err and "Traceback" not in err
    assert index_state(index_copy) == before


def test_broken_symlink_in_a_directory_is_reported(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(FILES / "dated.txt", d / "dated.txt")
    (d / "gone.jsonl").symlink_to(tmp_path / "does-not-exist.jsonl")
    code, out, err = run("ingest", str(d), "--index", str(tmp_path / "idx"), "--json")
    s = json.loads(out)
    assert code == 3 and s["indexed"] == 1 and s["rejected_by_reason"] == {"unreadable_file": 1}
    assert "gone.jsonl: unreadable_file: broken symbolic link" in err


def test_undecodable_file_name_is_read(tmp_path: Path) -> None:
    """A file name that is not UTF-8 (Latin-1 bytes): read, reported with U+FFFD in place of the bad byte."""
    d = tmp_path / "in"
    d.mkdir()
    raw = os.fsencode(d) + b"/caf\xe9.jsonl"
    with open(raw, "wb") as f:
        f.write((json.dumps({"id": "latin1-name", "text": load_articles()[5]["text"]}) + "\n{bad\n").encode())
    out = list(read_file(Path(os.fsdecode(raw))))
    assert [type(r).__name__ for r in out] == ["Record", "Rejection"]
    assert all(r.file.endswith("caf\ufffd.jsonl") for r in out)
    out[0].file.encode("utf-8")


# ---------------------------------------------------------------------------------------------------------------
# property-based: random bytes and random JSON


def _check_results(results: list, path: Path) -> tuple[list[Record], list[Rejection], list[Rejection]]:
    recs = [r for r in results if isinstance(r, Record)]
    rows = [r for r in results if isinstance(r, Rejection) and r.line is not None]
    whole = [r for r in results if isinstance(r, Rejection) and r.line is None]
    assert len(recs) + len(rows) + len(whole) == len(results)
    for r in recs:
        assert isinstance(r.doc_id, str) and r.doc_id == r.doc_id.strip() and 0 < len(r.doc_id) <= MAX_ID_CHARS
        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in r.doc_id)
        assert isinstance(r.text, str) and r.text.strip() and "\x00" not in r.text
        r.text.encode("utf-8"), r.doc_id.encode("utf-8")  # storable: no surrogates
        assert set(r.flags) <= FLAGS and r.line >= 1
    for r in rows + whole:
        assert r.reason in REASONS and r.file == str(path)
        assert "\n" not in r.message() and "\r" not in r.message()
        r.message().encode("utf-8")
    assert all(r.line >= 1 for r in rows)
    return recs, rows, whole


def _check_jsonl_accounting(data: bytes, results: list, path: Path) -> None:
    """Each non-blank line is exactly one record or one row rejection, unless the whole file was refused."""
    recs, rows, whole = _check_results(results, path)
    body = data.removeprefix(b"\xef\xbb\xbf")
    lines = [i for i, b in enumerate(body.split(b"\n"), start=1) if b.strip()]
    if whole:
        assert len(whole) == 1 and whole[0].reason in ("wrong_format", "empty_file")
        assert not recs and not rows
        if whole[0].reason == "empty_file":
            assert not lines
        return
    assert sorted(r.line for r in recs + rows) == lines


@settings(max_examples=400, **SETTINGS)
@given(data=st.binary(max_size=600) | st.lists(st.binary(max_size=80), max_size=12).map(b"\n".join))
def test_random_bytes_as_jsonl(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.getbasetemp() / "bytes.jsonl"
    path.write_bytes(data)
    _check_jsonl_accounting(data, list(read_file(path, max_chars=500)), path)


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
_json = st.recursive(_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                     max_leaves=10)
_words = st.text(st.characters(codec="utf-8") | st.sampled_from(list("abc xyz\t\n\x00\x07\x1b\x85\u00c3\u00a9\u2122")),
                 max_size=80)
_row = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=12), st.integers(), _json), "text": st.one_of(_words, _json)},
    optional={"title": _json, "published_at": st.one_of(st.text(max_size=25), _json), "lang": st.text(max_size=3)})


def _encode_line(value: object, ascii_only: bool, junk: bytes) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass") + junk


def _usable(value: object, line: bytes) -> bool:
    """A line that is one valid JSON object with a usable string id."""
    try:
        json.loads(line, parse_constant=lambda c: 1 / 0)
        orjson.loads(line)
    except (ValueError, ZeroDivisionError):
        return False
    doc_id = value.get("id") if isinstance(value, dict) else None
    return (isinstance(doc_id, str) and 0 < len(doc_id.strip()) <= MAX_ID_CHARS
            and not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in doc_id))


@settings(max_examples=300, **SETTINGS)
@given(rows=st.lists(st.tuples(st.one_of(_row, _json), st.booleans(),
                               st.sampled_from([b"", b"", b"", b"\r", b" ", b"\xff", b"}", b"\x00"])), max_size=8),
       blanks=st.lists(st.integers(0, 8), max_size=3), bom=st.booleans())
def test_random_json_as_jsonl(rows: list, blanks: list[int], bom: bool,
                              tmp_path_factory: pytest.TempPathFactory) -> None:
    entries: list[tuple[bytes, int | None]] = [(_encode_line(v, a, j), i) for i, (v, a, j) in enumerate(rows)]
    for b in blanks:
        entries.insert(min(b, len(entries)), (b"  ", None))
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(line for line, _ in entries)
    path = tmp_path_factory.getbasetemp() / "rows.jsonl"
    path.write_bytes(data)
    results = list(read_file(path, max_chars=60))
    _check_jsonl_accounting(data, results, path)
    if any(r.line is None for r in results):
        return
    by_line = {r.line: r for r in results}
    for n, (line, i) in enumerate(entries, start=1):
        if i is not None and _usable(rows[i][0], line):
            # a JSON object with a usable id is only ever rejected for its text
            res = by_line[n]
            assert isinstance(res, Record) or (res.field == "text" and res.reason in (
                "missing_text", "bad_type", "empty_text", "control_chars", "too_long")), res


@settings(max_examples=300, **SETTINGS)
@given(raw=st.dictionaries(st.sampled_from(["id", "text", "title", "source", "url", "published_at", "lang", "x"]),
                           st.one_of(_json, _words, st.binary(max_size=20), st.dates(), st.datetimes())),
       max_chars=st.integers(1, 100))
def test_validate_any_row(raw: dict, max_chars: int) -> None:
    r = validate(raw, FieldMap(), "f.jsonl", 1, max_chars)
    _check_results([r], Path("f.jsonl"))
    if isinstance(r, Record):
        assert len(r.text) <= max_chars
        for name in ("title", "source", "url", "lang"):
            v = getattr(r, name)
            assert v is None or (isinstance(v, str) and v.strip() == v and v and "\x00" not in v)


@settings(max_examples=200, **SETTINGS)
@given(data=st.binary(max_size=400), ext=st.sampled_from([".csv", ".txt", ".parquet", ".jsonl.gz", ".jsonl.zst",
                                                          ".csv.gz", ".ndjson"]),
       prefix=st.sampled_from([b"", b"id,text\n", b"\x1f\x8b", b"PAR1", b"\xef\xbb\xbf", b"\xff\xfe", b"(\xb5/\xfd"]))
def test_random_bytes_any_format(data: bytes, ext: str, prefix: bytes,
                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.getbasetemp() / f"any{ext}"
    path.write_bytes(prefix + data)
    recs, rows, whole = _check_results(list(read_file(path, max_chars=1000)), path)
    assert len(whole) <= 1


def _real_lines() -> list[bytes]:
    return [json.dumps(a).encode() for a in load_articles()[120:160]]


_REAL = _real_lines()
_ingest_line = st.one_of(
    st.sampled_from(_REAL),
    st.tuples(st.sampled_from(_REAL), st.sampled_from(["dup-a", "dup-b", "o'q", "x\"; --"])).map(
        lambda t: json.dumps(dict(json.loads(t[0]), id=t[1])).encode()),
    st.tuples(_row, st.booleans()).map(lambda t: _encode_line(t[0], t[1], b"")),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
    st.just(b""),
)


@settings(max_examples=20, **SETTINGS)
@given(lines=st.lists(_ingest_line, min_size=1, max_size=10), gz=st.booleans())
@example(lines=[b"\xef\xbb\xbf"], gz=False)  # found by a random run: a line holding only the file's BOM is blank
@example(lines=[b"\xef\xbb\xbf", b'{"id": "a", "text": "Some supermarkets are rationing iceberg lettuces."}'],
         gz=False)
def test_random_lines_full_ingest(lines: list[bytes], gz: bool, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Through `dedup.ingest`: every non-blank line is one document or one rejection row in the index, and
    `read = indexed + rejected + unchanged`; a second ingest of the same file changes nothing."""
    work = tmp_path_factory.getbasetemp() / f"ingest-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        data = b"\n".join(lines) + b"\n"
        path = work / ("in put.jsonl.gz" if gz else "in put.jsonl")
        path.write_bytes(gzip.compress(data) if gz else data)
        idx = work / "idx"
        s = dedup.ingest([path], idx, max_chars=DEFAULT_MAX_CHARS)
        assert s.read == s.indexed + s.rejected + s.unchanged and s.unchanged == 0
        ix = dedup.Index(idx)
        docs = ix.sql("SELECT doc_id, line FROM documents").to_pylist()
        rej = ix.sql("SELECT line, reason FROM rejected").to_pylist()
        assert len(docs) == s.indexed and len(rej) == s.rejected + s.file_errors
        body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data  # a BOM opening the file is not content
        want = [i for i, b in enumerate(body.split(b"\n"), start=1) if b.strip()]
        if any(r["line"] is None for r in rej):  # the whole file refused: nothing else comes from it
            assert len(rej) == 1 and not docs and rej[0]["reason"] in ("empty_file", "wrong_format")
            assert rej[0]["reason"] == "wrong_format" or not want
        else:
            assert sorted([d["line"] for d in docs] + [r["line"] for r in rej]) == want
        assert_valid_index(idx)
        again = dedup.ingest([path], idx)
        assert (again.indexed, again.unchanged, again.rejected) == (0, s.indexed, s.rejected)
        assert again.read == again.indexed + again.rejected + again.unchanged
    finally:
        shutil.rmtree(work)


def test_hypothesis_budget() -> None:
    """The property tests above run at least 1,000 examples in all."""
    tests = [test_random_bytes_as_jsonl, test_random_json_as_jsonl, test_validate_any_row,
             test_random_bytes_any_format, test_random_lines_full_ingest]
    assert sum(t._hypothesis_internal_use_settings.max_examples for t in tests) >= 1000
