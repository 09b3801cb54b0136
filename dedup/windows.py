"""Time windows: which documents may be linked, and which bucket files linking a group of documents reads.

A document's date is its `published_at`, else the `started_at` of the batch that indexed it (flagged
`dated_by_ingest`). In an index with a window of W days a pair is a candidate only if its two dates are at most W
days apart: a property of the pair alone, so k batches still give the pairs of a one-shot ingest, and a late
arrival (last month's article ingested tonight) meets the documents of its own month. Bucket files hold the
documents of one period (`period_days` long, counted from 1970-01-01) and the manifest records each file's first
and last date (`Manifest.ranges`), so linking documents dated [lo, hi] opens only the files whose range meets
[lo - W, hi + W]: a night's cost follows the window, not the archive.

Retention (`dedup retire`) records its cutoffs with the index (`Params.retired_before`, `purged_before`), and
every later batch applies them to its documents by the same date (`Retention`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from dedup.errors import InputError
from dedup.params import Params
from dedup.readers import Record, Rejection

DAY = 86_400
INGEST_DATED = "dated_by_ingest"  # flag of a document dated by its batch's start (it had no published_at)
RETIRED = "retired_on_arrival"  # flag of a document dated before the index's retirement cutoff: no buckets
_EPOCH = datetime(1970, 1, 1)
_WINDOW = re.compile(r"\s*(\d+)\s*([dw]?)\s*")

Span = tuple[int, int]  # first and last date (epoch seconds) of a file's documents


def parse_window(text: str) -> int:
    """Days of a window written as `30d`, `4w` or `30` (days)."""
    m = _WINDOW.fullmatch(text)
    if not m or int(m.group(1)) < 1:
        raise InputError(f"--window {text!r}: give a number of days or weeks, e.g. 30d or 4w")
    return int(m.group(1)) * (7 if m.group(2) == "w" else 1)


def epoch_seconds(dt: datetime) -> int:
    """A naive UTC datetime (as dedup stores dates) in whole seconds since 1970."""
    return int((dt - _EPOCH).total_seconds() // 1)


def document_dates(published: Sequence[datetime | None], ingest_time: datetime) -> np.ndarray:
    """Each document's date in epoch seconds: its `published_at`, else `ingest_time`."""
    fallback = epoch_seconds(ingest_time)
    return np.array([fallback if d is None else epoch_seconds(d) for d in published], np.int64)


def periods(dates: np.ndarray, period_days: int) -> np.ndarray:
    """The period of each date: whole periods of `period_days` since 1970 (dates before it: negative)."""
    return dates // (period_days * DAY)


def meets(span: Span | None, lo: int, hi: int, window_days: int) -> bool:
    """Can a file dated `span` hold a document within the window of one dated in [lo, hi]? A file without a
    span (written before the index had ranges) always can."""
    return span is None or (span[0] <= hi + window_days * DAY and span[1] >= lo - window_days * DAY)


def within(dates: np.ndarray, a: np.ndarray, b: np.ndarray, window_days: int) -> np.ndarray:
    """Mask of the pairs of document numbers (a, b) whose dates are at most the window apart."""
    return np.abs(dates[a] - dates[b]) <= window_days * DAY


def near(dates: np.ndarray, docs: np.ndarray, span: Span, window_days: int) -> np.ndarray:
    """Mask of the document numbers `docs` dated within the window of some date of `span`: only those can pair with
    a document dated in it (a file whose span meets a part's holds others too, ~10 % of a night's archive rows)."""
    at = dates[docs]
    return (at >= span[0] - window_days * DAY) & (at <= span[1] + window_days * DAY)


@dataclass(frozen=True)
class Retention:
    """The cutoffs `dedup retire` recorded, applied to a batch's documents as if they had been in the index when
    it ran: one dated before `purged` is rejected (`purged_date`: a purge is for takedowns and licences, so it
    must not come back, and the job's log and exit code say so), one before `retired` is indexed with the flag
    RETIRED and gets no buckets (never matched, like a retired document)."""

    retired: datetime | None = None
    purged: datetime | None = None

    @classmethod
    def of(cls, p: Params) -> Retention:
        return cls(*(datetime.fromisoformat(v) if v else None for v in (p.retired_before, p.purged_before)))

    def apply(self, r: Record, ingest_time: datetime) -> Record | Rejection:
        """`r`, flagged if retired; or its rejection. A document without `published_at` is dated `ingest_time`."""
        if self.retired is None:
            return r
        date = r.published_at or ingest_time
        if self.purged is not None and date < self.purged:
            return Rejection(r.file, r.line, r.doc_id, "published_at", "purged_date",
                             f"dated {date.isoformat(sep=' ')}, before {self.purged.isoformat(sep=' ')}: the index "
                             "was purged up to that date (dedup retire --purge)")
        if date < self.retired:
            r.flags = [*r.flags, RETIRED]
        return r
