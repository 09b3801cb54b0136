"""Which bucket rows are linked against which files.

A batch is linked a part at a time (up to `max_docs` documents: the bucket files of consecutive chunks, at least
one file each) against the index and the batch's other parts; each pair comes up in exactly one part. The rows
of the last part are kept as its files are written and linked from memory, not read back. That part goes
first (against the index and the earlier parts), so its rows are freed before any other part is read; each
earlier part then meets the index and the parts after it but before the last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.batch.stage import BucketRun
from dedup.link import Numbering, Rows, candidate_pairs, merge_runs
from dedup.params import Params




@dataclass
class LinkPart:
    files: list[str]     # the part's bucket files
    others: list[str]    # the files it is merged with
    held: bool = False   # linked from `LinkPlan.held`, the rows kept as its files were written


@dataclass
class LinkPlan:
    parts: list[LinkPart]
    held: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # the held part's rows, (band, bucket, document number)
    numbering: Numbering  # every document indexed once the batch commits: the index's, then the batch's
    first_new: int        # number of the batch's first document

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
    files: list[str] = field(default_factory=list)   # this batch's bucket files (not rewritten old ones)
    part_starts: list[int] = field(default_factory=list)
    held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    held_docs: int = 0

    def add(self, run: BucketRun) -> None:
        if not self.held or self.held_docs + run.n_docs > self.max_docs:  # this file begins a new part
            self.part_starts.append(len(self.files))
            self.held, self.held_docs = [], 0
        self.files.append(run.path)
        self.held.append((run.band, run.bucket, run.docs))
        self.held_docs += run.n_docs

    def plan(self, index_files: list[str], known: Numbering, replaced: set[str], indexed: list[str]
             ) -> LinkPlan | None:
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
        if replaced:
            ids = ids.filter(pc.invert(pc.is_in(ids, value_set=pa.array(sorted(replaced), pa.string()))))
        numbering = Numbering(pa.concat_arrays([ids, pa.array(indexed, pa.string())]))
        spans = list(zip(self.part_starts, self.part_starts[1:] + [len(new)]))
        last = spans.pop()[0]
        parts = [LinkPart(new[last:], old + new[:last], held=True)] + [LinkPart(new[i:j], old + new[j:last]) for i, j in spans]
        held, self.held = self.held, []
        return LinkPlan(parts, held, numbering, len(ids))


def part_candidates(plan: LinkPlan, part: LinkPart, p: Params, threads: int) -> pa.Table:
    """Candidate pairs (doc_a, doc_b, bands) of one part: documents sharing at least `min_bands` bands."""
    return candidate_pairs(plan.part_rows(part, p), part.others, plan.numbering, p.bands, p.all_bands, p.min_bands,
                           threads=threads)
