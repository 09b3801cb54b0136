"""Input: turn files into validated records, and every row that cannot be used into a `Rejection`.

Nothing is dropped silently: each input row ends as exactly one `Record` or one `Rejection` naming the file,
the line (JSONL/CSV/TXT) or row (Parquet, 1-based), the field and the reason. Problems with a whole file
(unreadable, truncated, empty, unknown format) are `Rejection`s with `line = None`; rows read before a
truncation point are kept.

Choices documented in the README:
- invalid UTF-8 (and lone surrogates in JSON escapes or Parquet strings) is repaired with U+FFFD and the
  document flagged `utf8_repaired` (one bad byte should not cost a whole article); a UTF-8 byte order mark at
  the start of a file is ignored;
- a NUL character in the text rejects the row (`control_chars`: a sign of binary or corrupt data), as does a text
  whose control characters are more than 10% of it; fewer other control characters (C0 except tab, newline,
  carriage return, vertical tab and form feed; DEL; C1) are each replaced by a space and the document is flagged
  `control_chars_removed`; ids with any control character are rejected;
- mojibake (UTF-8 decoded as Latin-1/cp1252, e.g. "cafÃ©", "itâ€™s") is stored as received and flagged
  `mojibake_suspected`: repairing it is a guess that can damage correct text;
- integer ids are accepted and turned into strings; other non-string ids or texts are rejected; ids longer than
  `MAX_ID_CHARS` are rejected (`too_long`);
- an optional field (`title`, `source`, `url`, `lang`) that is not a string is dropped and the document flagged
  `bad_<field>`; a `published_at` that is not a date in any form `dedup.dates` reads is dropped and the document
  flagged `bad_published_at` (ingest counts and reports them);
- the content must match the file name: a `.gz`/`.zst` that is not gzip/zstd data, a `.parquet` that is not
  Parquet, a text file that is compressed, Parquet or UTF-16/32 is rejected as a whole (`wrong_format`);
- CSV is parsed strictly: a broken quote rejects its row (`malformed_csv`, the detail names the lines it
  spans) instead of silently swallowing the rows after it; blank lines are ignored in JSONL and CSV.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup.dates import parse_date
from dedup.errors import InputError

OPTIONAL_FIELDS = ("title", "source", "url", "published_at", "lang")
DEFAULT_MAX_CHARS = 5_000_000
MAX_ID_CHARS = 1024
MAX_CONTROL_SHARE = 0.10  # texts with more control characters than this are rejected as binary

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_TXT_DATE = re.compile(r"\A\s*date\s+(\d{4}-\d{2}-\d{2})[ \t]*(?:\r?\n|\Z)")
_ID_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")  # keeps \t \n \x0b \x0c \r (whitespace)
_SURROGATE = re.compile("[\ud800-\udfff]")
# A UTF-8 sequence read as cp1252/Latin-1: lead byte then the right number of continuation bytes.
_CONT = "\x80-\xbf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018\u2019\u201a" \
        "\u201c\u201d\u201e\u2020\u2021\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
_MOJIBAKE = re.compile(f"[\xc2-\xdf][{_CONT}]|[\xe0-\xef][{_CONT}]{{2}}|[\xf0-\xf4][{_CONT}]{{3}}")
_MOJIBAKE_START = re.compile(f"[\xc2-\xf4][{_CONT}]")  # what every match starts with: one pattern, 2× faster to scan
# The same two scans for Arrow's RE2 (code points as \xhh, the other characters as themselves): a whole column of
# texts is scanned in C++ without the GIL, and rows with no hit skip the per-row scans (see `plain_texts`).
_CONTROL_RE2 = r"[\x00-\x08\x0e-\x1f\x7f-\x9f]"
_MOJIBAKE_START_RE2 = r"[\xc2-\xf4][\x80-\xbf" + _CONT[3:] + "]"
_ID_CONTROL_RE2 = r"[\x00-\x1f\x7f-\x9f]"
# White space as str.strip() removes it (re's \s is str.isspace), for RE2: a value starting or ending with it
_WHITE_SPACE = "".join(f"\\x{{{ord(c):x}}}" for c in re.findall(r"\s", "".join(map(chr, range(0x10000)))))
_EDGE_SPACE_RE2 = f"^[{_WHITE_SPACE}]|[{_WHITE_SPACE}]$"
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"PAR1": "Parquet", b"\xff\xfe": "UTF-16/32",
          b"\xfe\xff": "UTF-16", b"\x00\x00\xfe\xff": "UTF-32", b"PK\x03\x04": "zip"}


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
    date_format: str | None = None  # a strptime format for published_at, tried before the forms dedup knows
    delimiter: str | None = None    # of CSV files; None: a tab in .tsv files, else a comma


@dataclass
class Record:
    """One valid input row. Its text is a Python string, or a row of the Arrow column it was read from (Parquet
    files and tables): ingest then hashes, sketches and stores it from Arrow's buffers without ever making it a
    Python string (at 100k documents, 1.9 s of converting and 1.4 s of encoding again, all holding the GIL)."""

    doc_id: str
    title: str | None
    source: str | None
    url: str | None
    published_at: datetime | None
    lang: str | None
    file: str
    line: int | None
    flags: list[str] = field(default_factory=list)
    string: str | None = None                                   # the text, or None when it is in `column`
    column: pa.Array | None = field(default=None, repr=False)  # (large_)string column holding the text
    row: int = 0
    dropped_date: object = field(default=None, repr=False)      # the published_at value that was not a date

    @property
    def text(self) -> str:
        return self.string if self.string is not None else self.column[self.row].as_py()  # type: ignore[index]


@dataclass(frozen=True)
class Rejection:
    file: str
    line: int | None
    doc_id: str | None
    field: str | None
    reason: str
    detail: str

    def message(self) -> str:
        """One line: `file:line: field 'f' (id 'x') reason: detail` (control characters escaped)."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = f" field '{self.field}'" if self.field else ""
        who = f" (id {self.doc_id!r})" if self.doc_id else ""
        return _ID_CONTROL.sub(lambda m: repr(m.group())[1:-1], f"{where}:{what}{who} {self.reason}: {self.detail}")


