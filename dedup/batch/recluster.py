"""Clusters of the whole index after a batch, with stable ids and the events that changed them.

Clusters depend only on the documents and their scored pairs: a corpus ingested in k batches gets the same
partition as ingested at once. Ids follow from the previous clusters.

A batch reclusters only the documents it can have changed (`touched`): its own, the partners of pairs it dropped
(a replaced document's), and everything linked to them. The partition splits each component of links on its own
pairs alone, and a component that holds none of these documents has the nodes and pairs it had, so its clusters,
ids and sizes stay and it has no event: the result is a full recluster's (`read_cluster_inputs`, which a purge
still runs), at the cost of the batch and its components instead of every document of the index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.cluster import ClusterEvent, assign_ids, components, partition
from dedup.params import Params
from dedup.store import SCHEMAS, Writer, fetch, positions

# (documents, ends a, ends b, scores, link threshold, cluster threshold) -> cluster label of each document
Partition = Callable[[int, np.ndarray, np.ndarray, np.ndarray, float, float], np.ndarray]


@dataclass
class ClusterInputs:
    documents: pa.Table   # doc_id, prev (cluster id before the batch, -1 if none), oldest first (published, id)
    pairs: pa.Table       # doc_a, doc_b, score: every scored pair of the index
    before: pa.Table | None = None  # the touched documents only (`read_touched_inputs`): their rows of `clusters`


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


def touched(con: duckdb.DuckDBPyConnection, pairs: list[str], batch: list[str], replaced: list[str],
            pairs_before: list[str], link_threshold: float) -> tuple[pa.Array, pa.Table]:
    """The documents a batch can have reclustered: its own (`batch`), the partners of the pairs it dropped (the
    rows of `pairs_before`, the files before the batch, that name one of the `replaced`), and every document
    linked to one of these through a chain of links among `pairs` (the files once the batch commits). Returns them
    with every pair among them (doc_a, doc_b, score). A pair the batch scored has one of its documents: the other
    is here if they link."""
    edges = fetch(con, "SELECT doc_a, doc_b, score FROM read_parquet($p)", {"p": pairs})
    seeds = pa.array(batch, pa.string())
    if replaced:
        gone = fetch(con, "SELECT doc_a, doc_b FROM read_parquet($p) WHERE doc_a IN (SELECT unnest($r)) OR "
                          "doc_b IN (SELECT unnest($r))", {"p": pairs_before, "r": replaced})
        seeds = pa.concat_arrays([seeds, *gone["doc_a"].chunks, *gone["doc_b"].chunks]).cast(pa.string())
    ends = pa.chunked_array(edges["doc_a"].chunks + edges["doc_b"].chunks, pa.string())
    nodes = pc.unique(ends)
    at = positions(ends, nodes)
    a, b = at[:edges.num_rows], at[edges.num_rows:]
    score = edges["score"].to_numpy(zero_copy_only=False)
    linked = score >= link_threshold  # as `partition` decides it
    label = components(len(nodes), a[linked], b[linked])
    hit = pc.index_in(seeds, value_set=nodes).fill_null(-1).to_numpy()
    reached = np.isin(label, label[hit[hit >= 0]]) if len(nodes) else np.zeros(0, bool)
    docs = pc.unique(pa.concat_arrays([seeds, nodes.filter(pa.array(reached))]))
    inside = reached[a] & reached[b]  # a pair with one end reached and the other not is not a link: no use
    return docs, edges.filter(pa.array(inside)) if edges.num_rows else edges


def read_touched_inputs(con: duckdb.DuckDBPyConnection, documents: list[str], clusters: list[str], pairs: list[str],
                        batch: list[str], replaced: list[str], pairs_before: list[str], link_threshold: float,
                        own_documents: list[str] | None = None) -> ClusterInputs:
    """`read_cluster_inputs` for the `touched` documents only (same order, same previous ids): the documents and
    clusters files are read for their ids and only the touched rows' other columns. `own_documents`: the files
    the batch wrote its documents into; when it replaced nothing and reached no document indexed before it, the
    touched documents are its own and new, so only those files are read, and no `clusters` row."""
    docs, edges = touched(con, pairs, batch, replaced, pairs_before, link_threshold)
    if own_documents and not replaced and len(docs) == len(batch):
        # scanning every file's ids cost 1.1 CPU s of a night into a 2M archive that links nothing to the night
        documents, clusters = own_documents, []
    con.register("touched_ids", pa.table({"doc_id": docs}))
    con.register("no_clusters", SCHEMAS["clusters"].empty_table())
    try:  # a semi-join: the id columns of the files are scanned, 5x cheaper than `rows_of` for 100k of 2M ids
        rows = fetch(con, "WITH c AS (SELECT * FROM " + ("read_parquet($c)" if clusters else "no_clusters") +
                          " WHERE doc_id IN (SELECT doc_id FROM touched_ids))"
                          " SELECT d.doc_id, c.cluster_id, c.size, c.representative FROM read_parquet($d) d LEFT JOIN c"
                          " USING (doc_id) WHERE d.doc_id IN (SELECT doc_id FROM touched_ids)"
                          " ORDER BY d.published_at NULLS LAST, d.doc_id",
                     {"d": documents, **({"c": clusters} if clusters else {})})
    finally:
        con.unregister("touched_ids")
        con.unregister("no_clusters")
    before = rows.filter(pc.is_valid(rows["cluster_id"]))
    return ClusterInputs(pa.table({"doc_id": rows["doc_id"], "prev": rows["cluster_id"].fill_null(-1)}), edges,
                         before)


def stage_clusters(w: Writer, con: duckdb.DuckDBPyConnection, inputs: ClusterInputs, result: Reclustering) -> int:
    """Stage `result`, the clusters of the touched documents (`read_touched_inputs`), into `clusters`: their rows
    that changed replace the old ones, in the files that held them (a story's rows change when it grows, merges or
    splits). Returns the index's clusters of 2+ documents after the batch."""
    old = inputs.before
    assert old is not None, "only the touched documents are staged this way"
    stories = fetch(con, "SELECT count(DISTINCT cluster_id) AS n FROM read_parquet($c) WHERE size >= 2",
                    {"c": w.current_files("clusters")})["n"][0].as_py()
    # the stories among the touched documents' old rows have all their members among them (see `touched`)
    stories -= len(pc.unique(old.filter(pc.greater_equal(old["size"], 2))["cluster_id"]))
    new = result.clusters
    at = pc.index_in(new["doc_id"], value_set=old["doc_id"].combine_chunks())
    same = pc.fill_null(pc.and_(pc.and_(pc.equal(new["cluster_id"], old["cluster_id"].take(at)),
                                        pc.equal(new["size"], old["size"].take(at))),
                                pc.equal(new["representative"], old["representative"].take(at))), False)
    changed, was = new.filter(pc.invert(same)), at.filter(pc.invert(same))
    w.rewrite_without("clusters", "doc_id", changed.filter(pc.is_valid(was))["doc_id"].to_pylist(), committed_only=True)
    if changed.num_rows:
        w.stage("clusters", changed, sort_by=["cluster_id", "doc_id"])
    return stories + result.stories


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
