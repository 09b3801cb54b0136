"""Sketch and band a chunk of admitted records, and build the tables its files hold (`documents`, `signatures`,
`buckets`). Pure: the engine decides which thread writes which table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dedup.bands import bucket_runs
from dedup.batch.admit import Admission
from dedup.normalize import utf8_buffers
from dedup.params import Params
from dedup.readers import Record, Rejection
from dedup.sketch import Sketches, sketch_index
from dedup.windows import RETIRED, Span, periods

TEXT_COLUMN_BYTES = 1 << 30  # a string array's 32-bit offsets reach 2 GiB: the documents file's texts are cut


@dataclass
class Sketched:
    """A chunk's documents to index, with their fingerprints; row i of each array is records[i]."""

    records: list[Record]
    hashes: list[int]
    texts: pa.ChunkedArray
    signatures: np.ndarray
    lead: np.ndarray             # empty when the index has no lead bands
    anchors: np.ndarray          # (documents × 0) when the index has no anchor bands
    words: np.ndarray
    shingles: np.ndarray
    replaced: list[str]          # ids whose older version this chunk replaces
    rejected: list[Rejection]    # admitted records with nothing to fingerprint (`no_words`)

    @property
    def ids(self) -> list[str]:
        return [r.doc_id for r in self.records]


@dataclass
class BucketRun:
    """A chunk's bucket rows, sorted by (band, bucket): the table to stage and the same rows with document
    numbers (positions among the batch's indexed documents), which the link stage can keep instead of reading
    the file back."""

    table: pa.Table
    band: np.ndarray
    bucket: np.ndarray
    docs: np.ndarray     # int32 document numbers
    n_docs: int          # documents with rows (those with at least `min_words` words)
    path: str = ""       # the file it was staged as, once it is
    span: Span | None = None  # first and last date of its documents, in an index with a time window


def by_period(run: BucketRun, dates: np.ndarray, first: int, period_days: int) -> list[BucketRun]:
    """The run cut into one run per period of its documents' dates (`dates`: of the chunk's documents, numbered
    from `first`), each with its span: an index with a window keeps each period's documents in their own files."""
    row_dates = dates[run.docs - first]
    row_periods = periods(row_dates, period_days)
    out = []
    for period in np.unique(row_periods):
        rows = row_periods == period
        docs, span = run.docs[rows], (int(row_dates[rows].min()), int(row_dates[rows].max()))
        out.append(BucketRun(run.table.filter(pa.array(rows)), run.band[rows], run.bucket[rows], docs,
                             len(np.unique(docs)), span=span))
    return out


def sketch_admitted(adm: Admission, p: Params) -> Sketched | None:
    """Fingerprint the admitted records; a text without content words is rejected (its old version, if any,
    stays). None when nothing is left to index."""
    if not adm.records:
        return None
    return admitted_sketches(adm, sketch_index(adm.texts, p))


def admitted_sketches(adm: Admission, sk: Sketches) -> Sketched:
    """The admitted records with their sketches (`sk`, row i for record i), those without content words
    rejected."""
    ok = sk.shingles > 0
    rejected = [Rejection(r.file, r.line, r.doc_id, "text", "no_words", "text has no content words to fingerprint")
                for r, good in zip(adm.records, ok) if not good]
    idx = np.flatnonzero(ok)
    if not len(idx):
        return Sketched([], [], adm.texts.slice(0, 0), sk.signatures[:0], sk.lead[:0], sk.anchors[:0],
                        sk.words[:0], sk.shingles[:0], [], rejected)
    texts = adm.texts.take(pa.array(idx)) if len(idx) < len(adm.records) else adm.texts
    return Sketched([adm.records[i] for i in idx], [adm.hashes[i] for i in idx], texts, sk.signatures[idx],
                    sk.lead[idx] if len(sk.lead) else sk.lead, sk.anchors[idx], sk.words[idx], sk.shingles[idx],
                    [adm.records[i].doc_id for i in idx if adm.indexed_before[i]], rejected)


def text_column(texts: pa.ChunkedArray) -> pa.ChunkedArray:
    """A chunk's texts (no nulls) as the documents table's `string` column: in pieces of at most about
    TEXT_COLUMN_BYTES, each with its own 32-bit offsets over the same bytes (20k long reports can exceed the
    2 GiB a single string array holds)."""
    pieces = []
    for chunk in texts.chunks:
        offsets, data = utf8_buffers(chunk)
        marks = np.arange(offsets[0] + TEXT_COLUMN_BYTES, offsets[-1], TEXT_COLUMN_BYTES)
        cuts = np.unique(np.concatenate([[0], np.searchsorted(offsets, marks, "right") - 1, [len(chunk)]]))
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            rel = (offsets[a:b + 1] - offsets[a]).astype(np.int32)
            pieces.append(pa.Array.from_buffers(pa.string(), b - a, [None, pa.py_buffer(rel),
                                                                     pa.py_buffer(data[offsets[a]:offsets[b]])]))
    return pa.chunked_array(pieces, pa.string())


def documents_table(sk: Sketched, batch: int, store_text: bool) -> pa.Table:
    rows = sk.records
    return pa.table({
        "doc_id": sk.ids, "title": [r.title for r in rows], "source": [r.source for r in rows],
        "url": [r.url for r in rows], "published_at": [r.published_at for r in rows],
        "lang": [r.lang for r in rows], "words": sk.words, "shingles": sk.shingles,
        "text_hash": pa.array(sk.hashes, pa.uint64()),
        "text": text_column(sk.texts) if store_text else pa.nulls(len(rows), pa.string()),
        "flags": [r.flags for r in rows], "batch": pa.array([batch] * len(rows), pa.int32()),
        "file": [r.file for r in rows], "line": [r.line for r in rows],
    })


def signatures_table(sk: Sketched, num_perm: int) -> pa.Table:
    """MinHash values as datasketch users load them (nothing in dedup reads them back)."""
    sigs = sk.signatures
    return pa.table({
        "doc_id": sk.ids,
        "minhash": pa.ListArray.from_arrays(np.arange(0, sigs.size + 1, num_perm, dtype=np.int32),
                                            pa.array(sigs.ravel(), pa.uint32())),
    })


def matchable(records: list[Record]) -> np.ndarray:
    """Mask of the records that may have buckets: not dated before the index's retirement cutoff."""
    return np.array([RETIRED not in r.flags for r in records], bool)


def bucket_run(sk: Sketched, first: int, p: Params) -> BucketRun | None:
    """The chunk's bucket rows; its documents are numbered from `first`. None when no document has `min_words`
    words (shorter ones are indexed but never linked) and is matchable."""
    linkable = np.flatnonzero((sk.words >= p.min_words) & matchable(sk.records))
    if not len(linkable):
        return None
    band, bucket, doc = bucket_runs(sk.signatures[linkable], sk.lead[linkable] if len(sk.lead) else sk.lead,
                                    sk.anchors[linkable], p)
    return run_of(sk, band, bucket, linkable[doc], first, len(linkable))


def run_of(sk: Sketched, band: np.ndarray, bucket: np.ndarray, doc: np.ndarray, first: int, n_docs: int
           ) -> BucketRun:
    """The BucketRun of bucket rows (band, bucket, doc: row in `sk`) sorted by (band, bucket)."""
    table = pa.table({"band": band, "bucket": bucket, "doc_id": pa.array(sk.ids, pa.string()).take(pa.array(doc))})
    return BucketRun(table, band, bucket, (first + doc).astype(np.int32), n_docs)