class _Unconvertible:
    """A Parquet value that has no Python equivalent (e.g. a timestamp out of range): always a bad type."""

    def __init__(self, arrow_type: object):
        self.arrow_type = arrow_type


def _type_name(v: object) -> str:
    return f"unconvertible {v.arrow_type}" if isinstance(v, _Unconvertible) else type(v).__name__


def _as_text(v: object, flags: list[str]) -> object:
    """Bytes (a Parquet binary column) become text, repaired if they are not UTF-8."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError:
            if "utf8_repaired" not in flags:
                flags.append("utf8_repaired")
            return bytes(v).decode("utf-8", errors="replace")
    return v


def looks_like_mojibake(text: str) -> bool:
    """True if `text` holds a UTF-8 sequence that was decoded as cp1252/Latin-1 ("Ã©" for "é")."""
    if text.isascii() or not _MOJIBAKE_START.search(text):
        return False
    for m in _MOJIBAKE.finditer(text):
        try:
            bytes(ord(c) if ord(c) < 256 else c.encode("cp1252")[0] for c in m.group()).decode("utf-8")
        except UnicodeError:
            continue
        return True
    return False


def plain_texts(col: pa.Array) -> np.ndarray | None:
    """Which texts of an Arrow string column have no control characters and nothing that may start mojibake
    (so `validate` can skip scanning them); None when the column is not valid UTF-8 text."""
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return None
    suspect = pc.match_substring_regex(col, f"{_CONTROL_RE2}|{_MOJIBAKE_START_RE2}")  # one pass: RE2 runs a DFA
    return pc.invert(suspect).fill_null(False).to_numpy(zero_copy_only=False)


def record_texts(records: list[Record]) -> pa.ChunkedArray:
    """The texts of `records` as one chunked Arrow array: runs of rows still in their Arrow column are sliced from
    it (records of a batch come in row order), Python strings are converted once. The parts are not joined:
    copying a chunk's texts into one array took 0.5 s per 100k documents."""
    parts: list[pa.Array] = []
    column, first, end, strings = None, 0, 0, []

    def flush() -> None:
        nonlocal column, strings
        if column is not None:
            parts.append(column.slice(first, end - first).cast(pa.large_string()))
        if strings:
            parts.append(pa.array(strings, pa.large_string()))
        column, strings = None, []

    for r in records:
        if r.string is not None:
            if column is not None:
                flush()
            strings.append(r.string)
        elif r.column is column and r.row == end:
            end += 1
        else:
            flush()
            column, first, end = r.column, r.row, r.row + 1
    flush()
    return pa.chunked_array(parts, pa.large_string())


@dataclass(frozen=True)
class _Checked:
    column: pa.Array
    row: int
    replacement_char: bool


