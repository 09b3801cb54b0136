"""What the reading commands print, exactly: several `dedup sql` statements in turn in every format,
`clusters --limit 0` as every cluster, and `clusters --output` writing the file and nothing else to stdout."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

import dedup
from dedup.cli import main

from conftest import SEED_COPY, SEED_ORIGINAL

TWO = (f"SELECT count(*) AS n FROM documents; "
       f"SELECT doc_id, cluster_id FROM clusters WHERE doc_id IN ('{SEED_ORIGINAL}', '{SEED_COPY}') ORDER BY doc_id")


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.stdout, res.stderr


def _expected(index: Path) -> tuple[int, list[dict]]:
    with dedup.Index(index) as ix:
        n = ix.sql("SELECT count(*) AS n FROM documents").to_pylist()[0]["n"]
        seeds = ix.sql(f"SELECT doc_id, cluster_id FROM clusters WHERE doc_id IN ('{SEED_ORIGINAL}', "
                       f"'{SEED_COPY}') ORDER BY doc_id").to_pylist()
    return n, seeds


def test_several_sql_statements_print_each_result_in_turn(sample_index: Path) -> None:
    n, seeds = _expected(sample_index)
    assert n == 327 and len(seeds) == 2 and seeds[0]["cluster_id"] == seeds[1]["cluster_id"]

    code, out, err = run("sql", "--index", str(sample_index), TWO, "--format", "json")
    assert code == 0 and err == "" and json.loads(out) == [[{"n": n}], seeds]

    code, out, _ = run("sql", "--index", str(sample_index), TWO, "--format", "jsonl")
    assert code == 0 and [json.loads(line) for line in out.splitlines()] == [{"n": n}, *seeds]

    code, out, _ = run("sql", "--index", str(sample_index), TWO, "--format", "csv")
    first, second = out.strip("\n").split("\n\n")  # one CSV block per statement, a blank line between
    assert code == 0 and list(csv.DictReader(io.StringIO(first))) == [{"n": str(n)}]
    assert list(csv.DictReader(io.StringIO(second))) == [{k: str(v) for k, v in r.items()} for r in seeds]

    code, out, _ = run("sql", "--index", str(sample_index), TWO)
    first, second = out.strip("\n").split("\n\n")
    assert code == 0 and first.split("\n")[0].strip() == "n" and first.split("\n")[2].strip() == str(n)
    assert first.endswith("(1 rows)") and second.endswith("(2 rows)")
    assert [line.split()[0] for line in second.split("\n")[2:4]] == [SEED_COPY, SEED_ORIGINAL]


def test_clusters_limit_zero_lists_every_cluster(sample_index: Path) -> None:
    with dedup.Index(sample_index) as ix:
        every = ix.sql("SELECT count(DISTINCT cluster_id) AS n FROM clusters").to_pylist()[0]["n"]
    assert every > 250  # singletons are clusters of one: far more than the default limit of 20
    code, out, _ = run("clusters", "--index", str(sample_index), "--min-size", "1", "--limit", "0")
    assert code == 0 and out.count("\ncluster ") == every
    code, out, _ = run("clusters", "--index", str(sample_index), "--min-size", "1")
    assert code == 0 and out.count("\ncluster ") == 20


def test_clusters_output_writes_the_file_and_prints_nothing_else(sample_index: Path, tmp_path: Path) -> None:
    target = tmp_path / "assign.parquet"
    code, out, err = run("clusters", "--index", str(sample_index), "--output", str(target))
    assert code == 0 and out == ""
    assert err.strip().splitlines() == [f"wrote 327 assignments to {target}"]
    assert pq.read_table(target).num_rows == 327
