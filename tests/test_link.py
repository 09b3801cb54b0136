"""The candidate stage's merge join against the plain SQL join it replaces, on the real sample."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dedup
import dedup.engines.local
from dedup import link
from dedup.batch.plan import Appended
from dedup.link import Numbering, _count, candidate_pairs
from dedup.store import whole_documents

from conftest import load_articles


@pytest.fixture(scope="module")
def many_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], pa.Array, dedup.Params]:
    """The sample ingested 30 documents a chunk, so its buckets lie in many sorted files."""
    mp = pytest.MonkeyPatch()
    mp.setattr(dedup.engines.local, "CHUNK", 30)
    idx = tmp_path_factory.mktemp("link") / "idx"
    rows = load_articles()
    dedup.ingest([pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]})], idx)
    mp.undo()
    ix = dedup.Index(idx)
    files = [str(f) for f in ix.snapshot.files("buckets")]
    return files, ix.table("documents")["doc_id"], ix.params


def reference(files: list[str], part: list[str], min_bands: int, bands: int) -> set[tuple[str, str, int]]:
    """Pairs with a document of `part` sharing >= min_bands buckets, with how many of them are whole-text bands:
    a self-join over all bucket rows."""
    return {tuple(r) for r in duckdb.execute(f"""
        SELECT a.doc_id, b.doc_id, count(*) FILTER (WHERE a.band < {bands}) FROM read_parquet($f) a
          JOIN read_parquet($f) b ON a.band = b.band AND a.bucket = b.bucket AND a.doc_id < b.doc_id
        WHERE a.doc_id IN (SELECT doc_id FROM read_parquet($p)) OR b.doc_id IN (SELECT doc_id FROM read_parquet($p))
        GROUP BY ALL HAVING count(*) >= {min_bands}""", {"f": files, "p": part}).fetchall()}


@pytest.mark.parametrize(("min_bands", "whole", "room"), [(m, w, link.MATCH_ROOM) for m in (1, 2, 3)
                                                            for w in (True, False)] + [(3, True, 50), (1, False, 50)])
def test_merge_join_equals_sql_join(many_files: tuple[list[str], pa.Array, int], min_bands: int, whole: bool,
                                    room: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by ingest hold whole documents and are counted file by file; files without that mark (as
    older compactions wrote them) are counted together. Both must give the pairs of the plain SQL join, and the
    same count of shared whole-text bands. A part's own matches are counted in two threads, each taking the
    pairs of a range of documents (as a large batch's are). With room for 50 matches, the merge of a file stops
    and goes on many times (as a large file's does)."""
    monkeypatch.setattr(link, "COUNT_SPLIT", 1)
    monkeypatch.setattr(link, "MATCH_ROOM", room)
    files, ids, params = many_files
    bands = params.bands
    assert len(files) >= 10 and all(whole_documents(f) for f in files if pq.read_metadata(f).num_rows)
    if not whole:
        plain = []
        for i, f in enumerate(files):
            plain.append(str(tmp_path / f"{i}.parquet"))
            pq.write_table(pq.read_table(f).replace_schema_metadata(None), plain[-1])
        files = plain
        assert not any(whole_documents(f) for f in files)
    numbering = Numbering(ids)
    for part in (files[:1], files[3:6], files):
        got = candidate_pairs(part, [f for f in files if f not in part], numbering, bands, params.all_bands, min_bands)
        pairs = set(zip(got["doc_a"].to_pylist(), got["doc_b"].to_pylist(), got["bands"].to_pylist()))
        assert len(pairs) == got.num_rows and all(a < b for a, b, _ in pairs)
        assert pairs == reference(files, part, min_bands, bands)
        assert pairs or part is not files  # the whole sample has copies
        # lead bands count towards min_bands, not towards the whole-text bands
        assert any(n < min_bands for *_, n in pairs) or part is not files


def test_numbering_finds_every_id_and_refuses_strangers() -> None:
    ids = pa.array(["b", "a", "ä", "a\u0301", "", "abc", "ab", "Z", "日本", "x" * 300])
    numbering = Numbering(ids)
    shuffled = pa.array(["日本", "", "ab", "x" * 300, "Z", "a\u0301", "ä", "abc", "a", "b"])
    assert [ids[int(n)].as_py() for n in numbering.numbers(shuffled)] == shuffled.to_pylist()
    with pytest.raises(KeyError):
        numbering.numbers(pa.array(["a", "abcd"]))
    # find: -1 for ids not indexed (how ingest tells new documents from known ones)
    found = numbering.find(pa.array(["abcd", "ab", "à", "日本", "x" * 299]))
    assert found[[0, 2, 4]].tolist() == [-1, -1, -1]
    assert [ids[int(n)].as_py() for n in found[[1, 3]]] == ["ab", "日本"]
    assert Numbering(pa.array([], pa.string())).find(pa.array(["a"])).tolist() == [-1]


@pytest.mark.parametrize("wide_end", ["smaller", "larger"])
def test_count_keeps_pairs_with_enough_bands_whichever_end_it_groups_by(wide_end: str) -> None:
    """Matches (smaller document, 2 × larger + lead flag) are grouped by the end spanning fewer numbers; both
    ways must count exactly the pairs a plain Counter finds, with their whole-text bands, and in the same order
    whether a group's partners are marked in an array or sorted."""
    rng = np.random.default_rng(5 if wide_end == "smaller" else 6)
    n = 20_000
    if wide_end == "smaller":  # a batch (high numbers) against an older file (numbers all over the index)
        big, small = rng.integers(19_000, 19_200, n), rng.integers(0, 18_000, n) % 300 * 60
    else:
        big, small = rng.integers(5_000, 19_000, n) % 400 * 40 + 3_000, rng.integers(0, 150, n)
    lead = rng.integers(0, 2, n)
    a, b = small.astype(np.int32), (2 * big + lead).astype(np.int32)
    want: dict[tuple[int, int], list[int]] = {}
    for x, y, f in zip(small.tolist(), big.tolist(), lead.tolist()):
        want.setdefault((x, y), []).append(f)
    for min_bands in (1, 2, 3):
        got_a, got_b, got_w = _count(a, b, min_bands)
        assert all(np.array_equal(x, y) for x, y in zip((got_a, got_b, got_w), _count(a, b, min_bands, 0)))
        got = {(x, y): w for x, y, w in zip(got_a.tolist(), got_b.tolist(), got_w.tolist())}
        assert len(got) == len(got_a)
        assert got == {k: v.count(0) for k, v in want.items() if len(v) >= min_bands}
        assert any(len(v) >= 3 for v in want.values())


def test_a_batch_numbered_after_the_index_gets_the_numbers_of_one_numbering_of_both() -> None:
    ids = [r["id"] for r in load_articles()]
    index, batch = pa.array(ids[:len(ids) * 2 // 3]), pa.array(ids[len(ids) * 2 // 3:])
    whole, appended = Numbering(pa.concat_arrays([index, batch])), Appended(Numbering(index), batch)
    asked = pa.array([*ids[::-3], "not-indexed", ids[0] + "x", ""])
    assert len(appended) == len(whole) and appended.ids.equals(whole.ids)
    assert appended.find(asked).tolist() == whole.find(asked).tolist()
    assert (appended.find(asked)[:-3] >= 0).all() and appended.find(asked)[-3:].tolist() == [-1, -1, -1]
    assert appended.numbers(pa.array(ids)).tolist() == list(range(len(ids)))
