"""Stage 8: clusters from verified pairs, and stable cluster ids across nightly batches.

The partition is a pure function of (documents, linked pairs): it never depends on the order in which batches
arrived, so ingesting a corpus in k batches gives the same clusters as ingesting it at once.

Chaining guard: plain connected components let one loose edge merge two stories. A component is accepted as a
cluster only if it is *coherent*; otherwise its weakest links are removed until every part is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def components(n: int, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes given undirected edges (ia[k], ib[k])."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    g = coo_matrix((np.ones(len(ia), dtype=np.int8), (ia, ib)), shape=(n, n))
    return connected_components(g, directed=False)[1].astype(np.int64)


def partition(n: int, ia: np.ndarray, ib: np.ndarray, weight: np.ndarray, min_density: float = 0.0
              ) -> np.ndarray:
    """Cluster label per node. Components whose edge density falls below `min_density` are split by dropping
    their weakest edges (lowest weight, ties by node ids) until each part is dense enough or a singleton."""
    labels = components(n, ia, ib)
    if min_density <= 0.0 or len(ia) == 0:
        return labels
    order = np.lexsort((ib, ia, weight))  # weakest first, deterministic
    ia, ib, weight = ia[order], ib[order], weight[order]
    comp_of_edge = labels[ia]
    sizes = np.bincount(labels, minlength=labels.max() + 1)
    edges_per = np.bincount(comp_of_edge, minlength=labels.max() + 1)
    bad = [c for c in np.flatnonzero(sizes > 2) if edges_per[c] < min_density * sizes[c] * (sizes[c] - 1) / 2]
    next_label = labels.max() + 1
    for c in bad:
        sel = comp_of_edge == c
        ea, eb = ia[sel], ib[sel]
        nodes = np.unique(np.concatenate([ea, eb]))
        local = {int(v): i for i, v in enumerate(nodes)}
        la = np.array([local[int(v)] for v in ea])
        lb = np.array([local[int(v)] for v in eb])
        sub = _split(len(nodes), la, lb, min_density)
        for i, v in enumerate(nodes):
            labels[v] = next_label + sub[i]
        next_label += sub.max() + 1
    return labels


def _split(n: int, la: np.ndarray, lb: np.ndarray, min_density: float) -> np.ndarray:
    """Drop edges weakest-first until every component of the rest is dense enough (edges already sorted)."""
    for start in range(len(la) + 1):
        lab = components(n, la[start:], lb[start:])
        sizes = np.bincount(lab)
        edges = np.bincount(lab[la[start:]], minlength=len(sizes)) if start < len(la) else np.zeros(len(sizes))
        need = min_density * sizes * (sizes - 1) / 2
        if np.all((sizes <= 2) | (edges >= need)):
            return lab
    return np.arange(n)


@dataclass
class Assignment:
    cluster_ids: np.ndarray      # int64 per document
    events: list[tuple[str, int, list[int], int]]  # (kind, cluster_id, other ids, size)
    next_id: int


def assign_ids(labels: np.ndarray, previous: np.ndarray, age: np.ndarray, next_id: int) -> Assignment:
    """Give each cluster of `labels` a stable id.

    previous[i] is document i's cluster id before this batch (-1 for new documents); age[i] is document i's
    rank by (published_at, doc_id), so new ids are handed out deterministically, oldest story first. A cluster
    keeps the oldest (smallest) previous id among its members; other previous clusters of 2+ documents that it
    absorbed are recorded as a `merge` (a singleton joining is not an event). If a previous id is claimed by several clusters (a split), the cluster holding most of its
    former members keeps it (ties: the one with the oldest member) and the others get new ids (`split`).
    Clusters with no previous id get a new one, recorded as `new` when they have 2+ members.
    """
    n = len(labels)
    cluster_ids = np.full(n, -1, dtype=np.int64)
    events: list[tuple[str, int, list[int], int]] = []
    if n == 0:
        return Assignment(cluster_ids, events, next_id)
    order = np.argsort(age, kind="stable")
    uniq, inv = np.unique(labels, return_inverse=True)
    members: list[list[int]] = [[] for _ in uniq]
    for i in order:
        members[inv[i]].append(int(i))
    oldest = [int(age[m[0]]) for m in members]
    known, known_counts = np.unique(previous[previous >= 0], return_counts=True)
    prev_size = dict(zip(known.tolist(), known_counts.tolist()))
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
        if mine:
            keep = min(mine)
            cluster_ids[mem] = keep
            absorbed = [p for p in mine if p != keep and prev_size[p] >= 2]
            if absorbed:
                events.append(("merge", keep, absorbed, len(mem)))
        else:
            fresh.append((c, "split" if lost else "new", lost))
    for c, kind, lost in sorted(fresh, key=lambda t: oldest[t[0]]):
        cluster_ids[members[c]] = next_id
        if kind == "split" or len(members[c]) >= 2:
            events.append((kind, next_id, lost, len(members[c])))
        next_id += 1
    return Assignment(cluster_ids, events, next_id)
