"""Shared fixtures: the committed sample in data/ (real articles, the seed pair, Apertium copies)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
ARTICLES = DATA / "articles"
SEED_ORIGINAL = "001_f7b29a746955773c"
SEED_COPY = "000_6c3f8b3837a194f5"


# the tables whose content is a batch's result, and the columns that order their rows (`at`, `started_at`... say
# when, not what)
RESULT_KEYS = {"documents": ["doc_id"], "buckets": ["band", "bucket", "doc_id"], "signatures": ["doc_id"],
               "pairs": ["doc_a", "doc_b"], "clusters": ["doc_id"], "cluster_events": ["batch", "cluster_id", "kind"],
               "rejected": ["batch", "file", "line", "reason"]}


def index_tables(index: str | Path) -> dict[str, pa.Table]:
    """Every table of `index` whose content is a batch's result, rows in a fixed order, for comparing indexes."""
    import dedup

    ix = dedup.Index(index)
    out = {}
    for name, keys in RESULT_KEYS.items():
        t = ix.table(name)
        if "at" in t.column_names:
            t = t.drop(["at"])
        out[name] = t.sort_by([(k, "ascending") for k in keys])
    ix.close()
    return out


def load_articles() -> list[dict]:
    rows = []
    for name in ("news_sample.jsonl", "news_copies.jsonl"):
        with open(ARTICLES / name, encoding="utf-8") as f:
            rows.extend(json.loads(line) for line in f)
    return rows


def load_truth() -> dict[str, str]:
    with open(DATA / "truth.csv", encoding="utf-8", newline="") as f:
        return {r["id"]: r["story"] for r in csv.DictReader(f)}


@pytest.fixture(scope="session")
def articles() -> list[dict]:
    return load_articles()


@pytest.fixture(scope="session")
def truth() -> dict[str, str]:
    return load_truth()


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole sample ingested once with default settings (read-only for tests that use it)."""
    import dedup

    path = tmp_path_factory.mktemp("sample") / "idx"
    dedup.ingest([ARTICLES], path)
    return path


def pytest_sessionstart(session: pytest.Session) -> None:
    """Tests call kernels directly, not only through a job: stale cached kernels go first, as a job would."""
    from dedup.runtime import prepare_process

    prepare_process()