def checked_texts(col: pa.Array, max_chars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Which texts of an Arrow string column are plain (`plain_texts`), which of those pass every check of
    `validate` without being looked at in Python, and which hold U+FFFD; None if the column is not valid UTF-8
    text. A text passes if it is plain, holds an ASCII letter or digit (so it is not blank) and is at most
    `max_chars` characters long; the others are checked row by row, as Python strings. All scans run in C++,
    without the GIL: one pass over every text looks for anything suspect (control characters, possible mojibake,
    U+FFFD), and only the few texts it finds are scanned again to say which."""
    if not _valid_text(col):
        return None
    suspect = pc.match_substring_regex(col, f"{_CONTROL_RE2}|{_MOJIBAKE_START_RE2}|\ufffd")
    suspect = suspect.fill_null(True).to_numpy(zero_copy_only=False)
    plain, fffd = ~suspect, np.zeros(len(col), dtype=np.bool_)
    again = np.flatnonzero(suspect)
    if len(again):
        some = col.take(pa.array(again))
        plain[again] = plain_texts(some)
        fffd[again] = pc.match_substring(some, "\ufffd").fill_null(False).to_numpy(zero_copy_only=False)
    ok = plain & pc.match_substring_regex(col, "[0-9A-Za-z]").fill_null(False).to_numpy(zero_copy_only=False)
    long = np.flatnonzero(ok & (_lengths(col) > max_chars))  # bytes ≥ characters: few texts need counting
    if len(long):
        ok[long] = pc.less_equal(pc.utf8_length(col.take(pa.array(long))), max_chars).to_numpy(zero_copy_only=False)
    return plain, ok, fffd


def validate(raw: dict, fields: FieldMap, file: str, line: int | None, max_chars: int,
             flags: list[str] | None = None, plain: bool = False, checked: _Checked | None = None
             ) -> Record | Rejection:
    """Check one raw row (a dict of column → value) and build its Record, or say why not. `plain`: the text is
    known to hold no control characters, surrogates or mojibake (`plain_texts`). `checked`: the text is not in
    `raw` but in an Arrow column whose checks `checked_texts` has already made."""
    flags = list(flags or [])
    doc_id = _as_text(raw.get(fields.id), flags)
    if doc_id is None:
        if fields.id in raw:
            return Rejection(file, line, None, fields.id, "missing_id", "id is null")
        return Rejection(file, line, None, fields.id, "missing_id",
                         f"no '{fields.id}' field (fields: {_field_names(raw)}; see --id-field)")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str):
        return Rejection(file, line, None, fields.id, "bad_type", f"id must be a string, got {_type_name(doc_id)}")
    doc_id = doc_id.strip()
    if not doc_id:
        return Rejection(file, line, None, fields.id, "empty_id", "id is empty")
    if len(doc_id) > MAX_ID_CHARS:
        return Rejection(file, line, doc_id[:80] + "...", fields.id, "too_long",
                         f"id of {len(doc_id):,} characters > limit {MAX_ID_CHARS:,}")
    if _ID_CONTROL.search(doc_id):
        return Rejection(file, line, doc_id, fields.id, "control_chars", "id contains control characters")
    if checked is not None:
        if checked.replacement_char:
            flags.append("has_replacement_char")
        return _record(doc_id, None, raw, fields, file, line, flags, checked)
    text = _as_text(raw.get(fields.text), flags)
    if text is None:
        if fields.text in raw:
            return Rejection(file, line, doc_id, fields.text, "missing_text", "text is null")
        return Rejection(file, line, doc_id, fields.text, "missing_text",
                         f"no '{fields.text}' field (fields: {_field_names(raw)}; see --text-field)")
    if not isinstance(text, str):
        return Rejection(file, line, doc_id, fields.text, "bad_type", f"text must be a string, got {_type_name(text)}")
    if not text.strip():
        return Rejection(file, line, doc_id, fields.text, "empty_text", "text is empty")
    if "\x00" in text:
        return Rejection(file, line, doc_id, fields.text, "control_chars", "text contains NUL characters")
    if len(text) > max_chars:
        return Rejection(file, line, doc_id, fields.text, "too_long", f"{len(text):,} characters > limit {max_chars:,}")
    if not plain and not text.isascii():
        if looks_like_mojibake(text):
            flags.append("mojibake_suspected")
        if _SURROGATE.search(text):  # only from the Python API: files are decoded with repair
            text = _SURROGATE.sub("\ufffd", text)
            if "utf8_repaired" not in flags:
                flags.append("utf8_repaired")
    cleaned, n_control = (text, 0) if plain else _CONTROL.subn(" ", text)
    if n_control:
        if n_control > MAX_CONTROL_SHARE * len(text):
            return Rejection(file, line, doc_id, fields.text, "control_chars",
                             f"{n_control:,} control characters in {len(text):,} (binary data?)")
        text = cleaned
        flags.append("control_chars_removed")
        if not text.strip():
            return Rejection(file, line, doc_id, fields.text, "empty_text", "text is empty")
    if "\ufffd" in text and "utf8_repaired" not in flags:
        flags.append("has_replacement_char")
    return _record(doc_id, text, raw, fields, file, line, flags, None)


def _field_names(raw: dict) -> str:
    """The first field names of a row, for a message saying which one was missing."""
    return ", ".join(repr(_SURROGATE.sub("\ufffd", str(k)))[:60] for k in list(raw)[:8]) or "none"


def _record(doc_id: str, text: str | None, raw: dict, fields: FieldMap, file: str, line: int | None,
            flags: list[str], checked: _Checked | None) -> Record:
    """The Record of a row whose id and text passed: optional fields are cleaned or flagged, never rejected."""
    optional: dict[str, str | None] = {}
    for name in ("title", "source", "url", "lang"):
        col = getattr(fields, name)
        v = _as_text(raw.get(col), flags)
        if v is None or v == "":
            optional[name] = None
        elif isinstance(v, str):
            optional[name] = _CONTROL.sub(" ", _SURROGATE.sub("\ufffd", v)).strip() or None
        else:
            optional[name] = None
            flags.append(f"bad_{name}")
    value = _as_text(raw.get(fields.published_at), flags)
    published_at = _published(value, flags, fields.date_format)
    return Record(doc_id, optional["title"], optional["source"], optional["url"], published_at, optional["lang"],
                  file, line, flags, text, checked.column if checked else None, checked.row if checked else 0,
                  _dropped(value, published_at))


def _published(value: object, flags: list[str], fmt: str | None) -> datetime | None:
    """`published_at` parsed (`dedup.dates`), or None (flagged `bad_published_at` when there was something that is
    not a date)."""
    if value is None or value == "":
        return None
    try:
        return parse_date(value, fmt)
    except (ValueError, OverflowError, TypeError):
        flags.append("bad_published_at")
        return None


def _dropped(value: object, published_at: datetime | None) -> object:
    """The value kept for the report of dropped dates: what was given where no date came out."""
    return value if published_at is None and value is not None and value != "" else None


def _name(path: Path) -> str:
    """The file name stored with records and rejections: always valid Unicode (undecodable bytes → U+FFFD)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _decode(data: bytes) -> tuple[str, list[str]]:
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), ["utf8_repaired"]


