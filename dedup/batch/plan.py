"""Which bucket rows are linked against which files.

A batch is linked a part at a time (up to `max_docs` documents: the bucket files of consecutive chunks, at least
one file each) against the index and the batch's other parts; each pair comes up in exactly one part. The rows
of the last part are kept as its files are written and linked from memory, not read back. That part goes
first (against the index and the earlier parts), so its rows are freed before any other part is read; each
earlier part then meets the index and the parts after it but before the last.

In an index with a time window (`dedup.windows`) the batch's files are ordered by date and cut into parts of
neighbouring dates, read back from their files; each part meets only the files (of the index, and of the parts
after it) whose dates come within the window of its own, and keeps only the pairs whose dates do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.batch.stage import BucketRun
from dedup.link import Numbering, Rows, candidate_pairs, merge_runs
from dedup.params import Params
from dedup.windows import Span, meets, near, within


@dataclass
class LinkPart:
    files: list[str]     # the part's bucket files
    others: list[str]    # the files it is merged with
    held: bool = False   # linked from `LinkPlan.held`, the rows kept as its files were written
    span: Span | None = None  # with a window: the first and last date of its documents


@dataclass
class LinkPlan:
    parts: list[LinkPart]
    held: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # the held part's rows, (band, bucket, document number)
    numbering: Numbering  # every document indexed once the batch commits: the index's, then the batch's
    first_new: int        # number of the batch's first document
    dates: np.ndarray | None = None  # date of each numbered document, in an index with a time window

    def files_read(self) -> set[str]:
        """Every bucket file some part reads (or, for the held part, was written from)."""
        return {f for part in self.parts for f in (*part.files, *part.others)}

    def part_rows(self, part: LinkPart, p: Params) -> list[str] | Rows:
        """The part's files, or for the held part its rows merged and numbered (and no longer kept here)."""
        if not part.held:
            return part.files
        held, self.held = self.held, []
        rows = merge_runs(held, p.all_bands)
        rows.docs += np.int32(self.first_new)
        return rows


