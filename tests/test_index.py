"""The index on disk: round trip, views.sql, parameter refusal, idempotence, replacement, clusters."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasketch import LeanMinHash

import dedup
import dedup.batch.stage
from dedup.store import arrow
from dedup.sketch import sketch_batch

from conftest import ARTICLES, SEED_COPY, SEED_ORIGINAL


def test_round_trip_tables_and_manifest(sample_index: Path, articles: list[dict]) -> None:
    ix = dedup.Index(sample_index)
    docs = ix.table("documents")
    assert docs.num_rows == len(articles) + 2
    by_id = {r["doc_id"]: r for r in docs.to_pylist()}
    a = articles[3]
    assert by_id[a["id"]]["text"] == a["text"] and by_id[a["id"]]["title"] == a["title"]
    manifest = json.loads((sample_index / "manifest.json").read_text())
    assert manifest["format"] == "dedup-index" and manifest["version"] == 2
    for key in ("normalizer", "shingle", "shingle_size", "hash", "scheme", "seed", "num_perm", "bands", "rows",
                "threshold"):
        assert key in manifest["params"]
    p = ix.params
    linkable = sum(1 for r in docs.to_pylist() if r["words"] >= p.min_words)
    # whole text + lead, one row per band, degenerate bands (held by a single shingle) left out: few
    assert 0.9 * p.all_bands * linkable < ix.table("buckets").num_rows <= p.all_bands * linkable
    # bucket keys are 32-bit and delta-encoded; signatures are kept only on request
    biggest = max(manifest["tables"]["buckets"], key=lambda f: (sample_index / f).stat().st_size)
    meta = pq.ParquetFile(sample_index / biggest).metadata.row_group(0).column(1)
    assert meta.path_in_schema == "bucket" and "DELTA_BINARY_PACKED" in meta.encodings
    assert ix.sql("SELECT count(*) n FROM signatures")["n"][0].as_py() == 0


def test_stored_signatures_equal_fresh_ones_and_load_into_datasketch(articles: list[dict], tmp_path: Path) -> None:
    rows = articles[:5]
    dedup.ingest([pa.Table.from_pylist(rows)], tmp_path / "idx", store_signatures=True)
    ix = dedup.Index(tmp_path / "idx")
    p = ix.params
    for a in rows:
        sig = ix.sql("SELECT minhash FROM signatures WHERE doc_id = $i", {"i": a["id"]})["minhash"][0].as_py()
        fresh = sketch_batch([a["text"]], p.shingle, p.shingle_size, p.num_perm, p.seed).signatures[0]
        assert sig == fresh.tolist()
    lean = LeanMinHash(seed=p.seed, hashvalues=np.array(sig, dtype=np.uint32), scheme="affine32")
    assert lean.jaccard(lean) == 1.0


def test_views_sql_loads_in_duckdb(sample_index: Path) -> None:
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{sample_index}'")  # views.sql names files relative to the index
    con.execute((sample_index / "views.sql").read_text())
    for table in ("documents", "signatures", "buckets", "pairs", "clusters", "cluster_events", "rejected",
                  "batches", "cluster_summary", "copies"):
        con.execute(f"SELECT count(*) FROM {table}").fetchall()
    n = con.execute("SELECT count(*) FROM documents").fetchall()[0][0]
    assert n == con.execute("SELECT count(*) FROM clusters").fetchall()[0][0]
    seed = con.execute("SELECT cluster_id FROM clusters WHERE doc_id IN (?, ?)", [SEED_ORIGINAL, SEED_COPY]).fetchall()
    assert len(seed) == 2 and seed[0] == seed[1]


def test_parameter_mismatch_is_refused_and_index_unchanged(tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    dedup.ingest([ARTICLES / "seeds"], idx)
    before = (idx / "manifest.json").read_bytes()
    with pytest.raises(dedup.ParamsError, match="num_perm"):
        dedup.ingest([ARTICLES / "seeds"], idx, requested={"num_perm": 64})
    with pytest.raises(dedup.ParamsError, match="shingle"):
        dedup.ingest([ARTICLES / "seeds"], idx, params=dedup.Params(shingle="word", shingle_size=3))
    assert (idx / "manifest.json").read_bytes() == before
    # same explicit parameters are fine
    s = dedup.ingest([ARTICLES / "seeds"], idx, requested={"num_perm": dedup.Params().num_perm, "shingle": "pair"})
    assert s.unchanged == 2


def test_not_an_index(tmp_path: Path) -> None:
    (tmp_path / "stuff.txt").write_text("x")
    with pytest.raises(dedup.IndexProblem, match="not empty"):
        dedup.ingest([ARTICLES / "seeds"], tmp_path)
    with pytest.raises(dedup.IndexProblem, match="no such index"):
        dedup.Index(tmp_path / "nope")


def test_reingest_is_idempotent_and_changed_text_replaces(tmp_path: Path, articles: list[dict]) -> None:
    idx = tmp_path / "idx"
    rows = articles[:40] + [a for a in articles if "~mt-" in a["id"]][:3]
    table = pa.Table.from_pylist(rows)
    first = dedup.ingest([table], idx, store_signatures=True)
    assert (first.read, first.new, first.unchanged) == (len(rows), len(rows), 0)
    snap = {t: dedup.Index(idx).sql(f"SELECT * FROM {t} ORDER BY ALL") for t in ("documents", "pairs", "clusters")}
    again = dedup.ingest([table], idx, store_signatures=True)
    assert (again.read, again.indexed, again.unchanged, again.pairs) == (len(rows), 0, len(rows), 0)
    for t, before in snap.items():
        assert dedup.Index(idx).sql(f"SELECT * FROM {t} ORDER BY ALL").equals(before), t
    # a new version of one document replaces the old one everywhere
    changed = dict(rows[0], text=rows[5]["text"])  # now a copy of another story
    rep = dedup.ingest([pa.Table.from_pylist([changed])], idx, store_signatures=True)
    assert (rep.replaced, rep.new) == (1, 0)
    ix = dedup.Index(idx)
    assert ix.sql("SELECT count(*) n FROM documents WHERE doc_id = $i", {"i": changed["id"]})["n"][0].as_py() == 1
    assert ix.sql("SELECT text FROM documents WHERE doc_id = $i", {"i": changed["id"]})["text"][0].as_py() == \
        rows[5]["text"]
    assert ix.sql("SELECT count(*) n FROM signatures")["n"][0].as_py() == len(rows)
    sig = {r["doc_id"]: r["minhash"] for r in ix.table("signatures").to_pylist()}
    assert sig[changed["id"]] == sig[rows[5]["id"]] != sig[rows[1]["id"]]  # the new text's signature
    same = ix.sql("SELECT count(DISTINCT cluster_id) n FROM clusters WHERE doc_id IN ($a, $b)",
                  {"a": rows[0]["id"], "b": rows[5]["id"]})
    assert same["n"][0].as_py() == 1


def test_duplicate_ids_in_one_batch_first_wins(tmp_path: Path, articles: list[dict]) -> None:
    a, b = articles[0], articles[1]
    table = pa.Table.from_pylist([a, dict(b, id=a["id"]), b])
    s = dedup.ingest([table], tmp_path / "idx")
    assert (s.read, s.indexed, s.rejected) == (3, 2, 1)
    assert s.rejections[0].reason == "duplicate_id" and s.rejections[0].line == 2
    text = dedup.Index(tmp_path / "idx").sql("SELECT text FROM documents WHERE doc_id = $i", {"i": a["id"]})
    assert text["text"][0].as_py() == a["text"]


def test_similar_finds_the_seed_copy(sample_index: Path) -> None:
    ix = dedup.Index(sample_index)
    out = ix.similar(doc_id=SEED_ORIGINAL)
    assert out["doc_id"][0].as_py() == SEED_COPY and out["linked"][0].as_py()
    text = (ARTICLES / "seeds" / f"{SEED_COPY}.txt").read_text("utf-8")
    out = ix.similar(text=text)
    assert set(out["doc_id"].to_pylist()[:2]) == {SEED_COPY, SEED_ORIGINAL}
    with pytest.raises(KeyError):
        ix.similar(doc_id="no-such-doc")


def test_similar_by_id_reads_what_probing_its_text_finds(sample_index: Path) -> None:
    """`similar(doc_id=...)` answers from the stored pairs; probing the buckets with the document's text and
    verifying again must find the same documents with the same scores (the stored ones are those >= 0.2)."""
    ix = dedup.Index(sample_index)
    ids = ix.sql("SELECT doc_a FROM pairs UNION SELECT doc_b FROM pairs ORDER BY 1")["doc_a"].to_pylist()
    assert len(ids) >= 20
    for doc_id in ids[::3]:
        stored = ix.similar(doc_id=doc_id, limit=1000).to_pydict()
        text = ix.sql("SELECT text FROM documents WHERE doc_id = $i", {"i": doc_id})["text"][0].as_py()
        probed = ix.similar(text=text, limit=1000).to_pydict()
        again = {(d, round(s, 4)) for d, s in zip(probed["doc_id"], probed["score"]) if d != doc_id and s >= 0.2}
        assert {(d, round(s, 4)) for d, s in zip(stored["doc_id"], stored["score"])} == again, doc_id
        assert stored["score"] == sorted(stored["score"], reverse=True)


def test_documents_stored_without_text_are_judged_by_the_band_estimate(articles: list[dict], tmp_path: Path) -> None:
    """Without texts, a pair's score is its MinHash estimate, now taken from the whole-text bands the two share;
    it must agree with the estimate of the full 192-value signatures."""
    rows = articles[:120] + [a for a in articles if "~mt-" in a["id"]]
    twin = dict(articles[7], id="twin-of-7")  # an exact copy under another id
    dedup.ingest([pa.Table.from_pylist(rows + [twin])], tmp_path / "idx", store_text=False, store_signatures=True)
    ix = dedup.Index(tmp_path / "idx")
    assert ix.sql("SELECT count(*) n FROM documents WHERE text IS NOT NULL")["n"][0].as_py() == 0
    pairs = ix.table("pairs").to_pylist()
    sig = {r["doc_id"]: np.array(r["minhash"]) for r in ix.table("signatures").to_pylist()}
    assert len(pairs) >= 10
    diffs = []
    for p in pairs:
        assert p["score"] == p["jaccard_est"] and np.isnan(p["aligned"]) and np.isnan(p["jaccard"])
        diffs.append(abs(p["jaccard_est"] - float((sig[p["doc_a"]] == sig[p["doc_b"]]).mean())))
    assert max(diffs) < 0.15 and float(np.mean(diffs)) < 0.05
    twins = [p for p in pairs if {p["doc_a"], p["doc_b"]} == {"twin-of-7", articles[7]["id"]}]
    # a band held by a single shingle is left out of the buckets, so even twins may miss one of 96
    assert len(twins) == 1 and twins[0]["jaccard_est"] > 0.98 and twins[0]["linked"]


def test_texts_are_stored_in_pieces_under_the_string_array_limit(articles: list[dict], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk's texts go to the documents file in pieces (a string array holds 2 GiB); here pieces of ~5 KB."""
    stage = dedup.batch.stage
    monkeypatch.setattr(stage, "TEXT_COLUMN_BYTES", 5_000)
    pieces = []
    real = stage.text_column
    monkeypatch.setattr(stage, "text_column", lambda t: pieces.append(real(t)) or pieces[-1])
    rows = articles[:40]
    dedup.ingest([pa.Table.from_pylist(rows)], tmp_path / "idx")
    assert len(pieces) == 1 and pieces[0].num_chunks >= 40 * 2_000 // 5_000
    stored = {r["doc_id"]: r["text"] for r in dedup.Index(tmp_path / "idx").table("documents").to_pylist()}
    assert stored == {r["id"]: r["text"] for r in rows}


