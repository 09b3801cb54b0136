"""dedup export: the corpus with one representative per story, or every document with its story, in each format."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import dedup
from dedup.cli import main

from conftest import SEED_COPY, SEED_ORIGINAL


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter="," if path.suffix == ".csv" else "\t"))
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.mark.parametrize("ext", [".jsonl", ".parquet", ".csv", ".tsv"])
def test_representatives_one_per_story(sample_index: Path, tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"dedup{ext}"
    res = CliRunner().invoke(main, ["export", "--index", str(sample_index), "--output", str(out)])
    assert res.exit_code == 0, res.output
    rows = _rows(out)
    clusters = dedup.Index(sample_index).sql("SELECT doc_id, cluster_id, size, representative FROM clusters")
    stories = {r["cluster_id"]: r for r in clusters.to_pylist() if r["doc_id"] == r["representative"]}
    assert len(rows) == len(stories) == len({str(r["cluster_id"]) for r in rows}) < 327
    ids = {r["doc_id"] for r in rows}
    assert (SEED_ORIGINAL in ids) != (SEED_COPY in ids)          # one of the seed pair, not both
    for r in rows:
        want = stories[int(r["cluster_id"])]
        assert r["doc_id"] == want["representative"] and int(r["cluster_size"]) == want["size"]
        assert str(r["is_representative"]).lower() == "true" and "text" not in r
    assert f"wrote {len(rows):,} documents" in res.stderr


def test_all_with_text_streams_in_batches(sample_index: Path, tmp_path: Path, articles: list[dict]) -> None:
    out = tmp_path / "all.parquet"
    summary = dedup.export(sample_index, out, representatives=False, with_text=True, batch_rows=50)
    table = pq.read_table(out)
    assert summary.rows == table.num_rows == 327 and summary.stories < 327
    assert pq.ParquetFile(out).metadata.num_row_groups > 1     # written batch by batch, not gathered first
    texts = {a["id"]: a["text"] for a in articles}
    rows = table.to_pylist()
    from_jsonl = [r for r in rows if r["doc_id"] in texts]  # the others are the seed pair's .txt files
    assert len(from_jsonl) == len(texts) and all(r["text"] == texts[r["doc_id"]] for r in from_jsonl)
    seed = [r for r in rows if r["doc_id"] in (SEED_ORIGINAL, SEED_COPY)]
    assert len({r["cluster_id"] for r in seed}) == 1 and [r["cluster_size"] for r in seed] == [2, 2]
    assert sorted(r["is_representative"] for r in seed) == [False, True]


def test_unknown_format_is_a_usage_error_and_writes_nothing(sample_index: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["export", "--index", str(sample_index), "--output", str(tmp_path / "x.xlsx")])
    assert res.exit_code == 2 and ".jsonl" in res.stderr and not list(tmp_path.iterdir())


def test_export_runs_within_its_memory_limit(sample_index: Path, tmp_path: Path, monkeypatch) -> None:
    """The export's DuckDB session is the one that carries the memory limit and the spill directory (it once got a
    fresh connection without them, so a 1M-document export was not bounded)."""
    from dedup.store.snapshot import Snapshot

    seen: list[tuple[str, str]] = []
    connect = Snapshot.connect

    def spy(self, *args, **kwargs):
        con = connect(self, *args, **kwargs)
        seen.append(con.execute("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchall()[0])
        return con

    monkeypatch.setattr(Snapshot, "connect", spy)
    dedup.export(sample_index, tmp_path / "out.parquet")
    assert len(seen) == 1
    limit, spill = seen[0]
    assert limit.endswith("MiB") and float(limit.split()[0]) < 600, limit  # 512MB, not DuckDB's 80 % of RAM
    assert "dedup-export-" in spill
