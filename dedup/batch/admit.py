"""Identity rules of a batch, before any fingerprinting:
- within one batch the first row with an id wins; later rows with that id are rejected as `duplicate_id`;
- a document already in the index with the same text is `unchanged` (nothing is written for it);
- the same id with a different text is `replaced`: the old version disappears from every table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import xxhash

from dedup.errors import DedupError
from dedup.link import Numbering
from dedup.normalize import utf8_buffers
from dedup.readers import Record, Rejection
from dedup.store import fetch


class StrictError(DedupError):
    """--strict: the first bad row stops the batch; nothing is committed."""

    def __init__(self, rejection: Rejection):
        super().__init__(rejection.message())
        self.rejection = rejection


@dataclass
class Rejections:
    """Every row or file not indexed, in input order; in strict mode the first one stops the batch."""

    strict: bool = False
    items: list[Rejection] = field(default_factory=list)
    rows: int = 0          # rejected rows
    file_errors: int = 0   # whole-file problems (not rows)

    def add(self, rejected: list[Rejection]) -> None:
        for r in rejected:
            if self.strict:
                raise StrictError(r)
            self.items.append(r)
            if r.line is None:
                self.file_errors += 1
            else:
                self.rows += 1


@dataclass
class RowAdmission:
    """One chunk of input after the first-row-wins rule."""

    records: list[Record]        # to fingerprint, in input order
    rejected: list[Rejection]    # reader rejections and duplicate ids, in input order
    read: int                    # rows (not whole-file problems) this chunk held


class FirstRowWins:
    """The batch's ids seen so far, and where: later rows with the same id are rejected."""

    def __init__(self, id_field: str = "id") -> None:
        self.seen: dict[str, tuple[str, int | None]] = {}
        self.id_field = id_field  # the input's name for the id, which the rejection names

    def admit(self, chunk: list[Record | Rejection]) -> RowAdmission:
        out = RowAdmission([], [], 0)
        for r in chunk:
            if isinstance(r, Rejection):
                out.read += r.line is not None
                out.rejected.append(r)
                continue
            out.read += 1
            first = self.seen.get(r.doc_id)
            if first is not None:
                where = first[0] if first[1] is None else f"{first[0]}:{first[1]}"
                out.rejected.append(Rejection(r.file, r.line, r.doc_id, self.id_field, "duplicate_id",
                                              f"{self.id_field} {r.doc_id!r} already seen at {where} in this "
                                              "batch; the first row wins"))
                continue
            self.seen[r.doc_id] = (r.file, r.line)
            out.records.append(r)
        return out


def text_hashes(texts: pa.ChunkedArray) -> list[int]:
    """The identity of each text's version (xxh3-64 of its UTF-8 bytes): decides unchanged vs replaced."""
    out: list[int] = []
    for chunk in texts.chunks:
        offsets, data = utf8_buffers(chunk)
        view, bounds = memoryview(data), offsets.tolist()
        out.extend(xxhash.xxh3_64_intdigest(view[bounds[i]:bounds[i + 1]]) for i in range(len(bounds) - 1))
    return out


@dataclass
class KnownDocuments:
    """Ids and text hashes of the documents indexed before the batch, loaded once (a query per chunk read every
    documents file again: 2 s of a nightly batch into a 1M index)."""

    numbering: Numbering
    hashes: np.ndarray
    dates: np.ndarray | None = None  # epoch seconds, when loaded with the `batches` files (see dedup.windows)

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection, documents_files: list[str], batches_files: list[str] | None = None
             ) -> KnownDocuments:
        """`batches_files` (an index with a window): also each document's date, its published_at or else the
        start of its batch."""
        if batches_files is None:
            known = fetch(con, "SELECT doc_id, text_hash FROM read_parquet($f)", {"f": documents_files})
            return cls(Numbering(known["doc_id"]), known["text_hash"].to_numpy())
        known = fetch(con, "SELECT d.doc_id, d.text_hash, epoch_us(coalesce(d.published_at, b.started_at)) "
                           "// 1000000 AS at FROM read_parquet($f) d LEFT JOIN read_parquet($b) b USING (batch)",
                      {"f": documents_files, "b": batches_files})
        return cls(Numbering(known["doc_id"]), known["text_hash"].to_numpy(),
                   known["at"].to_numpy(zero_copy_only=False).astype(np.int64))

    def stored_hashes(self, ids: list[str]) -> dict[str, int]:
        """Text hash of each of `ids` already in the index."""
        at = self.numbering.find(pa.array(ids, pa.string()))
        return {ids[i]: int(self.hashes[at[i]]) for i in np.flatnonzero(at >= 0)}


@dataclass
class Admission:
    """The records of a chunk whose text is not already indexed under their id."""

    records: list[Record]
    hashes: list[int]            # text hash of each record
    texts: pa.ChunkedArray       # their texts
    indexed_before: list[bool]   # the id holds another version in the index (replaced once this one is indexed)
    unchanged: int               # records skipped: same id, same text


def admit_versions(records: list[Record], texts: pa.ChunkedArray, known: KnownDocuments) -> Admission:
    """Split a chunk's records (with `texts`, theirs) into unchanged ones and those to index."""
    hashes = text_hashes(texts)
    old = known.stored_hashes([r.doc_id for r in records])
    at = [i for i, (r, h) in enumerate(zip(records, hashes)) if old.get(r.doc_id) != h]
    texts = texts.take(pa.array(at, pa.int64())) if len(at) < len(records) else texts
    return Admission([records[i] for i in at], [hashes[i] for i in at], texts,
                     [records[i].doc_id in old for i in at], len(records) - len(at))