def _compression(path: Path) -> str | None:
    name = path.name.lower()
    return "gzip" if name.endswith(".gz") else "zstd" if name.endswith(".zst") else None


# The input file being read (its position is how far reading has got: `dedup.progress.InputMeter`). Readers run
# in the thread that consumes them, so the consumer sees what they set.
reading: ContextVar[io.BufferedIOBase | None] = ContextVar("reading", default=None)


@contextmanager
def _opened(path: Path, buffering: int = -1) -> Iterator[io.BufferedIOBase]:
    """`open(path, "rb")`, published as `reading` while open."""
    with open(path, "rb", buffering=buffering) as fh:
        reading.set(fh)
        try:
            yield fh
        finally:
            reading.set(None)  # not reset(token): a generator may be closed from another context


@contextmanager
def _open_stream(path: Path) -> Iterator[io.BufferedIOBase]:
    """The decompressed bytes of a file. Opened by Python, so that any file name works (even undecodable)."""
    with _opened(path, buffering=1 << 20) as fh:
        compression = _compression(path)
        if compression is None:
            yield fh
        else:
            with io.BufferedReader(pa.input_stream(fh, compression=compression)) as stream:
                yield stream


def _magic(head: bytes) -> str | None:
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return what
    if len(head) >= 4 and all(head[i] == 0 and head[i + 1] != 0 for i in (0, 2)):
        return "UTF-16BE (no byte order mark)"
    if len(head) >= 4 and all(head[i] != 0 and head[i + 1] == 0 for i in (0, 2)):
        return "UTF-16LE (no byte order mark)"
    return None


def _check_format(path: Path, kind: str) -> Rejection | None:
    """A whole-file problem found before reading: empty, or content that does not match the file name."""
    f = _name(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        size = fh.seek(0, os.SEEK_END)
        if kind == "parquet" and size >= 8:
            fh.seek(-4, os.SEEK_END)
            tail = fh.read(4)
    if size == 0:
        return Rejection(f, None, None, None, "empty_file", "file is empty (0 bytes)")
    comp = _compression(path)
    if comp is not None:
        expected = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}[comp]
        if not head.startswith(expected):
            found = _magic(head)
            return Rejection(f, None, None, None, "wrong_format",
                             f"not {comp} data" + (f" (looks like {found})" if found else "")
                             + f" although the name ends in {path.suffix}")
        return None
    if kind == "parquet":
        if not head.startswith(b"PAR1"):
            found = _magic(head)
            return Rejection(f, None, None, None, "wrong_format",
                             "not a Parquet file" + (f" (looks like {found})" if found else " (no PAR1 header)"))
        if size < 12 or tail != b"PAR1":
            return Rejection(f, None, None, None, "truncated_file",
                             f"Parquet file cut short ({size:,} bytes, no footer)")
        return None
    found = _magic(head)
    if found is not None:
        return Rejection(f, None, None, None, "wrong_format",
                         f"looks like {found} data, not a UTF-8 .{kind} file")
    return None


