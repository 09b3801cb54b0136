"""A batch reclusters only the components it touched (`dedup.batch.recluster.touched`): after every batch the
clusters, their ids and sizes, the batch's events, the next cluster id and the count of stories must be those of a
full recluster of every document from the clusters before the batch (`read_cluster_inputs`), on the real text of
data/, with and without a time window; and the documents a batch reaches only through a chain of links, or only
through a pair a replacement dropped, must be reclustered too.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from test_incremental import all_records, table, words
from test_windows import dated_records, nights_with_late_arrivals

import dedup
import dedup.batch.recluster as rc
from dedup.params import Params
from dedup.store import read_manifest


def full_recluster(idx: Path, before: Path, next_id: int) -> rc.Reclustering:
    """Every document and pair of `idx` as committed, reclustered from the clusters table `before` (a file)."""
    snap = dedup.Index(idx).snapshot
    return rc.recluster(rc.read_cluster_inputs(duckdb.connect(), snap.files("documents"), [str(before)],
                                               snap.files("pairs")), snap.params, next_id)


def rows(t) -> list[tuple]:
    return sorted(zip(*(t[c].to_pylist() for c in ("doc_id", "cluster_id", "size", "representative"))))


def ingest_checked(batch: list[dict], idx: Path, tmp: Path, params: Params | None = None) -> tuple[int, int]:
    """Ingest `batch` and assert the index's clusters are a full recluster's; returns (documents reclustered,
    documents in the index)."""
    before, next_id = tmp / "clusters_before.parquet", 1
    if (idx / "manifest.json").exists():
        pq.write_table(dedup.Index(idx).sql("SELECT * FROM clusters"), before)
        next_id = read_manifest(idx).next_cluster_id
    else:
        pq.write_table(dedup.store.SCHEMAS["clusters"].empty_table(), before)
    seen: list[int] = []
    real = rc.recluster

    def spy(inputs: rc.ClusterInputs, *args: object, **kw: object) -> rc.Reclustering:
        seen.append(inputs.documents.num_rows)
        return real(inputs, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys.modules["dedup.ingest"], "recluster", spy)  # the module, not the function `dedup.ingest`
        s = dedup.ingest([table(batch)], idx, params)
    full = full_recluster(idx, before, next_id)
    ix = dedup.Index(idx)
    assert rows(ix.sql("SELECT * FROM clusters")) == rows(full.clusters)
    got = ix.sql(f"SELECT kind, cluster_id, other_ids, size FROM cluster_events WHERE batch = {s.batch}")
    assert sorted(zip(*(got[c].to_pylist() for c in got.column_names))) == \
        sorted((e.kind, e.cluster_id, e.other_ids, e.size) for e in full.events)
    assert read_manifest(idx).next_cluster_id == full.next_cluster_id
    assert s.clusters == full.stories and s.documents == full.clusters.num_rows
    assert ix.sql("SELECT count(*) AS n, count(DISTINCT doc_id) AS d FROM clusters").to_pylist() == \
        [{"n": s.documents, "d": s.documents}]
    return seen[0], s.documents


def test_nights_recluster_as_a_full_recluster(tmp_path: Path) -> None:
    """Five nights of the sample in random order (originals and copies in different nights), no window."""
    records = all_records()
    random.Random(5).shuffle(records)
    idx = tmp_path / "idx"
    reached = [ingest_checked(records[i::5], idx, tmp_path) for i in range(5)]
    assert any(part < whole for part, whole in reached[1:])  # later nights really left components alone


def test_windowed_nights_with_late_arrivals_recluster_as_a_full_recluster(tmp_path: Path) -> None:
    """Four windowed nights in date order, a tenth of the documents arriving up to two years late."""
    idx = tmp_path / "idx"
    reached = [ingest_checked(n, idx, tmp_path, Params(window_days=30))
               for n in nights_with_late_arrivals(dated_records())]
    assert all(part < whole for part, whole in reached[1:])


def test_documents_reached_through_a_chain_or_a_dropped_pair_are_reclustered(tmp_path: Path) -> None:
    """A = the first 45 % of a real article, B = the whole, C = the last 45 %: A and C each link to B only.
    A night brings D, a copy of C: A is reached only through C and B, and its row must grow to 4. Then B's text
    is replaced by another article: the pairs A-B and B-C go, and A, C, D (whose pairs with the batch are
    dropped, not added) must leave B's story."""
    records = all_records()
    art = next(r for r in records if r["source"] == "bbc" and "~" not in r["id"] and len(words(r["text"])) >= 600)
    w = words(art["text"])
    n = len(w)

    def doc(i: str, ws: list[str], day: str) -> dict:
        return {"id": i, "text": " ".join(ws), "title": art["title"], "source": "test", "url": None,
                "published_at": day, "lang": "en"}

    a, b, c = doc("A", w[:int(n * 0.45)], "2024-01-01"), doc("B", w, "2024-01-02"), doc("C", w[n - int(n * 0.45):],
                                                                                       "2024-01-03")
    fill = [r for r in records if r["source"] == "reuters"][:30]
    idx = tmp_path / "idx"
    ingest_checked(fill + [a, b, c], idx, tmp_path)
    ix = dedup.Index(idx)
    linked = ix.sql("SELECT doc_a, doc_b FROM pairs WHERE linked").to_pylist()
    assert {(p["doc_a"], p["doc_b"]) for p in linked} >= {("A", "B"), ("B", "C")}
    assert ("A", "C") not in {(p["doc_a"], p["doc_b"]) for p in linked}  # A meets the night only through B
    d = doc("D", ["Agencies:"] + w[n - int(n * 0.45):][5:], "2024-01-04")
    part, _ = ingest_checked([d], idx, tmp_path)
    assert part == 4  # A, B, C, D: not the 30 documents of the first night
    size = {r["doc_id"]: r["size"] for r in dedup.Index(idx).sql("SELECT doc_id, size FROM clusters").to_pylist()}
    assert size["A"] == size["D"] == 4
    other = next(r for r in records if r["source"] == "wikiref" and len(words(r["text"])) >= 300)
    part, _ = ingest_checked([dict(b, text=other["text"])], idx, tmp_path)
    size = {r["doc_id"]: r["size"] for r in dedup.Index(idx).sql("SELECT doc_id, size FROM clusters").to_pylist()}
    assert size["A"] == size["B"] == 1 and size["C"] == size["D"] == 2
    assert part >= 4


