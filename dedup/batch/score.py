"""Verification of a part's candidate pairs, a bounded group of documents at a time."""

from __future__ import annotations

from collections.abc import Iterator

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.params import Params
from dedup.store import positions, rows_of
from dedup.verify import KEEP_SCORE, verify_pairs


@numba.njit(cache=True)
def group_cuts(a: np.ndarray, b: np.ndarray, n_ids: int, max_docs: int) -> np.ndarray:
    """Boundaries [0, ..., len(a)] of consecutive runs of pairs (a[k], b[k]) that each involve at most
    `max_docs` distinct documents (a single pair always makes a run)."""
    seen = np.zeros(n_ids, dtype=np.bool_)
    used = np.empty(2 * a.shape[0], dtype=np.int64)
    cuts = [0]
    n_used = 0
    for k in range(a.shape[0]):
        extra = (0 if seen[a[k]] else 1) + (0 if seen[b[k]] or b[k] == a[k] else 1)
        if n_used + extra > max_docs and k > cuts[-1]:
            for u in range(n_used):
                seen[used[u]] = False
            n_used = 0
            cuts.append(k)
        for d in (a[k], b[k]):
            if not seen[d]:
                seen[d] = True
                used[n_used] = d
                n_used += 1
    cuts.append(a.shape[0])
    return np.array(cuts, dtype=np.int64)


def _ends(cands: pa.Table) -> pa.Array:
    return pa.concat_arrays([cands["doc_a"].combine_chunks(), cands["doc_b"].combine_chunks()]).unique()


def scored_pairs(cands: pa.Table, documents_files: list[str], p: Params, batch: int, max_docs: int,
                 threads: int) -> Iterator[pa.Table]:
    """The `pairs` rows of the candidates (those scoring at least KEEP_SCORE), a group at a time: each group
    involves at most `max_docs` documents, whose texts are read for it, so memory stays bounded however many
    documents the candidates touch."""
    cands = cands.sort_by([("doc_b", "ascending"), ("doc_a", "ascending")])
    ids = _ends(cands)
    cuts = group_cuts(positions(cands["doc_a"], ids), positions(cands["doc_b"], ids), len(ids), max_docs)
    for start, end in zip(cuts[:-1], cuts[1:]):
        group = cands.slice(start, end - start)
        yield score_group(group, rows_of(documents_files, ["text"], _ends(group), threads), p, batch)


def score_group(cands: pa.Table, docs: pa.Table, p: Params, batch: int) -> pa.Table:
    """The `pairs` rows of candidates (doc_a, doc_b, bands) given the texts of their documents (doc_id, text):
    those scoring at least KEEP_SCORE."""
    pairs = verify_pairs(cands, docs, p, stored_only=True)
    pairs = pairs.filter(pc.greater_equal(pairs["score"], KEEP_SCORE))
    return pairs.append_column("batch", pa.array([batch] * pairs.num_rows, pa.int32()))