@dataclass
class LinkPlanner:
    """Collects the batch's bucket files in the order they are staged and decides the parts as they come."""

    max_docs: int  # documents whose bucket rows one part holds in memory
    window_days: int = 0  # the index's time window (0: none)
    files: list[str] = field(default_factory=list)   # this batch's bucket files (not rewritten old ones)
    part_starts: list[int] = field(default_factory=list)
    held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    held_docs: int = 0
    spans: list[Span] = field(default_factory=list)  # with a window: each file's span and documents
    n_docs: list[int] = field(default_factory=list)

    def add(self, run: BucketRun) -> None:
        if self.window_days:  # parts are decided by date once every file is known
            self.files.append(run.path)
            self.spans.append(run.span)  # type: ignore[arg-type]
            self.n_docs.append(run.n_docs)
            return
        if not self.held or self.held_docs + run.n_docs > self.max_docs:  # this file begins a new part
            self.part_starts.append(len(self.files))
            self.held, self.held_docs = [], 0
        self.files.append(run.path)
        self.held.append((run.band, run.bucket, run.docs))
        self.held_docs += run.n_docs

    def plan(self, index_files: list[str], known: Numbering, replaced: set[str], indexed: list[str],
             dates: Dates | None = None) -> LinkPlan | None:
        """The parts, given every bucket file of the index once the batch commits (`index_files`, the batch's
        own included: a replacement also stages rewritten copies of old files, which count as the index's),
        the ids indexed before the batch, the replaced ones and the batch's documents in number order. None
        when the batch has no bucket rows."""
        new = self.files
        if not new:
            return None
        fresh = set(new)
        old = [f for f in index_files if f not in fresh]
        ids = known.ids.cast(pa.string())
        keep = None
        if replaced:
            keep = pc.invert(pc.is_in(ids, value_set=pa.array(sorted(replaced), pa.string())))
            ids = ids.filter(keep)
            numbering = Numbering(pa.concat_arrays([ids, pa.array(indexed, pa.string())]))
        else:  # the batch's ids are not the index's: numbered after them, without sorting the index's again
            numbering = Appended(known, pa.array(indexed, pa.string()))
        if self.window_days:
            assert dates is not None, "an index with a window plans with dates"
            kept = dates.known if keep is None else dates.known[keep.to_numpy(zero_copy_only=False)]
            return LinkPlan(self._windowed_parts(old, dates.spans), [], numbering, len(ids),
                            np.concatenate([kept, *dates.batch]))
        spans = list(zip(self.part_starts, self.part_starts[1:] + [len(new)]))
        last = spans.pop()[0]
        parts = [LinkPart(new[last:], old + new[:last], held=True)] + [LinkPart(new[i:j], old + new[j:last]) for i, j in spans]
        held, self.held = self.held, []
        return LinkPlan(parts, held, numbering, len(ids))

    def _windowed_parts(self, old: list[str], spans: dict[str, Span | None]) -> list[LinkPart]:
        """The batch's files by date, in parts of up to `max_docs` documents; each part with the files of the
        index and of the later parts that come within the window of its dates (`spans`: of the index's files)."""
        order = sorted(range(len(self.files)), key=lambda i: (self.spans[i][0], i))
        groups: list[list[int]] = []
        docs = 0
        for i in order:
            if not groups or docs + self.n_docs[i] > self.max_docs:
                groups.append([])
                docs = 0
            groups[-1].append(i)
            docs += self.n_docs[i]
        parts = []
        for g, group in enumerate(groups):
            lo, hi = min(self.spans[i][0] for i in group), max(self.spans[i][1] for i in group)
            later = [i for rest in groups[g + 1:] for i in rest]
            others = [f for f in old if spans.get(f) is not None and meets(spans[f], lo, hi, self.window_days)]
            others += [self.files[i] for i in later if meets(self.spans[i], lo, hi, self.window_days)]
            parts.append(LinkPart([self.files[i] for i in group], others, span=(lo, hi)))
        return parts


class Appended(Numbering):
    """The numbers `Numbering` gives the ids of `first` followed by `more` (none of them among `first`'s), found
    in `first` and in a numbering of `more` alone: sorting the 2M ids of an archive again for each night cost
    0.2-0.3 CPU s."""

    def __init__(self, first: Numbering, more: pa.Array):
        self.first, self.more = first, Numbering(more)
        self.ids = pa.concat_arrays([first.ids.cast(pa.string()), more])

    def find(self, values: pa.Array) -> np.ndarray:
        at, then = self.first.find(values), self.more.find(values)
        return np.where(at >= 0, at, np.where(then >= 0, then + len(self.first), -1))


@dataclass
class Dates:
    """What planning with a window needs besides the files: the dates of the documents indexed before the batch
    (in the order of their ids in `KnownDocuments`), of the batch's (in number order, a chunk at a time) and the
    spans of the index's bucket files (by absolute path). Every bucket file with rows of an index with a window has
    a span (ingest, replacement, retire and compaction record it); one without is an empty placeholder, not read."""

    known: np.ndarray
    batch: list[np.ndarray]
    spans: dict[str, Span | None]


def part_candidates(plan: LinkPlan, part: LinkPart, p: Params, threads: int) -> pa.Table:
    """Candidate pairs (doc_a, doc_b, bands) of one part: documents sharing at least `min_bands` bands; with a
    window, the other files' rows of documents outside the part's window are left out before they are merged."""
    dates, span = plan.dates, part.span
    return candidate_pairs(plan.part_rows(part, p), part.others, plan.numbering, p.bands, p.all_bands, p.min_bands,
                           threads=threads, keep=None if dates is None else
                           lambda a, b: within(dates, a, b, p.window_days),
                           rows=None if dates is None or span is None else
                           lambda docs: near(dates, docs, span, p.window_days))
