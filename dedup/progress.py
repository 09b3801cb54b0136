"""Progress of an ingest for a person at a terminal: a bar over the input's bytes while reading (sizes are known
before the first byte is read), then one line per stage with its count and time.

`ingest(progress=...)` reports through one callable, `progress(event, n, total)` (`dedup.engines.local.Progress`);
the events are:

- ``"read"``: documents read so far (total None), after each chunk;
- ``"bytes"``: bytes of the input files read so far, of ``total`` (right after each ``"read"``);
- ``"candidates"``: candidate pairs found so far (total None);
- ``"<stage> done"``: a stage finished, ``n`` its count (see `STAGES`), ``total`` its milliseconds.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from typing import TextIO

from dedup.readers import RemoteFile, reading

# what the count of each stage's "done" event counts
STAGES = {"read": "documents read, sketched and stored", "link": "candidate pairs", "verify": "pairs linked",
          "cluster": "clusters of 2+", "commit": "documents in the index"}


class InputMeter:
    """How many bytes of the input files reading has got through: the files before the one being read, and the
    position of that one (published by the readers as `dedup.readers.reading`; compressed files count their
    compressed bytes, like their sizes)."""

    def __init__(self, files: list[Path | RemoteFile]):
        sizes = [_size(f) for f in files]
        self.total = sum(sizes)
        self.before = list(itertools.accumulate(sizes, initial=0))  # bytes of the files before file i
        self.current = 0

    def start(self, i: int) -> None:
        """File `i` (of the list given; their number once all are read) is read now."""
        self.current = i

    def done(self) -> int:
        if self.current + 1 >= len(self.before):
            return self.total
        fh = reading.get()
        try:
            at = fh.tell() if fh is not None else 0
        except (OSError, ValueError):  # closed between two looks
            at = 0
        return min(self.before[self.current] + at, self.before[self.current + 1], self.total)


class TerminalProgress:
    """The `progress` callable of `dedup ingest` on a terminal: click's progress bar over the bytes (percent, ETA)
    with the documents and the rate beside it, closed at the first later event; then one line per stage."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.bar = None  # click's ProgressBar while reading
        self.documents = 0
        self.started = time.monotonic()

    def __call__(self, event: str, n: int, total: int | None) -> None:
        if event == "read":
            self.documents = n
        elif event == "bytes":
            self._advance(n, total or 0)
        elif event.endswith(" done"):
            stage = event[:-5]
            if stage == "read" and self.bar is not None:
                self.bar.update(self.bar.length - self.bar.pos)  # every file read to its end
            self._close()
            self.stream.write(f"dedup: {stage:8} {n:>12,} {STAGES.get(stage, '')}  {(total or 0) / 1000:.1f}s\n")
            self.stream.flush()

    def _advance(self, done: int, total: int) -> None:
        import click

        if self.bar is None:
            self.bar = click.progressbar(length=max(total, 1), label="dedup: reading", file=self.stream,
                                         show_percent=True, show_eta=True, item_show_func=self._info, width=30)
        self.bar.update(done - self.bar.pos, (done, total))

    def _info(self, at: tuple[int, int] | None) -> str | None:
        if at is None:
            return None
        done, total = at
        rate = done / max(time.monotonic() - self.started, 1e-3)
        return f"{_mb(done)} of {_mb(total)}, {_mb(rate)}/s, {self.documents:,} documents"

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.render_finish()
            self.bar = None


def _size(f: Path | RemoteFile) -> int:
    if isinstance(f, RemoteFile):
        return f.size
    try:
        return f.stat().st_size
    except OSError:  # gone since it was listed: reading it says so
        return 0


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"
