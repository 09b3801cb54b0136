"""Input: turn files into validated records, and every row that cannot be used into a `Rejection`.

Nothing is dropped silently: each input row ends as exactly one `Record` or one `Rejection` naming the file,
the line (JSONL/CSV/TXT) or row (Parquet, 1-based), the field and the reason. Problems with a whole file
(unreadable, truncated, empty, unknown format) are `Rejection`s with `line = None`; rows read before a
truncation point are kept.

Choices documented in the README:
- invalid UTF-8 is repaired with U+FFFD and the document flagged `utf8_repaired` (one bad byte should not cost
  a whole article); NUL characters reject the row (a sign of binary or corrupt data);
- integer ids are accepted and turned into strings; other non-string ids or texts are rejected;
- a `published_at` that cannot be parsed is dropped and the document flagged `bad_published_at`.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

OPTIONAL_FIELDS = ("title", "source", "url", "published_at", "lang")
DEFAULT_MAX_CHARS = 5_000_000

_TXT_DATE = re.compile(r"\A\s*date\s+(\d{4}-\d{2}-\d{2})[ \t]*(?:\r?\n|\Z)")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class FieldMap:
    """Which input column holds each record field."""

    id: str = "id"
    text: str = "text"
    title: str = "title"
    source: str = "source"
    url: str = "url"
    published_at: str = "published_at"
    lang: str = "lang"


@dataclass
class Record:
    doc_id: str
    text: str
    title: str | None
    source: str | None
    url: str | None
    published_at: datetime | None
    lang: str | None
    file: str
    line: int | None
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Rejection:
    file: str
    line: int | None
    doc_id: str | None
    field: str | None
    reason: str
    detail: str

    def message(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = f" field '{self.field}'" if self.field else ""
        who = f" (id {self.doc_id!r})" if self.doc_id else ""
        return f"{where}:{what}{who} {self.reason}: {self.detail}"


class InputError(Exception):
    """A path given on the command line that cannot be used at all."""


def parse_published_at(value: object) -> datetime | None:
    """ISO-8601 date or date-time (also YYYY/MM/DD); aware times are converted to naive UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        s = value.strip().replace("/", "-")
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        dt = datetime.fromisoformat(s)
    else:
        raise ValueError(f"expected a date string, got {type(value).__name__}")
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def validate(raw: dict, fields: FieldMap, file: str, line: int | None, max_chars: int,
             flags: list[str] | None = None) -> Record | Rejection:
    """Check one raw row (a dict of column → value) and build its Record, or say why not."""
    flags = list(flags or [])
    doc_id = raw.get(fields.id)
    if doc_id is None:
        return Rejection(file, line, None, fields.id, "missing_id", "no id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str):
        return Rejection(file, line, None, fields.id, "bad_type", f"id must be a string, got {type(doc_id).__name__}")
    doc_id = doc_id.strip()
    if not doc_id:
        return Rejection(file, line, None, fields.id, "empty_id", "id is empty")
    if _CONTROL.search(doc_id) or "\n" in doc_id or "\r" in doc_id:
        return Rejection(file, line, doc_id, fields.id, "control_chars", "id contains control characters")
    text = raw.get(fields.text)
    if text is None:
        return Rejection(file, line, doc_id, fields.text, "missing_text", "no text")
    if not isinstance(text, str):
        return Rejection(file, line, doc_id, fields.text, "bad_type", f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        return Rejection(file, line, doc_id, fields.text, "empty_text", "text is empty")
    if "\x00" in text:
        return Rejection(file, line, doc_id, fields.text, "control_chars", "text contains NUL characters")
    if len(text) > max_chars:
        return Rejection(file, line, doc_id, fields.text, "too_long", f"{len(text):,} characters > limit {max_chars:,}")
    if "\ufffd" in text and "utf8_repaired" not in flags:
        flags.append("has_replacement_char")
    optional: dict[str, str | None] = {}
    for name in ("title", "source", "url", "lang"):
        col = getattr(fields, name)
        v = raw.get(col)
        if v is None or v == "":
            optional[name] = None
        elif isinstance(v, str):
            optional[name] = _CONTROL.sub(" ", v).strip() or None
        else:
            return Rejection(file, line, doc_id, col, "bad_type", f"{name} must be a string, got {type(v).__name__}")
    published = raw.get(fields.published_at)
    published_at = None
    if published not in (None, ""):
        try:
            published_at = parse_published_at(published)
        except (ValueError, OverflowError):
            flags.append("bad_published_at")
    return Record(doc_id, text, optional["title"], optional["source"], optional["url"], published_at,
                  optional["lang"], file, line, flags)


def _decode(data: bytes) -> tuple[str, list[str]]:
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), ["utf8_repaired"]


def _open_stream(path: Path) -> io.BufferedReader:
    name = path.name.lower()
    compression = "gzip" if name.endswith(".gz") else "zstd" if name.endswith(".zst") else None
    return io.BufferedReader(pa.input_stream(str(path), compression=compression))


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in (".gz", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for ext, kind in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"), (".csv", "csv"),
                      (".parquet", "parquet"), (".txt", "txt")):
        if name.endswith(ext):
            return kind
    return None


def _read_jsonl(path: Path, fields: FieldMap, max_chars: int) -> Iterator[Record | Rejection]:
    f = str(path)
    n = 0
    rows = 0
    with _open_stream(path) as stream:
        try:
            for n, data in enumerate(stream, start=1):
                if not data.strip():
                    continue
                rows += 1
                text, flags = _decode(data)
                try:
                    raw = orjson.loads(text)
                except orjson.JSONDecodeError as e:
                    yield Rejection(f, n, None, None, "malformed_json", str(e))
                    continue
                if not isinstance(raw, dict):
                    yield Rejection(f, n, None, None, "malformed_json", f"expected an object, got {type(raw).__name__}")
                    continue
                yield validate(raw, fields, f, n, max_chars, flags)
        except (OSError, EOFError, pa.ArrowException) as e:
            yield Rejection(f, None, None, None, "truncated_file", f"read error after line {n}: {e}")
            return
    if rows == 0:
        yield Rejection(f, None, None, None, "empty_file", "no rows")


def _read_csv(path: Path, fields: FieldMap, max_chars: int) -> Iterator[Record | Rejection]:
    f = str(path)
    csv.field_size_limit(sys.maxsize)
    rows = 0
    line = 0
    with _open_stream(path) as stream:
        raw_text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(raw_text)
        try:
            header = next(reader, None)
            if header is None:
                yield Rejection(f, None, None, None, "empty_file", "no header row")
                return
            while True:
                line = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:
                    rows += 1
                    yield Rejection(f, line, None, None, "malformed_csv", str(e))
                    continue
                if not any(cell.strip() for cell in row):
                    continue
                rows += 1
                if len(row) != len(header):
                    yield Rejection(f, line, None, None, "malformed_csv",
                                    f"{len(row)} fields, header has {len(header)}")
                    continue
                flags: list[str] = []
                cells = []
                for cell in row:
                    if any("\udc80" <= c <= "\udcff" for c in cell):
                        cell = cell.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                        flags = ["utf8_repaired"]
                    cells.append(cell)
                yield validate(dict(zip(header, cells)), fields, f, line, max_chars, flags)
        except (OSError, EOFError, pa.ArrowException) as e:
            yield Rejection(f, None, None, None, "truncated_file", f"read error after line {line}: {e}")
            return
    if rows == 0:
        yield Rejection(f, None, None, None, "empty_file", "header only, no rows")


def _read_parquet(path: Path, fields: FieldMap, max_chars: int) -> Iterator[Record | Rejection]:
    f = str(path)
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        yield Rejection(f, None, None, None, "unreadable_file", f"not a readable Parquet file: {e}")
        return
    if pf.metadata.num_rows == 0:
        yield Rejection(f, None, None, None, "empty_file", "no rows")
        return
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=8192):
            for raw in batch.to_pylist():
                row += 1
                yield validate(raw, fields, f, row, max_chars)
    except (OSError, pa.ArrowException) as e:
        yield Rejection(f, None, None, None, "truncated_file", f"read error after row {row}: {e}")


