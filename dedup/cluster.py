"""Stage 8: clusters from verified pairs, and stable cluster ids across nightly batches.

The partition is a pure function of (documents, scored pairs): it never depends on the order in which batches
arrived, so ingesting a corpus in k batches gives the same clusters as ingesting it at once.

Chaining guard: connected components of linked pairs let one document that quotes two stories (a digest, a
round-up) join them. So each component of three or more documents is re-clustered by *average linkage* over all
its scored pairs (a pair that was never a candidate scores 0): two groups merge only while the average score
between them stays at least `cluster_threshold`. Copies of one story score high with each other, so they stay
together; a hub's two sides share only the hub's links, so their average falls and they split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def components(n: int, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes given undirected edges (ia[k], ib[k])."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    g = coo_matrix((np.ones(len(ia), dtype=np.int8), (ia, ib)), shape=(n, n))
    return connected_components(g, directed=False)[1].astype(np.int64)


def partition(n: int, ia: np.ndarray, ib: np.ndarray, score: np.ndarray, link_threshold: float,
              cluster_threshold: float) -> np.ndarray:
    """Cluster label per node (nodes are numbered in a canonical order, e.g. by age and id).

    Pairs (ia[k], ib[k]) with score[k] ≥ link_threshold are links; components of links with 3+ nodes are
    split by average linkage at `cluster_threshold` over all given pairs."""
    linked = score >= link_threshold
    labels = components(n, ia[linked], ib[linked])
    if not len(ia):
        return labels
    sizes = np.bincount(labels)
    big = np.flatnonzero(sizes >= 3)
    if not len(big):
        return labels
    comp_a = labels[ia]
    inside = (comp_a == labels[ib]) & np.isin(comp_a, big)
    order = np.argsort(comp_a[inside], kind="stable")
    ea, eb, es, ec = ia[inside][order], ib[inside][order], score[inside][order], comp_a[inside][order]
    bounds = np.searchsorted(ec, big, side="left"), np.searchsorted(ec, big, side="right")
    next_label = labels.max() + 1
    by_label = np.argsort(labels, kind="stable")  # each component's nodes together, ascending = canonical order
    sorted_labels = labels[by_label]
    first, last = np.searchsorted(sorted_labels, big, "left"), np.searchsorted(sorted_labels, big, "right")
    # A component whose every two documents scored at least cluster_threshold stays whole: every average is at
    # least the threshold. Most groups of copies are such; linkage runs for the others only (a 1M index has
    # ~4,000 components of 3+ documents: 0.95 s of calls to scipy).
    close = es >= cluster_threshold
    pair_keys = np.unique(np.minimum(ea, eb)[close].astype(np.int64) * n + np.maximum(ea, eb)[close])
    close_pairs = np.bincount(np.searchsorted(big, labels[pair_keys // n]), minlength=len(big))
    k = sizes[big]
    whole = close_pairs == k * (k - 1) // 2
    for lo, hi, n0, n1 in zip(bounds[0][~whole], bounds[1][~whole], first[~whole], last[~whole]):
        nodes = by_label[n0:n1]
        local = np.searchsorted(nodes, ea[lo:hi]), np.searchsorted(nodes, eb[lo:hi])
        sub = _average_linkage(len(nodes), local[0], local[1], es[lo:hi], cluster_threshold)
        labels[nodes] = next_label + sub
        next_label += sub.max() + 1
    return labels


def _average_linkage(n: int, la: np.ndarray, lb: np.ndarray, score: np.ndarray, threshold: float) -> np.ndarray:
    # imported on first use: scipy.cluster loads scipy.spatial and scipy.special (1 s of `import dedup` otherwise),
    # and most batches link no component that needs it
    from scipy.cluster.hierarchy import fcluster, linkage

    sim = np.zeros((n, n))
    sim[la, lb] = np.maximum(sim[la, lb], score)
    sim[lb, la] = sim[la, lb]
    dist = 1.0 - sim[np.triu_indices(n, 1)]
    tree = linkage(dist, method="average")
    return fcluster(tree, t=1.0 - threshold, criterion="distance").astype(np.int64) - 1


class ClusterEvent(NamedTuple):
    """A row of `cluster_events`: how a story formed, merged or split in a batch."""

    kind: str             # "new", "merge" (cluster_id absorbed other_ids) or "split" (came out of other_ids)
    cluster_id: int
    other_ids: list[int]
    size: int             # after the event


@dataclass
class Assignment:
    cluster_ids: np.ndarray      # int64 per document
    events: list[ClusterEvent]
    next_id: int


def assign_ids(labels: np.ndarray, previous: np.ndarray, age: np.ndarray, next_id: int) -> Assignment:
    """Give each cluster of `labels` a stable id.

    previous[i] is document i's cluster id before this batch (-1 for new documents); age[i] is document i's
    rank by (published_at, doc_id), so new ids are handed out deterministically, oldest story first.

    - A cluster that contains previous clusters of 2+ documents ("stories") keeps the oldest (smallest) of their
      ids; the other stories it absorbed are recorded as one `merge` event. Documents joining it — new ones or
      former singletons — do not change its id and are not events.
    - A cluster made only of former singletons (and new documents) keeps the oldest former singleton's id; when it
      has 2+ members it is a story seen for the first time: a `new` event.
    - If a previous id is claimed by several clusters (a split, after a replacement), the cluster holding most of
      its former members keeps it (ties: the one with the oldest member); the others keep another id they own or
      get a new one, recorded as `split` with the id they came from.
    - Clusters with no previous id get a new one, recorded as `new` when they have 2+ members.
    """
    n = len(labels)
    cluster_ids = np.full(n, -1, dtype=np.int64)
    events: list[ClusterEvent] = []
    if n == 0:
        return Assignment(cluster_ids, events, next_id)
    order = np.argsort(age, kind="stable")
    uniq, inv = np.unique(labels, return_inverse=True)
    # Fast path, nearly all of a large index: a cluster whose members all had one previous id, which no other
    # cluster holds, keeps that id silently (what the general rules below give it too). Only clusters a batch
    # touched — new members, merges, splits — go through the rules, one by one.
    has_prev = previous >= 0
    known, known_counts = np.unique(previous[has_prev], return_counts=True)  # previous ids and their sizes
    sizes = np.bincount(inv, minlength=len(uniq))
    lo = np.full(len(uniq), np.iinfo(np.int64).max)
    hi = np.full(len(uniq), -1, dtype=np.int64)
    np.minimum.at(lo, inv, previous)
    np.maximum.at(hi, inv, previous)
    one = (lo == hi) & (lo >= 0)
    # every member had id lo; no other cluster holds lo when the cluster has all of lo's former members
    one[one] = known_counts[np.searchsorted(known, lo[one])] == sizes[one]
    quiet = one[inv]
    cluster_ids[quiet] = previous[quiet]
    # a cluster of new documents only gets a new id, in age order among all clusters that get one (and is a
    # `new` event with 2+ members): most clusters of a batch, set here at once
    all_new = hi < 0
    slow = np.flatnonzero(~one & ~all_new)
    slot = np.full(len(uniq), -1, dtype=np.int64)
    slot[slow] = np.arange(len(slow))
    members: list[list[int]] = [[] for _ in slow]
    for i in order[slot[inv[order]] >= 0]:
        members[slot[inv[i]]].append(int(i))
    oldest = [int(age[m[0]]) for m in members]

    def prev_size(ids: list[int]) -> np.ndarray:
        """Sizes of these previous clusters."""
        return known_counts[np.searchsorted(known, np.asarray(ids, dtype=np.int64))]

    claims: dict[int, list[tuple[int, int, int]]] = {}
    prev_ids_of: list[list[int]] = []
    for c, mem in enumerate(members):
        prev = previous[mem]
        ids, counts = np.unique(prev[prev >= 0], return_counts=True)
        prev_ids_of.append([int(x) for x in ids])
        for pid, cnt in zip(ids, counts):
            claims.setdefault(int(pid), []).append((int(cnt), -oldest[c], c))
    winner = {pid: max(lst)[2] for pid, lst in claims.items()}
    fresh: list[tuple[int, str, list[int]]] = []
    for c, mem in enumerate(members):
        mine = [pid for pid in prev_ids_of[c] if winner[pid] == c]
        lost = [pid for pid in prev_ids_of[c] if winner[pid] != c]
        stories = [p for p, size in zip(mine, prev_size(mine)) if size >= 2]
        if stories:
            keep = min(stories)
            cluster_ids[mem] = keep
            absorbed = [p for p in stories if p != keep]
            if absorbed:
                events.append(ClusterEvent("merge", keep, absorbed, len(mem)))
        elif mine:
            keep = min(mine)
            cluster_ids[mem] = keep
            lost_stories = [p for p, size in zip(lost, prev_size(lost)) if size >= 2]
            if lost_stories:
                events.append(ClusterEvent("split", keep, lost_stories, len(mem)))
            elif len(mem) >= 2:
                events.append(ClusterEvent("new", keep, [], len(mem)))
        else:
            fresh.append((c, "split" if lost else "new", lost))
    new_clusters = np.flatnonzero(all_new)
    new_oldest = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(new_oldest, inv, age)
    first_age = np.concatenate([[oldest[c] for c, _, _ in fresh], new_oldest[new_clusters]]).astype(np.int64)
    new_ids = np.empty(len(first_age), dtype=np.int64)
    new_ids[np.argsort(first_age, kind="stable")] = next_id + np.arange(len(first_age))
    id_of = np.full(len(uniq), -1, dtype=np.int64)
    id_of[new_clusters] = new_ids[len(fresh):]
    new_docs = all_new[inv]
    cluster_ids[new_docs] = id_of[inv[new_docs]]
    got_new = []  # events of the clusters given a new id, listed in id order
    for (c, kind, lost), cid in zip(fresh, new_ids[:len(fresh)].tolist()):
        cluster_ids[members[c]] = cid
        got_new.append(ClusterEvent(kind, cid, lost, len(members[c])))
    stories = new_clusters[sizes[new_clusters] >= 2]
    got_new += [ClusterEvent("new", cid, [], size) for cid, size in zip(id_of[stories].tolist(),
                                                                        sizes[stories].tolist())]
    events += [e for e in sorted(got_new, key=lambda e: e.cluster_id) if e.kind == "split" or e.size >= 2]
    return Assignment(cluster_ids, events, next_id + len(first_age))
