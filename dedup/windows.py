"""Time windows: which documents may be linked, and which bucket files linking a group of documents reads.

A document's date is its `published_at`, else the `started_at` of the batch that indexed it (flagged
`dated_by_ingest`). In an index with a window of W days a pair is a candidate only if its two dates are at most W
days apart: a property of the pair alone, so k batches still give the pairs of a one-shot ingest, and a late
arrival (last month's article ingested tonight) meets the documents of its own month. Bucket files hold the
documents of one period (`period_days` long, counted from 1970-01-01) and the manifest records each file's first
and last date (`Manifest.ranges`), so linking documents dated [lo, hi] opens only the files whose range meets
[lo - W, hi + W]: a night's cost follows the window, not the archive.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from dedup.errors import InputError

DAY = 86_400
INGEST_DATED = "dated_by_ingest"  # flag of a document dated by its batch's start (it had no published_at)
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