def _read_txt(path: Path, fields: FieldMap, max_chars: int) -> Iterator[Record | Rejection]:
    f = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        yield Rejection(f, None, None, None, "unreadable_file", str(e))
        return
    if not data.strip():
        yield Rejection(f, None, path.stem, None, "empty_file", "file is empty")
        return
    text, flags = _decode(data)
    raw: dict[str, object] = {fields.id: path.stem}
    m = _TXT_DATE.match(text)
    if m:
        raw[fields.published_at] = m.group(1)
        text = text[m.end():]
    raw[fields.text] = text
    yield validate(raw, fields, f, 1, max_chars, flags)


_READERS = {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet, "txt": _read_txt}


def expand_paths(paths: list[str | os.PathLike]) -> tuple[list[Path], list[Rejection]]:
    """Files to read, in a stable order: directories are walked recursively (sorted); files of unknown type
    inside a directory are reported, an unknown or missing path given directly is an `InputError`."""
    files: list[Path] = []
    skipped: list[Rejection] = []
    for p in map(Path, paths):
        if p.is_dir():
            for sub in sorted(q for q in p.rglob("*") if q.is_file()):
                if any(part.startswith(".") for part in sub.relative_to(p).parts):
                    continue
                if _kind(sub) is None:
                    skipped.append(Rejection(str(sub), None, None, None, "unsupported_file",
                                             "not .jsonl/.json/.ndjson/.csv/.parquet/.txt (optionally .gz/.zst)"))
                else:
                    files.append(sub)
        elif p.is_file():
            if _kind(p) is None:
                raise InputError(f"{p}: unsupported file type (use .jsonl, .json, .ndjson, .csv, .parquet or .txt, "
                                 "optionally compressed .gz/.zst)")
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or directory")
    return files, skipped


def read_file(path: Path, fields: FieldMap = FieldMap(), max_chars: int = DEFAULT_MAX_CHARS
              ) -> Iterator[Record | Rejection]:
    """Records and rejections of one file, in file order."""
    kind = _kind(path)
    assert kind is not None
    try:
        yield from _READERS[kind](path, fields, max_chars)
    except OSError as e:
        yield Rejection(str(path), None, None, None, "unreadable_file", str(e))


def records_from_table(table: pa.Table, fields: FieldMap = FieldMap(), name: str = "<table>",
                       max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[Record | Rejection]:
    """Records of an in-memory Arrow table (rows numbered from 1), for callers of the Python API."""
    row = 0
    for batch in table.to_batches(max_chunksize=8192):
        for raw in batch.to_pylist():
            row += 1
            yield validate(raw, fields, name, row, max_chars)
