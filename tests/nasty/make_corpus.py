"""Build tests/nasty/files/ and tests/nasty/EXPECTED.json: small, real, broken news inputs.

Every file holds real article text from data/articles/news_sample.jsonl plus the broken bits a scraper emits.
The expected outcome of every row is written down here, next to the row, by hand: EXPECTED.json is derived
from these declarations, never from running dedup. Run from the repository root (output is deterministic):

    python tests/nasty/make_corpus.py

EXPECTED.json: for the whole `files/` directory ingested as ONE batch with `--max-chars` = max_chars:
  files.<relative path>.indexed    ids indexed from that file, in file order
  files.<relative path>.rejected   [line, reason] of every rejection (line null = the whole file)
  flags.<id>                       the exact flags of that indexed document
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = HERE / "files"
MAX_CHARS = 20_000

ARTICLES = [json.loads(line) for line in open(ROOT / "data/articles/news_sample.jsonl", encoding="utf-8")]


def art(i: int) -> dict:
    return ARTICLES[i]


def text(i: int) -> str:
    return ARTICLES[i]["text"]


class Expect:
    def __init__(self) -> None:
        self.files: dict[str, dict] = {}
        self.flags: dict[str, list[str]] = {}

    def file(self, name: str) -> dict:
        return self.files.setdefault(name, {"indexed": [], "rejected": []})

    def ok(self, name: str, doc_id: str, flags: list[str] | None = None) -> None:
        self.file(name)["indexed"].append(doc_id)
        self.flags[doc_id] = flags or []

    def bad(self, name: str, line: int | None, reason: str) -> None:
        self.file(name)["rejected"].append([line, reason])


E = Expect()


class Lines:
    """A JSONL file written line by line; `add` returns the 1-based line number of what it wrote."""

    def __init__(self, name: str):
        self.name, self.parts, self.n = name, [], 0

    def raw(self, data: bytes | str) -> int:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.parts.append(data)
        self.n += 1
        return self.n

    def obj(self, d: object) -> int:
        return self.raw(json.dumps(d, ensure_ascii=False))

    def ok(self, d: dict, doc_id: str | None = None, flags: list[str] | None = None) -> None:
        self.obj(d)
        E.ok(self.name, doc_id if doc_id is not None else d["id"], flags)

    def bad(self, data: object, reason: str) -> None:
        line = self.raw(data) if isinstance(data, (str, bytes)) else self.obj(data)
        E.bad(self.name, line, reason)

    def bytes(self, eol: bytes = b"\n", final_eol: bool = True) -> bytes:
        return eol.join(self.parts) + (eol if final_eol else b"")

    def write(self, eol: bytes = b"\n", final_eol: bool = True) -> None:
        (OUT / self.name).write_bytes(self.bytes(eol, final_eol))


def doc(doc_id: object, body: object, **extra: object) -> dict:
    d = {"id": doc_id, "text": body}
    d.update(extra)
    return d


def good_and_bad() -> None:
    f = Lines("good_and_bad.jsonl")
    a = art(0)
    f.ok({"id": "nasty-001", "title": a["title"], "source": a["source"], "url": a["url"],
          "published_at": "2024-03-01T09:30:00+02:00", "lang": "en", "text": a["text"]})
    f.raw("")                                                        # blank lines are not rows
    f.bad('{"id": "nasty-broken", "text": "' + text(1)[:300].replace('"', "'").replace("\n", " "), "malformed_json")
    f.bad('{"id": "nasty-trailing-comma", "text": "x",}', "malformed_json")
    f.bad([doc("nasty-in-array", text(2))], "malformed_json")
    f.bad('"just a string"', "malformed_json")
    f.bad({"text": text(3)}, "missing_id")
    f.bad(doc("", text(4)), "empty_id")
    f.bad(doc(None, text(4)), "missing_id")
    f.bad(doc(["nasty-list-id"], text(5)), "bad_type")
    f.bad(doc(True, text(5)), "bad_type")
    f.ok(doc(4242, text(6)), "4242")                                  # integer ids become strings
    f.bad(doc(1.5, text(7)), "bad_type")
    f.bad({"id": "nasty-no-text"}, "missing_text")
    f.bad(doc("nasty-empty-text", ""), "empty_text")
    f.bad(doc("nasty-blank-text", " \n\t  "), "empty_text")
    f.bad(doc("nasty-number-text", 12345), "bad_type")
    f.bad(doc("nasty-object-text", {"body": text(8)}), "bad_type")
    f.bad(doc("nasty-nul", text(9)[:200] + "\x00" + text(9)[200:]), "control_chars")
    t = text(10)
    f.ok(doc("nasty-ctrl-ok", t[:100] + "\x07\x1b[0m" + t[100:500] + "\x0c\x08" + t[500:]),
         flags=["control_chars_removed"])                             # a few stray controls: replaced, kept
    f.bad(doc("nasty-binary", "".join(chr(c % 31 + 1) for c in range(400)) + " " + text(11)[:200]),
          "control_chars")                                           # mostly control characters: binary
    f.bad(doc("nasty-punct", "!!! ??? --- *** ... ### ~~~ ||| ;;; :::"), "no_words")
    f.ok(doc("nasty-short", "View comments"))                          # indexed, never linked (< min_words)
    f.bad(doc("nasty-001", text(12)), "duplicate_id")                  # same id again: the first row wins
    f.bad(doc("nasty-new\nline", text(13)), "control_chars")
    f.bad(doc("nasty-" + "x" * 2000, text(13)), "too_long")
    f.ok(doc("nasty-bad-fields", text(14), title=7, published_at="not a date", lang=["en"]),
         flags=["bad_title", "bad_lang", "bad_published_at"])        # bad optional fields: dropped, flagged
    f.ok(doc("  nasty-padded  ", text(15)), "nasty-padded")
    f.bad('{"id": "nasty-deep", "text": ' + "[" * 2000 + "]" * 2000 + "}", "malformed_json")
    f.bad('{"id": "nasty-nan", "text": NaN}', "malformed_json")
    f.bad(b'{"id": "nasty-junk-byte",\xff "text": "abc"}', "malformed_json")
    f.ok(doc("nasty-last-no-eol", text(16)))
    f.write(final_eol=False)


def encoding() -> None:
    f = Lines("encoding.jsonl")
    t = text(17)
    line = json.dumps(doc("nasty-latin1-byte", "caf@@ " + t)).encode().replace(b"@@", b"\xe9")
    f.raw(line)
    E.ok(f.name, "nasty-latin1-byte", ["utf8_repaired"])              # invalid UTF-8: repaired with U+FFFD
    f.raw('{"id": "nasty-lone-surrogate", "text": "\\ud800 ' + json.dumps(text(18))[1:] + "}")
    E.ok(f.name, "nasty-lone-surrogate", ["utf8_repaired"])
    f.raw(json.dumps(doc("nasty-id-@@", text(19))).encode().replace(b"@@", b"\xff"))
    E.ok(f.name, "nasty-id-\ufffd", ["utf8_repaired"])
    moji = text(20).replace("\u2019", "\u00e2\u20ac\u2122").replace("'", "\u00e2\u20ac\u2122") + " Caf\u00c3\u00a9."
    f.ok(doc("nasty-mojibake", moji), flags=["mojibake_suspected"])   # stored as received, flagged
    f.ok(doc("nasty-greek", "Η Ελλάδα και η Τουρκία υπέγραψαν συμφωνία. " + text(21)))
    f.ok(doc("nasty-replacement-char", "an \ufffd already in the feed " + text(22)),
         flags=["has_replacement_char"])
    f.write()


def gigantic() -> None:
    f = Lines("gigantic.jsonl")
    f.ok(doc("nasty-before-giant", text(23)))
    giant = "\n\n".join(text(i) for i in range(24, 40))              # one "page" of 16 articles
    assert len(giant) > MAX_CHARS
    f.bad(doc("nasty-giant", giant), "too_long")
    f.ok(doc("nasty-after-giant", text(40)))
    f.write()


def bom_crlf() -> None:
    f = Lines("bom_crlf.jsonl")
    f.parts.append(b"\xef\xbb\xbf" + json.dumps(doc("nasty-bom", text(41))).encode())
    f.n = 1
    E.ok(f.name, "nasty-bom")
    f.ok(doc("nasty-crlf", text(42)))
    f.raw("")
    f.ok(doc("nasty-crlf-after-blank", text(43)))
    f.write(eol=b"\r\n")


def csv_files() -> None:
    name = "feed with spaces ü.csv"
    line = 1
    header = ["id", "title", "text", "published_at"]
    rows: list[tuple[str, object, list[str] | None]] = []

    def row(cells: list[str] | str, outcome: object, flags: list[str] | None = None) -> None:
        rows.append((cells if isinstance(cells, str) else _csv_line(cells), outcome, flags))

    row(["nasty-csv-1", art(44)["title"], text(44), "2024-02-29"], "nasty-csv-1")   # multi-line quoted text
    one_line = text(45).replace("\n", " ").replace('"', "'")
    row(f'nasty-csv-broken,"A "quoted" title","{one_line}",2024-01-01\r\n', "malformed_csv")  # broken quote
    row(["nasty-csv-short", "only two fields"], "malformed_csv")
    row(["nasty-csv-2", "Title", text(46), "2025/13/45"], "nasty-csv-2", ["bad_published_at"])
    row("\r\n", None)                                                           # blank line: not a row
    row(["", "no id", text(47), ""], "empty_id")
    row(["nasty-csv-3", "After the bad rows", text(48), "2024-05-05T10:00:00Z"], "nasty-csv-3")
    data = b"\xef\xbb\xbf" + _csv_line(header).encode()
    for cells, outcome, flags in rows:
        start = line + 1
        line += cells.count("\n")
        data += cells.encode("utf-8")
        if outcome is None:
            continue
        if outcome in ("malformed_csv", "empty_id"):
            E.bad(name, start, outcome)  # type: ignore[arg-type]
        else:
            E.ok(name, outcome, flags)  # type: ignore[arg-type]
    latin = _csv_line(["nasty-csv-latin1", "Caf@@", "Caf@@ " + text(49), ""]).encode().replace(b"@@", b"\xe9")
    data += latin
    E.ok(name, "nasty-csv-latin1", ["utf8_repaired"])
    (OUT / name).write_bytes(data)

    # an unterminated quote swallows the rest of the file: one malformed row, the rows it swallowed are inside it
    name = "unterminated.csv"
    head = _csv_line(["id", "text"]) + _csv_line(["nasty-unterminated-ok", text(50)])
    bad_line = head.count("\n") + 1
    tail = ('nasty-open-quote,"' + text(51)[:400].replace('"', "'")
            + "\r\nnasty-swallowed-1,plain row\r\nnasty-swallowed-2,plain row\r\n")
    (OUT / name).write_text(head + tail, "utf-8", newline="")
    E.ok(name, "nasty-unterminated-ok")
    E.bad(name, bad_line, "malformed_csv")

    (OUT / "header_only.csv").write_text("id,title,text\r\n", "utf-8", newline="")
    E.bad("header_only.csv", None, "empty_file")


def _csv_line(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(cells)
    return buf.getvalue()


def compressed() -> None:
    # named .gz but plain JSON
    (OUT / "not_gzip.jsonl.gz").write_text(json.dumps(doc("nasty-not-gzip", text(52))) + "\n", "utf-8")
    E.bad("not_gzip.jsonl.gz", None, "wrong_format")
    # gzip data without the .gz
    (OUT / "gzip_without_gz.jsonl").write_bytes(gzip.compress((json.dumps(doc("nasty-gz", text(53))) + "\n").encode(),
                                                                mtime=0))
    E.bad("gzip_without_gz.jsonl", None, "wrong_format")
    # truncated: five rows, then a long row cut in the middle; the five rows are kept
    name = "truncated.jsonl.gz"
    rows = [doc(f"nasty-gz-{i}", text(54 + i)) for i in range(5)]
    long_row = doc("nasty-gz-cut", "\n\n".join(text(i) for i in range(60, 100)))
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in rows + [long_row]).encode(), mtime=0)
    (OUT / name).write_bytes(data[: int(len(data) * 0.7)])
    for r in rows:
        E.ok(name, r["id"])
    E.bad(name, None, "truncated_file")
    # a good zstd file
    name = "good.jsonl.zst"
    with pa.output_stream(str(OUT / name), compression="zstd") as s:
        for i in (100, 101):
            s.write((json.dumps(doc(f"nasty-zst-{i}", text(i))) + "\n").encode())
    E.ok(name, "nasty-zst-100")
    E.ok(name, "nasty-zst-101")
    # UTF-16 with a byte order mark
    (OUT / "utf16.jsonl").write_bytes((json.dumps(doc("nasty-utf16", text(102))) + "\n").encode("utf-16"))
    E.bad("utf16.jsonl", None, "wrong_format")
    # empty and blank files
    (OUT / "empty.jsonl").write_bytes(b"")
    E.bad("empty.jsonl", None, "empty_file")
    (OUT / "blank_lines.ndjson").write_bytes(b"\n   \n\r\n\t\n")
    E.bad("blank_lines.ndjson", None, "empty_file")


def parquet_files() -> None:
    (OUT / "not_parquet.parquet").write_text("id,text\nnasty-csv-in-parquet,hello\n", "utf-8")
    E.bad("not_parquet.parquet", None, "wrong_format")

    full = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([doc(f"nasty-pq-cut-{i}", text(103 + i)) for i in range(5)]), full)
    (OUT / "truncated.parquet").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    E.bad("truncated.parquet", None, "truncated_file")

    name = "mixed.parquet"
    texts = [text(110).encode(), None, b"", ("caf@@ " + text(111)).encode().replace(b"@@", b"\xe9"), text(112).encode()]
    offsets, body = [0], b""
    for t in texts:
        body += t or b""
        offsets.append(len(body))
    validity = pa.array([t is not None for t in texts]).buffers()[1]
    bad_utf8 = pa.Array.from_buffers(pa.string(), len(texts), [validity, pa.py_buffer(pa.array(offsets, pa.int32())
                                                                                      .buffers()[1]),
                                                                 pa.py_buffer(body)])
    table = pa.table({
        "id": pa.array(["nasty-pq-1", "nasty-pq-null-text", "nasty-pq-empty", "nasty-pq-latin1", None]),
        "text": bad_utf8,
        "title": pa.array(["A title", None, "t", "Caf\u00e9", "no id"]),
        "published_at": pa.array([18000, None, None, 19000, None], pa.date32()),
        "comments": pa.array([[{"user": "a", "n": 1}], [], None, [], []]),  # unused nested column: ignored
    })
    pq.write_table(table, OUT / name)
    E.ok(name, "nasty-pq-1")
    E.bad(name, 2, "missing_text")
    E.bad(name, 3, "empty_text")
    E.ok(name, "nasty-pq-latin1", ["utf8_repaired"])
    E.bad(name, 5, "missing_id")

    name = "other_columns.parquet"
    pq.write_table(pa.table({"guid": ["g1", "g2"], "body": [text(113), text(114)]}), OUT / name)
    E.bad(name, 1, "missing_id")
    E.bad(name, 2, "missing_id")


def txt_files() -> None:
    (OUT / "Заметка с пробелом.txt").write_text(text(115), "utf-8")
    E.ok("Заметка с пробелом.txt", "Заметка с пробелом")
    (OUT / "dated.txt").write_text("date 2024-06-01\n" + text(116), "utf-8")
    E.ok("dated.txt", "dated")
    (OUT / "empty.txt").write_bytes(b"")
    E.bad("empty.txt", None, "empty_file")
    (OUT / "blank.txt").write_bytes(b"  \n\n")
    E.bad("blank.txt", None, "empty_file")
    (OUT / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    E.bad("binary.txt", 1, "control_chars")
    (OUT / "notes.md").write_text("# not an input format\n", "utf-8")
    E.bad("notes.md", None, "unsupported_file")


def sql_ids() -> None:
    """Ids that break string-built SQL; the copies link so `dedup similar --id` has something to find."""
    f = Lines("sub dir/sql ids.jsonl")
    base = text(117)
    cut = base[: base.rfind(".", 0, len(base) - 200) + 1]
    f.ok(doc("o'brien", base))
    f.ok(doc('x"; DROP TABLE documents; --', cut))
    f.ok(doc("' OR '1'='1", base + " Reporting by a wire service."))
    f.ok(doc("Robert'); DROP TABLE students;--", text(118)))
    f.bad(doc("nasty-001", text(119)), "duplicate_id")                 # the first file's id: first wins
    (OUT / "sub dir").mkdir()
    f.write()


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    for build in (good_and_bad, encoding, gigantic, bom_crlf, csv_files, compressed, parquet_files, txt_files,
                  sql_ids):
        build()
    files = {k: E.files[k] for k in sorted(E.files)}
    expected = {"max_chars": MAX_CHARS, "files": files, "flags": dict(sorted(E.flags.items()))}
    (HERE / "EXPECTED.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    main()
