"""The end of a batch: replaced versions dropped, the batch's own rows of `rejected` and `batches`, and the
single atomic commit that publishes everything staged."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from dedup.readers import Rejection
from dedup.store import Writer

if TYPE_CHECKING:
    from dedup.ingest import Summary


def drop_replaced(w: Writer, replaced: set[str]) -> None:
    """The old versions of replaced documents leave every table (their files are rewritten without them)."""
    if replaced:
        for t in ("documents", "signatures", "buckets"):
            w.rewrite_without(t, "doc_id", replaced, committed_only=True)
        w.rewrite_without("pairs", ("doc_a", "doc_b"), replaced)


def rejected_table(rejections: list[Rejection], batch: int) -> pa.Table:
    rj = rejections
    return pa.table({
        "batch": pa.array([batch] * len(rj), pa.int32()), "file": [r.file for r in rj],
        "line": pa.array([r.line for r in rj], pa.int64()), "doc_id": [r.doc_id for r in rj],
        "field": [r.field for r in rj], "reason": [r.reason for r in rj], "detail": [r.detail for r in rj],
    })


def commit(w: Writer, s: Summary, started: datetime, inputs: list[str], next_cluster_id: int) -> None:
    """Stage the batch's rejections and its `batches` row, then publish (the index moves to the new state)."""
    if s.rejections:
        w.stage("rejected", rejected_table(s.rejections, s.batch))
    s.seconds = time.time() - started.timestamp()
    w.stage("batches", pa.table({
        "batch": pa.array([s.batch], pa.int32()), "started_at": [started], "finished_at": [datetime.now()],
        "inputs": [inputs], "read": [s.read], "new": [s.new], "replaced": [s.replaced],
        "unchanged": [s.unchanged], "rejected": [s.rejected], "pairs": [s.pairs], "clusters": [s.clusters],
        "seconds": [s.seconds],
    }))
    w.commit(next_cluster_id=next_cluster_id)