def _kind_name(path: Path) -> str:
    """The file name in lower case without a compression suffix (`a.TSV.gz` → `a.tsv`)."""
    name = path.name.lower()
    for suffix in (".gz", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _kind(path: Path) -> str | None:
    name = _kind_name(path)
    for ext, kind in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"), (".csv", "csv"),
                      (".tsv", "csv"), (".parquet", "parquet"), (".txt", "txt")):
        if name.endswith(ext):
            return kind
    return None


def _loads(data: bytes) -> tuple[object, list[str]]:
    """Parse one JSON line: (value, flags). Raises ValueError with a short reason if it is not JSON."""
    text, flags = _decode(data)
    try:
        return orjson.loads(text), flags
    except orjson.JSONDecodeError as e:
        if "surrogate" not in str(e):
            raise ValueError(str(e)) from None
    # orjson refuses lone surrogates in \u escapes; the standard parser keeps them and we repair them
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError(str(e)) from None
    if isinstance(raw, dict):
        fixed = {}
        for k, v in raw.items():
            if isinstance(v, str) and _SURROGATE.search(v):
                v = _SURROGATE.sub("\ufffd", v)
                if "utf8_repaired" not in flags:
                    flags.append("utf8_repaired")
            fixed[_SURROGATE.sub("\ufffd", k)] = v
        raw = fixed
    return raw, flags


def line_limit(max_chars: int) -> int:
    """Bytes a line (or a .txt file) may take before it is rejected as `too_long` without being read further:
    room for `max_chars` characters of text at up to 12 bytes each (an escaped astral character, \\ud83d\\ude00)
    and 1 MiB of other fields. A line is never held whole before this is checked, whatever the compression: a
    9 MB gzip file can hold a 2 GB line."""
    return 12 * max_chars + (1 << 20)


def _lines(stream: io.BufferedIOBase, limit: int) -> Iterator[bytes | None]:
    """The lines of `stream`; None for a line longer than `limit` bytes (the rest of it is skipped, not held)."""
    while data := stream.readline(limit + 1):
        if len(data) > limit and not data.endswith(b"\n"):
            while (more := stream.readline(1 << 20)) and not more.endswith(b"\n"):
                pass
            yield None
        else:
            yield data


JSONL_BLOCK = 2048  # parsed lines validated together, so their texts are scanned in one Arrow call


def _read_jsonl(path: Path, fields: FieldMap, max_chars: int) -> Iterator[Record | Rejection]:
    f = _name(path)
    n = 0
    rows = 0
    block: list[Rejection | tuple[int, dict, list[str]]] = []

    def validated() -> Iterator[Record | Rejection]:
        texts = [b[1].get(fields.text) for b in block if not isinstance(b, Rejection)]
        plain = iter(plain_texts(pa.array([t if isinstance(t, str) else None for t in texts], pa.string())))
        for b in block:
            yield b if isinstance(b, Rejection) else validate(b[1], fields, f, b[0], max_chars, b[2], next(plain))
        block.clear()

    limit = line_limit(max_chars)
    with _open_stream(path) as stream:
        try:
            for n, data in enumerate(_lines(stream, limit), start=1):
                if data is None:
                    rows += 1
                    block.append(Rejection(f, n, None, None, "too_long",
                                           f"line longer than {limit:,} bytes (--max-chars {max_chars:,}); not read"))
                    continue
                if n == 1 and data.startswith(b"\xef\xbb\xbf"):
                    data = data[3:]
                if not data.strip():
                    continue
                rows += 1
                try:
                    raw, flags = _loads(data)
                except ValueError as e:
                    block.append(Rejection(f, n, None, None, "malformed_json", str(e)))
                    continue
                if not isinstance(raw, dict):
                    what = "an array" if isinstance(raw, list) else type(raw).__name__
                    block.append(Rejection(f, n, None, None, "malformed_json",
                                           f"expected one JSON object per line, got {what}"))
                    continue
                block.append((n, raw, flags))
                if len(block) >= JSONL_BLOCK:
                    yield from validated()
        except (OSError, EOFError, pa.ArrowException) as e:
            yield from validated()
            yield Rejection(f, None, None, None, "truncated_file", f"read error after line {n}: {e}")
            return
    yield from validated()
    if rows == 0:
        yield Rejection(f, None, None, None, "empty_file", "no rows")


class _LineTooLong(Exception):
    """A CSV line longer than the limit (it was skipped)."""


class _CappedLines:
    """The lines of a text stream for csv.reader, none held longer than `limit` characters: a longer line is
    skipped and raises `_LineTooLong` once, and the reader goes on with the next line (`skipped` counts them,
    as csv.reader's line_num does not)."""

    def __init__(self, text: io.TextIOBase, limit: int):
        self.text, self.limit, self.skipped = text, limit, 0

    def __iter__(self) -> _CappedLines:
        return self

    def __next__(self) -> str:
        line = self.text.readline(self.limit + 1)
        if not line:
            raise StopIteration
        if len(line) > self.limit and not line.endswith(("\n", "\r")):
            while (more := self.text.readline(1 << 20)) and not more.endswith(("\n", "\r")):
                pass
            self.skipped += 1
            raise _LineTooLong
        return line


