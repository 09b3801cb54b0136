"""Clusters of the whole index after a batch, with stable ids and the events that changed them.

Clusters depend only on the documents and their scored pairs, so they are recomputed from all of them: a corpus
ingested in k batches gets the same partition as ingested at once. Ids follow from the previous clusters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from dedup.cluster import ClusterEvent, assign_ids, partition
from dedup.params import Params
from dedup.store import fetch, positions

# (documents, ends a, ends b, scores, link threshold, cluster threshold) -> cluster label of each document
Partition = Callable[[int, np.ndarray, np.ndarray, np.ndarray, float, float], np.ndarray]


@dataclass
class ClusterInputs:
    documents: pa.Table   # doc_id, prev (cluster id before the batch, -1 if none), oldest first (published, id)
    pairs: pa.Table       # doc_a, doc_b, score: every scored pair of the index


@dataclass
class Reclustering:
    clusters: pa.Table           # the whole `clusters` table
    events: list[ClusterEvent]
    next_cluster_id: int
    stories: int                 # clusters of 2+ documents


def read_cluster_inputs(con: duckdb.DuckDBPyConnection, documents: list[str], clusters: list[str],
                        pairs: list[str]) -> ClusterInputs:
    """From the files of `documents`, `clusters` (before the batch) and `pairs` once the batch commits."""
    docs = fetch(con, "SELECT d.doc_id, coalesce(c.cluster_id, -1) AS prev FROM read_parquet($d) d "
                      "LEFT JOIN read_parquet($c) c USING (doc_id) ORDER BY d.published_at NULLS LAST, d.doc_id",
                 {"d": documents, "c": clusters})
    return ClusterInputs(docs, fetch(con, "SELECT doc_a, doc_b, score FROM read_parquet($p)", {"p": pairs}))


def recluster(inputs: ClusterInputs, p: Params, next_cluster_id: int, split: Partition = partition
               ) -> Reclustering:
    """`split` computes the partition (`dedup.cluster.partition`, or an engine's distributed equal)."""
    docs, edges = inputs.documents, inputs.pairs
    n = docs.num_rows
    # one look-up for both ends: each call hashes every document id again
    ends = positions(pa.chunked_array(edges["doc_a"].chunks + edges["doc_b"].chunks, pa.string()), docs["doc_id"])
    labels = split(n, ends[:edges.num_rows], ends[edges.num_rows:],
                       edges["score"].to_numpy(zero_copy_only=False), p.verify_threshold, p.cluster_threshold)
    res = assign_ids(labels, docs["prev"].to_numpy(), np.arange(n), next_cluster_id)
    cid = res.cluster_ids
    # the oldest member (lowest position: first occurrence) is the representative
    _, first, inv, counts = np.unique(cid, return_index=True, return_inverse=True, return_counts=True)
    ids = docs["doc_id"]
    clusters = pa.table({"doc_id": ids, "cluster_id": cid, "size": counts[inv].astype(np.int32),
                         "representative": ids.take(pa.array(first[inv]))})
    return Reclustering(clusters, res.events, res.next_id, int((counts >= 2).sum()))


def events_table(events: list[ClusterEvent], batch: int, at: datetime) -> pa.Table:
    return pa.table({
        "batch": pa.array([batch] * len(events), pa.int32()), "at": [at] * len(events),
        "kind": [e.kind for e in events], "cluster_id": [e.cluster_id for e in events],
        "other_ids": [e.other_ids for e in events], "size": [e.size for e in events],
    })
