"""Retention: `dedup retire --before DATE [--purge]`, one atomic commit under the writer lock, like ingest.

A document is old when its date (`dedup.windows`: published_at, else its batch's start) is before DATE.
- Retire: the old documents' bucket rows go (whole bucket files of an index with a window, by their date range;
  other files are rewritten without them), so no later batch is linked to them. Documents, texts, pairs, clusters
  and events stay as they were.
- Purge: the old documents also leave `documents` (texts), `signatures` and `pairs` (every pair with one of them),
  and their `clusters` rows. Clusters are recomputed from what remains, as an ingest does: a story keeps its id
  while it has members (the largest part keeps it where a purged document was the only link between the others,
  and the other parts are logged as a `split`); each story that lost members gets a `purge` event whose `size`
  is what remains of it (0: nothing). Earlier events stay, as history. The purge takes a batch number and a row in
  `batches` (inputs `retire --before DATE --purge`), so its events have a batch like every other.

Either records its date with the index (`Params.retired_before`, and with a purge `purged_before`), so that later
batches treat a document dated before it as if it had been there (`dedup.windows.Retention`). A recorded date only
moves forward: an earlier DATE retires what is before it (nothing, in practice) and the recorded date stays; an
index whose date moved commits even with no old document, to record it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup.batch.commit import commit
from dedup.batch.recluster import events_table, read_cluster_inputs, recluster
from dedup.cluster import ClusterEvent
from dedup.store import Writer, fetch
from dedup.store.writer import open_writer
from dedup.windows import epoch_seconds


@dataclass
class RetireResult:
    """What one `retire` did (nothing, and no commit, when no document is old and the recorded date stays)."""

    before: str
    documents: int = 0        # old documents
    bucket_rows: int = 0      # bucket rows removed
    purged: bool = False
    pairs: int = 0            # pairs removed (purge)
    clusters: int = 0         # stories that lost members (purge)
    generation: int = 0       # of the index after the command
    retired_before: str = ""  # the index's recorded cutoffs after the command (later than `before` if they were)
    purged_before: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "seconds": round(self.seconds, 3)}


def retire(root: str | os.PathLike, before: datetime, purge: bool = False) -> RetireResult:
    """Retire (or with `purge` remove) the documents of the index at `root` dated before `before` (naive UTC)."""
    started = datetime.now()
    out = RetireResult(before.isoformat(sep=" "), purged=purge)
    with open_writer(root, create=False) as w:
        con = w.connect({"temp_directory": str(w.spill_dir), "memory_limit": "512MB"})
        try:
            old = fetch(con, "SELECT d.doc_id FROM read_parquet($d) d LEFT JOIN read_parquet($b) b USING (batch) "
                             "WHERE coalesce(d.published_at, b.started_at) < $before",
                        {"d": w.current_files("documents"), "b": w.current_files("batches"), "before": before})
            ids = old["doc_id"].to_pylist()
            out.documents = len(ids)
            moved = _record_cutoff(w, before, purge)
            if ids:
                out.bucket_rows = _drop_buckets(w, ids, epoch_seconds(before))
            if purge and ids:
                _purge(w, con, old, out, started, before)
            elif out.bucket_rows or moved:  # else retired before: nothing to commit
                w.commit(batch=False)
        finally:
            con.close()
        out.generation = w.manifest.generation
        out.retired_before, out.purged_before = w.params.retired_before, w.params.purged_before
    out.seconds = time.time() - started.timestamp()
    return out


def _record_cutoff(w: Writer, before: datetime, purge: bool) -> bool:
    """Move the index's recorded cutoffs forward to `before` for the next commit (a purge also retires); a later
    date already recorded stays. True if one moved."""
    p = w.manifest.params
    day = before.isoformat(sep=" ")
    new = dataclasses.replace(p, retired_before=max(p.retired_before, day),
                              purged_before=max(p.purged_before, day) if purge else p.purged_before)
    w.manifest.params = w.params = new
    return new != p


def _drop_buckets(w: Writer, ids: list[str], cutoff: int) -> int:
    """Stage the removal of the bucket rows of `ids` (dated before `cutoff`): files wholly before it are dropped
    unread, files that start before it are rewritten without them. Returns the rows removed."""
    files = w.manifest.tables["buckets"]
    spans = {f: w.span(f) for f in files}
    gone = [f for f in files if spans[f] is not None and spans[f][1] < cutoff]  # type: ignore[index]
    w.drop("buckets", gone)
    rows = sum(pq.ParquetFile(w.path(f)).metadata.num_rows for f in gone)
    mixed = {f for f in files if f not in gone and (spans[f] is None or spans[f][0] < cutoff)}  # type: ignore[index]
    return rows + w.rewrite_without("buckets", "doc_id", ids, among=mixed)


def _purge(w: Writer, con: duckdb.DuckDBPyConnection, old: pa.Table, out: RetireResult, started: datetime, before: datetime) -> None:
    """Stage the removal of the documents `old` (doc_id) from every table, the clusters of what remains with their events, and commit."""
    from dedup.ingest import Summary

    before_clusters = w.current_files("clusters")
    ids = old["doc_id"].to_pylist()
    for table in ("documents", "signatures"):
        w.rewrite_without(table, "doc_id", ids)
    out.pairs = w.rewrite_without("pairs", ("doc_a", "doc_b"), ids)
    inputs = read_cluster_inputs(con, w.current_files("documents"), before_clusters, w.current_files("pairs"))
    clusters = recluster(inputs, w.params, w.manifest.next_cluster_id)
    w.replace_all("clusters", clusters.clusters, sort_by=["cluster_id", "doc_id"])
    con.register("purged", old)
    lost = fetch(con, "SELECT DISTINCT cluster_id FROM read_parquet($c) WHERE size >= 2 AND doc_id IN "
                      "(SELECT doc_id FROM purged) ORDER BY cluster_id", {"c": before_clusters})["cluster_id"]
    remain = pc.value_counts(clusters.clusters["cluster_id"])
    size = dict(zip(remain.field("values").to_pylist(), remain.field("counts").to_pylist()))
    events = [ClusterEvent("purge", c, [], size.get(c, 0)) for c in lost.to_pylist()]  # stories of 2+ only
    out.clusters = len(events)
    s = Summary(batch=w.manifest.next_batch, documents=inputs.documents.num_rows, clusters=clusters.stories)
    events += clusters.events
    if events:
        w.stage("cluster_events", events_table(events, s.batch, datetime.now()))
    commit(w, s, started, [f"retire --before {before.isoformat(sep=' ')} --purge"], clusters.next_cluster_id)