def _repair_cell(cell: str, flags: list[str]) -> str:
    if any("\udc80" <= c <= "\udcff" for c in cell):
        if "utf8_repaired" not in flags:
            flags.append("utf8_repaired")
        return cell.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return cell


def _read_csv(path: Path, fields: FieldMap, max_chars: int) -> Iterator[Record | Rejection]:
    f = _name(path)
    csv.field_size_limit(line_limit(max_chars))  # a quoted field over many lines is bounded too
    rows = 0
    line = 0
    with _open_stream(path) as stream:
        raw_text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        delimiter = fields.delimiter or ("\t" if _kind_name(path).endswith(".tsv") else ",")
        lines = _CappedLines(raw_text, line_limit(max_chars))
        reader = csv.reader(lines, strict=True, delimiter=delimiter)
        try:
            while True:  # header: the first non-blank row
                try:
                    header = next(reader, None)
                except (csv.Error, _LineTooLong) as e:
                    yield Rejection(f, None, None, None, "malformed_csv", f"unreadable header row: {e}")
                    return
                if header is None or any(c.strip() for c in header):
                    break
            if header is None:
                yield Rejection(f, None, None, None, "empty_file", "no header row")
                return
            header = [_repair_cell(c, []).strip() for c in header]
            while True:
                line = reader.line_num + lines.skipped + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except _LineTooLong:
                    rows += 1
                    yield Rejection(f, line, None, None, "too_long", f"line longer than {lines.limit:,} characters "
                                                                     f"(--max-chars {max_chars:,}); not read")
                    continue
                except csv.Error as e:
                    rows += 1
                    end = reader.line_num + lines.skipped
                    span = f" (a quoted field runs from line {line} to line {end})" if end > line else ""
                    yield Rejection(f, line, None, None, "malformed_csv", f"{e}{span}")
                    continue
                if not any(cell.strip() for cell in row):
                    continue
                rows += 1
                if len(row) != len(header):
                    yield Rejection(f, line, None, None, "malformed_csv",
                                    f"{len(row)} fields, header has {len(header)}")
                    continue
                flags: list[str] = []
                cells = [_repair_cell(cell, flags) for cell in row]
                yield validate(dict(zip(header, cells)), fields, f, line, max_chars, flags)
        except (OSError, EOFError, pa.ArrowException) as e:
            yield Rejection(f, None, None, None, "truncated_file", f"read error after line {line}: {e}")
            return
    if rows == 0:
        yield Rejection(f, None, None, None, "empty_file", "header only, no rows")


def _column_values(col: pa.Array) -> tuple[list, list[bool]]:
    """Python values of one column and which ones were repaired; values with no Python equivalent (invalid
    UTF-8, out-of-range dates) are repaired (strings) or become `_Unconvertible` instead of raising."""
    try:
        return col.to_pylist(), []
    except (ValueError, OverflowError, pa.ArrowException):
        pass
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        binary = col.view(pa.binary() if pa.types.is_string(col.type) else pa.large_binary()).to_pylist()
        out, repaired = [], []
        for b in binary:
            if b is None:
                out.append(None)
                repaired.append(False)
                continue
            try:
                out.append(b.decode("utf-8"))
                repaired.append(False)
            except UnicodeDecodeError:
                out.append(b.decode("utf-8", errors="replace"))
                repaired.append(True)
        return out, repaired
    out = []
    for i in range(len(col)):
        try:
            out.append(col[i].as_py())
        except (ValueError, OverflowError, pa.ArrowException):
            out.append(_Unconvertible(col.type))
    return out, []


def _read_parquet(path: Path, fields: FieldMap, max_chars: int) -> Iterator[Record | Rejection]:
    f = _name(path)
    with _opened(path) as fh:
        try:
            # page by page: a file written as one huge row group must not be decoded whole (1M news ≈ 3 GB)
            pf = pq.ParquetFile(fh, buffer_size=1 << 20, pre_buffer=False)
        except (OSError, pa.ArrowException) as e:
            yield Rejection(f, None, None, None, "unreadable_file", f"not a readable Parquet file: {e}")
            return
        yield from _parquet_rows(pf, f, fields, max_chars)


def _parquet_rows(pf: pq.ParquetFile, f: str, fields: FieldMap, max_chars: int) -> Iterator[Record | Rejection]:
    if pf.metadata.num_rows == 0:
        yield Rejection(f, None, None, None, "empty_file", "no rows")
        return
    names = pf.schema_arrow.names
    columns = _wanted(names, fields)
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=8192, columns=columns or names[:1]):
            for rec in _batch_records(batch, names, columns, fields, f, row, max_chars):
                row += 1
                yield rec
    except (OSError, pa.ArrowException) as e:
        yield Rejection(f, None, None, None, "truncated_file", f"read error after row {row}: {e}")