def test_a_night_linked_only_within_itself_reads_only_its_own_documents(tmp_path: Path) -> None:
    """A night whose pairs stay among its own new documents (an article and a cut of it) reads the documents files
    it wrote and no `clusters` row; a night that links into the index reads every file and the clusters. Both
    recluster as a full recluster."""
    records = all_records()
    art = next(r for r in records if r["source"] == "bbc" and "~" not in r["id"] and len(words(r["text"])) >= 300)
    fill = [r for r in records if r["source"] == "reuters"][:30]
    idx = tmp_path / "idx"
    ingest_checked(fill, idx, tmp_path)
    read: list[dict] = []
    real = rc.fetch

    def spy(con: duckdb.DuckDBPyConnection, sql: str, parameters: dict | None = None) -> object:
        if "touched_ids" in sql:
            read.append(parameters or {})
        return real(con, sql, parameters)

    def night(docs: list[dict]) -> tuple[set[str], set[str]]:
        """(names of the documents files the recluster read, of the night's own)."""
        before = set(read_manifest(idx).tables["documents"])
        read.clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(rc, "fetch", spy)
            ingest_checked(docs, idx, tmp_path)
        assert len(read) == 1
        return ({Path(f).name for f in read[0]["d"]},
                {Path(f).name for f in set(read_manifest(idx).tables["documents"]) - before})

    w = words(art["text"])
    cut = dict(art, id="cut-of-" + art["id"], text=" ".join(w[:int(len(w) * 0.8)]))
    files, own = night([art, cut])
    assert files == own and "c" not in read[0]
    size = {r["doc_id"]: r["size"] for r in dedup.Index(idx).sql("SELECT doc_id, size FROM clusters").to_pylist()}
    assert size[art["id"]] == size[cut["id"]] == 2
    files, own = night([dict(fill[0], id="copy-of-" + fill[0]["id"])])
    assert files == {Path(f).name for f in read_manifest(idx).tables["documents"]} and "c" in read[0]
    size = {r["doc_id"]: r["size"] for r in dedup.Index(idx).sql("SELECT doc_id, size FROM clusters").to_pylist()}
    assert size[fill[0]["id"]] == 2