def test_rows_of_reads_only_row_groups_whose_id_range_can_hold_the_ids(sample_index: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample's documents written in id order, four files of two row groups: texts fetched by id are those of
    the index, and a row group whose doc_id statistics exclude every id asked is not read at all."""
    docs = dedup.Index(sample_index).sql("SELECT doc_id, text FROM documents ORDER BY doc_id")
    n = docs.num_rows
    paths = []
    for k in range(4):
        paths.append(str(tmp_path / f"{k}.parquet"))
        pq.write_table(docs.slice(k * n // 4, (k + 1) * n // 4 - k * n // 4), paths[-1], row_group_size=-(-n // 8))
    read: set[str] = set()  # a row group read is named by its first id
    real = pq.ParquetFile.read_row_group

    def spy(self: pq.ParquetFile, i: int, *args: object, **kw: object) -> pa.Table:
        read.add(self.metadata.row_group(i).column(0).statistics.min)
        return real(self, i, *args, **kw)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    groups = [(st.min, st.max) for f in paths for g in range(pq.ParquetFile(f).num_row_groups)
              for st in [pq.ParquetFile(f).metadata.row_group(g).column(0).statistics]]
    assert len(groups) == 8
    ids = docs["doc_id"].to_pylist()
    texts = dict(zip(ids, docs["text"].to_pylist()))
    # five neighbours (one or two row groups), ids from everywhere (all eight), none of the index's (none)
    for asked, most in ((ids[n // 3:n // 3 + 5], 2), (ids[::7] + ["zzz-not-indexed", ""], 8),
                        (["zzz-not-indexed", ""], 0)):
        read.clear()
        got = arrow.rows_of(paths, ["text"], pa.array(asked))
        assert sorted(zip(got["doc_id"].to_pylist(), got["text"].to_pylist())) == \
            sorted((i, texts[i]) for i in set(asked) if i in texts)
        assert read == {lo for lo, hi in groups if any(lo <= a <= hi for a in asked)}
        assert len(read) <= most and (most == 0 or len(read) >= most // 4)