def _wanted(names: list[str], fields: FieldMap) -> list[str]:
    wanted = {fields.id, fields.text, fields.title, fields.source, fields.url, fields.published_at, fields.lang}
    return [c for c in names if c in wanted]


def _batch_records(batch: pa.RecordBatch, names: list[str], columns: list[str], fields: FieldMap, file: str,
                   row0: int, max_chars: int) -> Iterator[Record | Rejection]:
    """The record or rejection of each row of an Arrow batch (rows numbered from row0 + 1), reading only
    `columns`. Rows that `easy_rows` clears in C++ become Records directly; the others are built as raw rows —
    the other column names present with None values, so that a missing id or text column is reported with the
    names there are — and checked by `validate`. Texts that `checked_texts` passes stay in their column."""
    others = dict.fromkeys(c for c in names if c not in columns)
    text = fields.text
    values, repaired = {}, {}
    checked = checked_texts(batch.column(text), max_chars) if text in columns else None
    plain = fast = fffd = None  # without `checked`, the text column is not valid UTF-8 text: no row is plain
    if checked is not None:
        plain, fast, fffd = checked
    easy = easy_rows(batch, fields, fast)
    for name in columns:
        if name == text and fast is not None:
            col = batch.column(name)
            values[name] = [None if ok else col[i].as_py() for i, ok in enumerate(fast.tolist())]
            repaired[name] = []
        else:
            values[name], repaired[name] = _column_values(batch.column(name))
    none = [None] * batch.num_rows
    ids = values.get(fields.id, none)
    title, source, url, lang, published = (values.get(c, none) for c in (
        fields.title, fields.source, fields.url, fields.lang, fields.published_at))
    text_col = batch.column(text) if fast is not None else None
    for i in range(batch.num_rows):
        line = row0 + i + 1
        if easy[i]:
            flags = ["has_replacement_char"] if fffd[i] else []  # type: ignore[index]
            when = _published(published[i], flags, fields.date_format)
            yield Record(ids[i], title[i] or None, source[i] or None, url[i] or None, when, lang[i] or None, file,
                         line, flags, None, text_col, i, _dropped(published[i], when))
            continue
        raw = {**others, **{name: values[name][i] for name in columns}}
        ref = _Checked(text_col, i, bool(fffd[i])) if fast is not None and fast[i] else None  # type: ignore[index]
        yield validate(raw, fields, file, line, max_chars,
                       ["utf8_repaired"] if any(r and r[i] for r in repaired.values()) else [],
                       bool(plain[i]) if plain is not None else False, ref)


def easy_rows(batch: pa.RecordBatch, fields: FieldMap, fast: np.ndarray | None) -> np.ndarray:
    """Rows of an Arrow batch that `validate` would accept unchanged, found with Arrow's C++ kernels (no GIL, no
    Python object per row): the text passed `checked_texts`; the id is a valid UTF-8 string of 1 to
    MAX_ID_CHARS characters with no control characters and no surrounding white space; title, source, url and
    lang are null, empty or such strings (control characters allowed but tab, newline, vertical tab, form feed
    and carriage return excluded); published_at is null, a valid string, a date or a timestamp. Every other row
    is checked by `validate` as before (at 100k documents, 2.5 s of holding the GIL)."""
    n = batch.num_rows
    names = batch.schema.names
    if fast is None or fields.id not in names or fields.id == fields.text:
        return np.zeros(n, dtype=np.bool_)
    easy = fast.copy()
    ids = batch.column(fields.id)
    if not _valid_text(ids):
        return np.zeros(n, dtype=np.bool_)
    ok = pc.and_(pc.invert(pc.match_substring_regex(ids, f"{_ID_CONTROL_RE2}|{_EDGE_SPACE_RE2}")),
                 pc.less_equal(pc.utf8_length(ids), MAX_ID_CHARS))
    easy &= ok.fill_null(False).to_numpy(zero_copy_only=False) & (_lengths(ids) > 0)
    for name in (fields.title, fields.source, fields.url, fields.lang):
        if name in names and name != fields.text:
            col = batch.column(name)
            if _valid_text(col):
                ok = pc.invert(pc.match_substring_regex(col, f"{_CONTROL_RE2}|{_EDGE_SPACE_RE2}")).fill_null(True)
            else:
                ok = col.is_null()
            easy &= ok.to_numpy(zero_copy_only=False)
    if fields.published_at in names:
        col = batch.column(fields.published_at)
        t = col.type
        if not (pa.types.is_timestamp(t) or pa.types.is_date(t) or _valid_text(col)):
            easy &= col.is_null().to_numpy(zero_copy_only=False)
    return easy


