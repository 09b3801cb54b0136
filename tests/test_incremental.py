"""Nightly ingestion: incremental (k batches = one shot), idempotent, replacement, stable cluster ids and
cluster_events, the --json summary, and compaction. Real text only: the committed sample in data/.

`scripts/check_incremental.py` runs the k-batch = one-shot check on a few thousand articles from ../shared.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import dedup
import dedup.engines.local
from dedup.cli import main
from dedup.readers import read_file
from dedup.errors import IndexProblem
from dedup.store import TABLES, compact, read_manifest, upgrade, whole_documents

from conftest import ARTICLES, SEED_COPY, SEED_ORIGINAL, load_articles

CONTENT_TABLES = ("documents", "signatures", "buckets", "pairs", "clusters", "cluster_events", "rejected")


# ----------------------------------------------------------------------------------------------- helpers
def all_records() -> list[dict]:
    """Every document of data/articles as a record: the JSONL sample, its MT copies and the seed pair."""
    rows = [dict(r) for r in load_articles()]
    for f in sorted((ARTICLES / "seeds").glob("*.txt")):
        (rec,) = read_file(f)  # exactly what `dedup ingest data/articles` reads
        rows.append({"id": rec.doc_id, "text": rec.text, "title": None, "source": None, "url": None,
                     "published_at": rec.published_at and rec.published_at.date().isoformat(), "lang": None})
    return rows


def table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=pa.schema([(k, pa.string()) for k in
                                                        ("id", "text", "title", "source", "url", "published_at",
                                                         "lang")]))


def partition_of(idx: Path) -> set[frozenset[str]]:
    """The clustering as a set of frozensets of doc ids (ids of clusters play no part)."""
    groups: dict[int, set[str]] = {}
    for doc_id, cid in _rows(idx, "SELECT doc_id, cluster_id FROM clusters"):
        groups.setdefault(cid, set()).add(doc_id)
    return {frozenset(g) for g in groups.values()}


def _rows(idx: Path, sql: str) -> list[tuple]:
    t = dedup.Index(idx).sql(sql)
    return list(zip(*(c.to_pylist() for c in t.columns)))


def content(idx: Path, tables: tuple[str, ...] = CONTENT_TABLES) -> dict[str, pa.Table]:
    ix = dedup.Index(idx)
    return {t: ix.sql(f"SELECT * FROM {t} ORDER BY ALL") for t in tables}


def pair_scores(idx: Path) -> list[tuple]:
    return _rows(idx, "SELECT doc_a, doc_b, jaccard_est, jaccard, containment, score, linked FROM pairs "
                      "ORDER BY doc_a, doc_b")


def events(idx: Path, batch: int | None = None) -> list[tuple]:
    where = "" if batch is None else f"WHERE batch = {int(batch)}"
    return _rows(idx, f"SELECT batch, kind, cluster_id, other_ids, size FROM cluster_events {where} "
                      "ORDER BY batch, kind, cluster_id")


def cluster_id(idx: Path, doc_id: str) -> int:
    return _rows(idx, f"SELECT cluster_id FROM clusters WHERE doc_id = '{doc_id}'")[0][0]


def words(text: str) -> list[str]:
    return text.split()


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return all_records()


@pytest.fixture(scope="module")
def one_shot(records: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    idx = tmp_path_factory.mktemp("oneshot") / "idx"
    dedup.ingest([table(records)], idx)
    return idx


@pytest.fixture(scope="module")
def ten_batches(records: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ingest_in_batches(records, 10, tmp_path_factory.mktemp("k10") / "idx")


def ingest_in_batches(records: list[dict], k: int, idx: Path, seed: int | None = None) -> Path:
    rows = list(records)
    random.Random(seed if seed is not None else k).shuffle(rows)  # originals and copies land in different nights
    for i in range(k):
        s = dedup.ingest([table(rows[i::k])], idx)
        assert s.new == len(rows[i::k]) and s.replaced == s.unchanged == s.rejected == 0
    return idx


# ----------------------------------------------------------------------------------------------- incremental
def test_one_shot_sanity(one_shot: Path, records: list[dict]) -> None:
    part = partition_of(one_shot)
    assert sum(len(g) for g in part) == len(records) == 327
    assert frozenset({SEED_ORIGINAL, SEED_COPY}) in part
    assert sum(len(g) >= 2 for g in part) >= 13
    # ingesting the directory (JSONL + .txt files) gives the same partition as ingesting the records
    dedup.ingest([ARTICLES], one_shot.parent / "dir")
    assert partition_of(one_shot.parent / "dir") == part


@pytest.mark.parametrize("k", [2, 5, 10])
def test_k_batches_equal_one_shot(k: int, records: list[dict], one_shot: Path, ten_batches: Path,
                                  tmp_path: Path) -> None:
    idx = ten_batches if k == 10 else ingest_in_batches(records, k, tmp_path / "idx")
    assert partition_of(idx) == partition_of(one_shot)
    assert _rows(idx, "SELECT count(*), count(DISTINCT doc_id) FROM documents") == [(327, 327)]
    # the same candidate pairs with the same scores, each once
    assert pair_scores(idx) == pair_scores(one_shot)
    assert _rows(idx, "SELECT count(*) - count(DISTINCT (doc_a, doc_b)) FROM pairs") == [(0,)]
    assert _rows(idx, "SELECT count(*) FROM batches") == [(k,)]
    # cluster_events tell the whole story: every cluster of 2+ appeared in one event ('new', or 'split' when the
    # clustering moved documents out of a grown cluster), and no id a merge absorbed is still in use
    ev = events(idx)
    born = [cid for _, kind, cid, _, size in ev if kind == "new" or (kind == "split" and size >= 2)]
    absorbed = {o for _, kind, _, others, _ in ev if kind == "merge" for o in others}
    final = {cid for (cid,) in _rows(idx, "SELECT DISTINCT cluster_id FROM clusters WHERE size >= 2")}
    assert len(born) == len(set(born)) and final <= set(born)
    assert not absorbed & {cid for (cid,) in _rows(idx, "SELECT DISTINCT cluster_id FROM clusters")}
    total = _rows(idx, "SELECT sum(b.clusters) FROM batches b WHERE b.batch = (SELECT max(batch) FROM batches)")
    assert total == [(len(final),)]


def test_small_parts_equal_one_shot(records: list[dict], one_shot: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch larger than one link part (and one verification group) gives the same pairs and clusters:
    each pair comes up in exactly one part."""
    monkeypatch.setattr(dedup.engines.local, "CHUNK", 40)
    monkeypatch.setattr(dedup.engines.local, "LINK_CHUNK", 80)
    monkeypatch.setattr(dedup.engines.local, "VERIFY_DOCS", 25)
    idx = tmp_path / "idx"
    dedup.ingest([table(records)], idx)
    assert len(dedup.Index(idx).snapshot.files("buckets")) >= 8  # the batch really was cut into parts
    assert pair_scores(idx) == pair_scores(one_shot)
    assert partition_of(idx) == partition_of(one_shot)