def _valid_text(col: pa.Array) -> bool:
    """Is this column of a string type, with valid UTF-8 (Python strings can be made from it as they are)?"""
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return False
    try:
        col.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _lengths(col: pa.Array) -> np.ndarray:
    """Byte length of each string (nulls 0)."""
    return pc.binary_length(col).fill_null(0).to_numpy(zero_copy_only=False)


def _read_txt(path: Path, fields: FieldMap, max_chars: int) -> Iterator[Record | Rejection]:
    f = _name(path)
    try:
        size = path.stat().st_size
        if size > line_limit(max_chars):
            yield Rejection(f, None, path.stem, fields.text, "too_long",
                            f"{size:,} bytes > {line_limit(max_chars):,} (--max-chars {max_chars:,}); not read")
            return
        data = path.read_bytes()
    except OSError as e:
        yield Rejection(f, None, None, None, "unreadable_file", str(e))
        return
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
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


def is_uri(path: object) -> bool:
    """A path given as a URI (hdfs://, s3a://, file://...): Spark's executors read it, this process cannot."""
    return isinstance(path, str) and _URI.match(path) is not None


@dataclass(frozen=True)
class RemoteFile:
    """An input file on a filesystem Spark reads, as its engine listed it."""

    name: str  # as records, rejections and messages name it: the URI given, and the path below it
    path: str  # as Hadoop names it (qualified: `file:/tmp/a.jsonl`)
    size: int


def supported(name: str) -> bool:
    """Is a file of this name read (by its extension)?"""
    return _kind(Path(name)) is not None


def unsupported_file(name: str) -> Rejection:
    return Rejection(name, None, None, None, "unsupported_file",
                     "not .jsonl/.json/.ndjson/.csv/.tsv/.parquet/.txt (optionally .gz/.zst)")


def unsupported_type(name: object) -> InputError:
    return InputError(f"{name}: unsupported file type (use .jsonl, .json, .ndjson, .csv, .tsv, .parquet or .txt, "
                      "optionally compressed .gz/.zst)")


def expand_paths(paths: list[str | os.PathLike]) -> tuple[list[Path | str], list[Rejection]]:
    """Files to read, in a stable order: directories are walked recursively (sorted); files of unknown type
    or broken links inside a directory are reported, an unknown or missing path given directly is an
    `InputError`. URIs stay as given, in their place: the engine that reads them lists them."""
    files: list[Path | str] = []
    skipped: list[Rejection] = []
    for given in paths:
        if is_uri(given):
            files.append(given)  # type: ignore[arg-type]
            continue
        p = Path(given)
        if p.is_dir():
            for sub in sorted(q for q in p.rglob("*") if q.is_file() or q.is_symlink()):
                if any(part.startswith(".") for part in sub.relative_to(p).parts):
                    continue
                if not sub.exists():
                    skipped.append(Rejection(_name(sub), None, None, None, "unreadable_file",
                                             "broken symbolic link"))
                elif sub.is_dir():
                    continue
                elif _kind(sub) is None:
                    skipped.append(unsupported_file(_name(sub)))
                else:
                    files.append(sub)
        elif p.is_file():
            if _kind(p) is None:
                raise unsupported_type(p)
            files.append(p)
        elif p.exists():
            raise InputError(f"{p}: not a regular file or directory")
        else:
            raise InputError(f"{p}: no such file or directory")
    return files, skipped


def read_file(path: Path, fields: FieldMap = FieldMap(), max_chars: int = DEFAULT_MAX_CHARS
              ) -> Iterator[Record | Rejection]:
    """Records and rejections of one file, in file order. Never raises for bad content: a problem with the
    whole file (unreadable, empty, wrong format, truncated) is a `Rejection` with `line=None`, after the
    rows read before it."""
    kind = _kind(path)
    assert kind is not None
    f = _name(path)
    try:
        problem = _check_format(path, kind)
    except OSError as e:
        yield Rejection(f, None, None, None, "unreadable_file", e.strerror or str(e))
        return
    if problem is not None:
        yield problem
        return
    try:
        yield from _READERS[kind](path, fields, max_chars)
    except OSError as e:
        yield Rejection(f, None, None, None, "unreadable_file", str(e))
    except Exception as e:  # noqa: BLE001 - a nightly job must survive any file; the reason is recorded
        yield Rejection(f, None, None, None, "unreadable_file", f"cannot read the file: {type(e).__name__}: {e}")


def records_from_table(table: pa.Table, fields: FieldMap = FieldMap(), name: str = "<table>",
                       max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[Record | Rejection]:
    """Records of an in-memory Arrow table (rows numbered from 1), for callers of the Python API."""
    names = table.column_names
    columns = _wanted(names, fields)
    row = 0
    for batch in table.to_batches(max_chunksize=8192):
        for rec in _batch_records(batch, names, columns, fields, name, row, max_chars):
            row += 1
            yield rec