def test_rerun_same_batch_changes_nothing(records: list[dict], tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    rows = list(records)
    random.Random(7).shuffle(rows)
    night1, night2 = tmp_path / "night1.jsonl", tmp_path / "night2.jsonl"
    for f, part in ((night1, rows[:200]), (night2, rows[200:])):
        f.write_text("".join(json.dumps(r) + "\n" for r in part), "utf-8")
    for f in (night1, night2):
        res = CliRunner().invoke(main, ["ingest", str(f), "--index", str(idx), "--json"])
        assert res.exit_code == 0, res.output
    before = content(idx)
    files_before = read_manifest(idx).tables
    for _ in range(2):
        res = CliRunner().invoke(main, ["ingest", str(night2), "--index", str(idx), "--json"])
        assert res.exit_code == 0, res.output
        s = json.loads(res.stdout)
        assert (s["read"], s["unchanged"], s["new"], s["replaced"], s["indexed"]) == (127, 127, 0, 0, 0)
        assert (s["pairs"], s["new_clusters"], s["merges"], s["splits"]) == (0, 0, 0, 0)
    after = content(idx)
    for t in CONTENT_TABLES:
        assert after[t].equals(before[t]), t
    # nothing but the (rewritten) clusters table and the batches log got new files
    files_after = read_manifest(idx).tables
    assert {t for t in TABLES if files_after[t] != files_before[t]} <= {"clusters", "batches"}
    assert _rows(idx, "SELECT batch, new, unchanged FROM batches ORDER BY batch") == \
        [(1, 200, 0), (2, 127, 0), (3, 0, 127), (4, 0, 127)]
    # a version is the text: the same text with another title or date is not an update
    retitled = dict(rows[0], title="A new headline", published_at="2030-01-01")
    s = dedup.ingest([table([retitled])], idx)
    assert (s.unchanged, s.replaced, s.new) == (1, 0, 0)
    assert content(idx, ("documents",))["documents"].equals(before["documents"])


def test_changed_text_replaces_everywhere(records: list[dict], tmp_path: Path) -> None:
    """The same id with a different text replaces the old version: documents, signatures, buckets, pairs and
    clusters then equal a one-shot ingest of the corpus as it is now."""
    idx = tmp_path / "idx"
    rows = list(records)
    random.Random(3).shuffle(rows)
    for i in range(4):
        dedup.ingest([table(rows[i::4])], idx)
    by_id = {r["id"]: r for r in rows}
    copy_id = "bbc-business-180~mt-es"
    orig = by_id["bbc-business-180"]
    assert cluster_id(idx, copy_id) == cluster_id(idx, orig["id"])
    # the copy's id now carries another story's text (a copy of the seed original); one id with new text too
    other = next(r for r in rows if r["id"] == SEED_ORIGINAL)
    plain = next(r for r in rows if r["source"] == "bbc" and "~" not in r["id"] and r["id"] != orig["id"])
    changed = [dict(by_id[copy_id], text=other["text"]),
               dict(plain, text=plain["text"] + " This article was updated with a correction.")]
    new = dict(plain, id="late-arrival", text=by_id["bbc-sport-047"]["text"])
    s = dedup.ingest([table(changed + [new, by_id["bbc-business-340"]])], idx)
    assert (s.replaced, s.new, s.unchanged, s.indexed) == (2, 1, 1, 3)
    current = {**by_id, **{r["id"]: r for r in changed}, new["id"]: new}
    ref = tmp_path / "ref"
    dedup.ingest([table(list(current.values()))], ref)
    assert partition_of(idx) == partition_of(ref)
    assert pair_scores(idx) == pair_scores(ref)
    for t in ("documents", "signatures", "buckets"):
        n = _rows(idx, f"SELECT count(*), count(DISTINCT doc_id) FROM {t}")[0]
        assert n == _rows(ref, f"SELECT count(*), count(DISTINCT doc_id) FROM {t}")[0], t
    assert _rows(idx, f"SELECT text FROM documents WHERE doc_id = '{copy_id}'") == [(other["text"],)]
    assert cluster_id(idx, copy_id) == cluster_id(idx, SEED_ORIGINAL)
    assert cluster_id(idx, copy_id) != cluster_id(idx, orig["id"])
    assert _rows(idx, "SELECT count(*) FROM batches WHERE replaced = 2") == [(1,)]


def test_member_joining_keeps_cluster_id(records: list[dict], tmp_path: Path) -> None:
    by_id = {r["id"]: r for r in records}
    fill = [r for r in records if r["source"] == "reuters"][:20]
    idx = tmp_path / "idx"
    # night 1: a story and one copy; another story's original alone
    s1 = dedup.ingest([table(fill + [by_id["bbc-sport-047"], by_id["bbc-sport-047~mt-es"],
                                     by_id["bbc-business-180"]])], idx)
    story, single = cluster_id(idx, "bbc-sport-047"), cluster_id(idx, "bbc-business-180")
    assert cluster_id(idx, "bbc-sport-047~mt-es") == story and s1.new_clusters == 1
    assert events(idx, 1) == [(1, "new", story, [], 2)]
    # night 2: a third copy joins the story, and a copy of the lone original arrives
    s2 = dedup.ingest([table([by_id["bbc-sport-047~mt-gl"], by_id["bbc-business-180~mt-eo"]])], idx)
    assert cluster_id(idx, "bbc-sport-047~mt-gl") == story  # joined: same id, no event
    assert _rows(idx, f"SELECT size FROM clusters WHERE cluster_id = {story} LIMIT 1") == [(3,)]
    assert cluster_id(idx, "bbc-business-180~mt-eo") == single  # the original's own id becomes the story's
    assert events(idx, 2) == [(2, "new", single, [], 2)]
    assert (s2.new_clusters, s2.merges) == (1, 0)
    # night 3: both again (unchanged) plus the last copy: still the same ids, no events
    s3 = dedup.ingest([table([by_id["bbc-sport-047~mt-gl"], by_id["bbc-sport-047~mt-eo"]])], idx)
    assert cluster_id(idx, "bbc-sport-047~mt-eo") == story and events(idx, 3) == []
    assert (s3.unchanged, s3.new, s3.new_clusters, s3.merges) == (1, 1, 0, 0)


def _article(records: list[dict], min_words: int = 600) -> dict:
    return next(r for r in records
                if r["source"] == "bbc" and "~" not in r["id"] and len(words(r["text"])) >= min_words)


def test_merge_keeps_older_id_and_is_recorded(records: list[dict], tmp_path: Path) -> None:
    """Two 2-document stories (the first and the last 45% of a real article, each with a near-exact copy) are
    bridged by three versions of the whole article: the stories merge, the older id survives, and the merge is
    recorded. Every bridge contains each half entirely, so the merged cluster is dense (only the 4 half-vs-half
    edges are missing out of 21): a clustering that splits weak components still keeps it whole."""
    art = _article(records)
    w = words(art["text"])
    n = len(w)
    h1, h2 = w[: int(n * 0.45)], w[n - int(n * 0.45):]

    def doc(i: str, ws: list[str], day: str) -> dict:
        return {"id": i, "text": " ".join(ws), "title": art["title"], "source": "test", "url": None,
                "published_at": day, "lang": "en"}

    a = [doc("a1", h1, "2024-01-01"), doc("a2", ["Update:"] + h1[:-12], "2024-01-02")]
    b = [doc("b1", h2, "2024-01-03"), doc("b2", h2[12:] + ["(agencies)"], "2024-01-04")]
    bridge = [doc("w1", w, "2024-01-05"), doc("w2", ["Full", "story:"] + w, "2024-01-06"),
              doc("w3", w[: n // 2 - 5] + w[n // 2 + 5:], "2024-01-07")]
    fill = [r for r in records if r["source"] == "reuters"][:10]
    idx = tmp_path / "idx"
    dedup.ingest([table(fill + a)], idx)
    dedup.ingest([table(b)], idx)
    ida, idb = cluster_id(idx, "a1"), cluster_id(idx, "b1")
    assert ida != idb and ida < idb  # story A is older
    assert cluster_id(idx, "a2") == ida and cluster_id(idx, "b2") == idb
    s = dedup.ingest([table(bridge)], idx)
    ref = tmp_path / "ref"
    dedup.ingest([table(fill + a + b + bridge)], ref)
    assert partition_of(idx) == partition_of(ref)
    merged = {cluster_id(idx, d) for d in ("a1", "a2", "b1", "b2", "w1", "w2", "w3")}
    assert merged == {ida}
    assert events(idx, 3) == [(3, "merge", ida, [idb], 7)]
    assert (s.merges, s.new_clusters) == (1, 0)


def test_old_singleton_joining_a_story_does_not_take_its_id(records: list[dict], tmp_path: Path) -> None:
    """A document indexed long ago (smaller id) that a new document links to an existing story is a member
    joining: the story keeps its id and no merge is recorded."""
    by_id = {r["id"]: r for r in records}
    lone = next(r for r in records if r["source"] == "reuters" and len(words(r["text"])) >= 150)
    fill = [r for r in records if r["source"] == "wikiref"][:5]
    idx = tmp_path / "idx"
    dedup.ingest([table(fill + [lone])], idx)
    dedup.ingest([table([by_id["bbc-sport-047"], by_id["bbc-sport-047~mt-es"]])], idx)
    story, old = cluster_id(idx, "bbc-sport-047"), cluster_id(idx, lone["id"])
    assert old < story
    both = dict(lone, id="digest", text=lone["text"] + "\n\n" + by_id["bbc-sport-047"]["text"],
                published_at="2024-06-01")
    s = dedup.ingest([table([both])], idx)
    # the digest links to both; whichever side the clustering puts it on, the story keeps its id and the old
    # singleton's id never replaces it, and no merge of stories is recorded
    assert cluster_id(idx, "bbc-sport-047") == story == cluster_id(idx, "bbc-sport-047~mt-es")
    assert cluster_id(idx, "digest") in (story, old)
    assert [e for e in events(idx, 3) if e[1] == "merge"] == [] and s.merges == 0
    ref = tmp_path / "ref"
    dedup.ingest([table(fill + [lone, by_id["bbc-sport-047"], by_id["bbc-sport-047~mt-es"], both])], ref)
    assert partition_of(idx) == partition_of(ref)


def test_json_summary_counts(records: list[dict], tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    rows = [r for r in records if "~" not in r["id"]]
    f1, f2 = tmp_path / "n1.jsonl", tmp_path / "n2.jsonl"
    f1.write_text("".join(json.dumps(r) + "\n" for r in rows[:100]), "utf-8")
    copies = [r for r in records if "~" in r["id"]]
    night2 = rows[90:100] + [dict(r, text=r["text"] + " (corrected)") for r in rows[80:85]] + rows[100:150] + copies
    f2.write_text("".join(json.dumps(r) + "\n" for r in night2), "utf-8")
    res = CliRunner().invoke(main, ["ingest", str(f1), "--index", str(idx), "--json"])
    assert res.exit_code == 0
    res = CliRunner().invoke(main, ["ingest", str(f2), "--index", str(idx), "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert (s["new"], s["replaced"], s["unchanged"]) == (50 + len(copies), 5, 10)
    assert s["read"] == s["new"] + s["replaced"] + s["unchanged"] + s["rejected"]
    assert s["batch"] == 2 and s["seconds"] > 0 and s["stale_lock"] is None
    assert s["new_clusters"] == len(events_of_kind(idx, 2, "new")) >= 1
    assert s["merges"] == len(events_of_kind(idx, 2, "merge"))
    b = _rows(idx, "SELECT new, replaced, unchanged FROM batches WHERE batch = 2")
    assert b == [(s["new"], s["replaced"], s["unchanged"])]


def events_of_kind(idx: Path, batch: int, kind: str) -> list[tuple]:
    return [e for e in events(idx, batch) if e[1] == kind]


# ----------------------------------------------------------------------------------------------- compaction
def test_compact_changes_no_result(ten_batches: Path, one_shot: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    shutil.copytree(ten_batches, idx)
    # a replacement as well: it rewrites the files that held the old version
    doc = _rows(idx, "SELECT doc_id, text FROM documents WHERE source = 'bbc' ORDER BY doc_id LIMIT 1")[0]
    dedup.ingest([table([{"id": doc[0], "text": doc[1] + " Corrected.", "title": None, "source": "bbc",
                          "url": None, "published_at": None, "lang": None}])], idx)
    before = content(idx, TABLES)
    out1 = tmp_path / "before.csv"
    assert CliRunner().invoke(main, ["clusters", "--index", str(idx), "--output", str(out1)]).exit_code == 0
    m0 = read_manifest(idx)
    n_before = sum(len(f) for f in m0.tables.values())

    res = CliRunner().invoke(main, ["compact", "--index", str(idx), "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    m1 = read_manifest(idx)
    n_after = sum(len(f) for f in m1.tables.values())
    assert r["files_before"] == n_before > n_after == r["files_after"] == len(TABLES)
    assert m1.generation == m0.generation + 1 and m1.next_batch == m0.next_batch  # no batch number used
    after = content(idx, TABLES)
    for t in TABLES:
        assert after[t].equals(before[t]), t
    out2 = tmp_path / "after.csv"
    assert CliRunner().invoke(main, ["clusters", "--index", str(idx), "--output", str(out2)]).exit_code == 0
    assert out1.read_bytes() == out2.read_bytes()
    assert dedup.Index(idx).clusters(limit=None).equals(dedup.Index(tmp_path / "idx").clusters(limit=None))
    # old files are on the garbage list, moved to superseded/ (open readers keep working), nothing else is lying around
    garbage = {g["file"] for g in m1.garbage}
    assert {f for fs in m0.tables.values() for f in fs} - {f for fs in m1.tables.values() for f in fs} <= garbage
    on_disk = {p.relative_to(idx).as_posix() for p in (idx / "tables").rglob("*") if p.is_file()}
    assert on_disk == {f for fs in m1.tables.values() for f in fs}
    assert {p.relative_to(idx / "superseded").as_posix() for p in (idx / "superseded").rglob("*") if p.is_file()} \
        == garbage
    # buckets are one file sorted by (band, bucket), still holding all rows of its documents (the link stage
    # counts such a file's matches at once); a second compaction has nothing to do
    bk = pq.read_table(idx / m1.tables["buckets"][0])
    assert bk.equals(bk.sort_by([("band", "ascending"), ("bucket", "ascending"), ("doc_id", "ascending")]))
    assert whole_documents(idx / m1.tables["buckets"][0])
    res = CliRunner().invoke(main, ["compact", "--index", str(idx), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["tables"] == []
    # leftovers of a compaction killed half-way (spill files, an unlisted output) go at the next writer
    (idx / "tables" / "_compact_tmp").mkdir()
    (idx / "tables" / "_compact_tmp" / "duckdb_temp_block-1.block").write_bytes(b"x" * 100)
    stray = idx / "tables" / "buckets" / "00000099-0123456789ab.parquet"
    shutil.copy(idx / m1.tables["buckets"][0], stray)
    # ingesting after compaction still works incrementally
    s = dedup.ingest([ARTICLES], idx)
    assert not stray.exists() and not (idx / "tables" / "_compact_tmp").exists()
    assert s.batch == 12 and s.new == 0 and s.unchanged == 326 and s.replaced == 1
    assert partition_of(idx) == partition_of(one_shot)


def test_compact_not_an_index(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["compact", "--index", str(tmp_path / "nope")])
    assert res.exit_code == 5 and "not a dedup index" in res.stderr


def test_format_1_index_is_refused_until_upgraded_then_grows_like_a_new_one(articles: list[dict],
                                                                            tmp_path: Path) -> None:
    """tests/format_v1/idx was written by dedup with index format 1 (64-bit bucket keys): 68 articles, among them
    the originals of the sample's machine-translated copies. It is refused with a hint, converted by `upgrade`,
    and then a batch with the copies links to its documents exactly as a new index of everything would."""
    idx = tmp_path / "idx"
    shutil.copytree(Path(__file__).parent / "format_v1" / "idx", idx)
    before = {f.name: f.read_bytes() for f in (idx / "tables" / "buckets").iterdir()}
    with pytest.raises(IndexProblem, match="dedup upgrade"):
        dedup.Index(idx)
    res = CliRunner().invoke(main, ["ingest", str(ARTICLES / "seeds"), "--index", str(idx)])
    assert res.exit_code == 5 and "dedup upgrade" in res.output and "Traceback" not in res.output
    assert {f.name: f.read_bytes() for f in (idx / "tables" / "buckets").iterdir()} == before  # untouched
    res = CliRunner().invoke(main, ["upgrade", "--index", str(idx)])
    assert res.exit_code == 0 and "version 1 → 2" in res.output
    assert upgrade(idx) == 2  # a second run has nothing to do
    ix = dedup.Index(idx)
    assert ix.snapshot.manifest.version == 2 and ix.table("buckets").schema.field("bucket").type == pa.uint32()
    old_ids = set(ix.table("documents")["doc_id"].to_pylist())
    rest = [a for a in articles if a["id"] not in old_ids][:100] + [a for a in articles if "~mt-" in a["id"]]
    rest = list({a["id"]: a for a in rest}.values())
    assert sum("~mt-" in a["id"] for a in rest) >= 20
    dedup.ingest([table(rest)], idx)
    fresh = tmp_path / "fresh"
    dedup.ingest([table([a for a in articles if a["id"] in old_ids]), table(rest)], fresh)
    assert partition_of(idx) == partition_of(fresh)
    linked = "SELECT doc_a, doc_b FROM pairs WHERE linked ORDER BY ALL"
    assert _rows(idx, linked) == _rows(fresh, linked)
    mt_links = [p for p in _rows(idx, linked) if "~mt-" in p[0] + p[1]]
    assert len(mt_links) >= 20  # the copies found their originals in the converted buckets
    # the pairs file written by format 1 lacks `rule` and the later signals: the view reads files by name (a
    # column added later is null in older files), also after compaction merged the two kinds of file
    old_pairs = [f for f in (idx / "tables" / "pairs").glob("*.parquet") if "rule" not in pq.read_schema(f).names]
    assert old_pairs
    by_rule = "SELECT rule, count(*) FROM pairs GROUP BY ALL ORDER BY ALL"
    before_compaction = _rows(idx, by_rule)
    assert sum(n for _, n in before_compaction) == _rows(idx, "SELECT count(*) FROM pairs")[0][0] > 0
    compact(idx)
    assert _rows(idx, by_rule) == before_compaction and _rows(idx, linked) == _rows(fresh, linked)
