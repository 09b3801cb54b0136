"""Every CLI command, through click's runner, on the committed sample."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import dedup
from click.testing import CliRunner

from dedup.cli import main

from conftest import ARTICLES, SEED_COPY, SEED_ORIGINAL


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    idx = tmp_path_factory.mktemp("cli") / "idx"
    res = CliRunner().invoke(main, ["ingest", str(ARTICLES), "--index", str(idx), "--json"])
    assert res.exit_code == 0, res.output
    return idx


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_help_everywhere() -> None:
    for cmd in ([], ["ingest"], ["clusters"], ["similar"], ["sql"], ["stats"]):
        code, out, _ = run(*cmd, "--help")
        assert code == 0 and "Usage:" in out


def test_ingest_json_summary(tmp_path: Path) -> None:
    code, out, _ = run("ingest", str(ARTICLES), "--index", str(tmp_path / "i"), "--json")
    s = json.loads(out)
    assert code == 0
    assert s["read"] == s["indexed"] + s["rejected"] + s["unchanged"] == 327
    assert s["clusters"] >= 13 and s["seconds"] > 0
    code, out, _ = run("ingest", str(ARTICLES), "--index", str(tmp_path / "i"), "--json")
    s = json.loads(out)
    assert (s["unchanged"], s["indexed"]) == (327, 0)


def test_ingest_partial_success_exit_code(tmp_path: Path, articles: list[dict]) -> None:
    f = tmp_path / "feed.jsonl"
    f.write_text(json.dumps({"id": "a", "text": articles[0]["text"]}) + "\n{broken\n", "utf-8")
    code, out, err = run("ingest", str(f), "--index", str(tmp_path / "i"), "--json")
    assert code == 3 and json.loads(out)["rejected"] == 1
    assert f"{f}:2" in err and "malformed_json" in err and "Traceback" not in err


def test_clusters_prints_seed_pair_and_exports_every_doc(cli_index: Path, tmp_path: Path) -> None:
    code, out, _ = run("clusters", "--index", str(cli_index), "--limit", "100")
    assert code == 0
    block = next(b for b in out.split("\ncluster ") if SEED_ORIGINAL in b)
    assert SEED_COPY in block and "(2 documents)" in block
    for ext in ("csv", "parquet", "jsonl"):
        target = tmp_path / f"assign.{ext}"
        code, _, _ = run("clusters", "--index", str(cli_index), "--output", str(target))
        assert code == 0
        if ext == "csv":
            rows = list(csv.DictReader(open(target, encoding="utf-8")))
        elif ext == "parquet":
            rows = pq.read_table(target).to_pylist()
        else:
            rows = [json.loads(line) for line in open(target, encoding="utf-8")]
        assert len(rows) == 327 and set(rows[0]) == {"doc_id", "cluster_id"}
        ids = {str(r["doc_id"]): str(r["cluster_id"]) for r in rows}
        assert ids[SEED_ORIGINAL] == ids[SEED_COPY]
        assert len(set(ids.values())) > 250  # singletons keep their own ids


def test_similar_by_id_and_text_file(cli_index: Path) -> None:
    code, out, _ = run("similar", "--index", str(cli_index), "--id", SEED_COPY, "--format", "json")
    best = json.loads(out)[0]
    assert code == 0 and best["doc_id"] == SEED_ORIGINAL and best["linked"] is True
    code, out, _ = run("similar", "--index", str(cli_index), "--text-file",
                       str(ARTICLES / "seeds" / f"{SEED_ORIGINAL}.txt"))
    assert code == 0 and SEED_COPY in out
    code, _, err = run("similar", "--index", str(cli_index), "--id", "nope' OR 1=1 --")
    assert code == 2 and "not found" in err


def test_sql_formats(cli_index: Path) -> None:
    q = "SELECT size, count(*) AS n FROM cluster_summary GROUP BY size ORDER BY size"
    code, out, _ = run("sql", "--index", str(cli_index), q, "--format", "csv")
    rows = list(csv.DictReader(out.splitlines()))
    assert code == 0 and sum(int(r["size"]) * int(r["n"]) for r in rows) >= 2 * 13
    code, out, _ = run("sql", "--index", str(cli_index), "SELECT count(*) AS n FROM documents")
    assert code == 0 and "327" in out
    code, _, err = run("sql", "--index", str(cli_index), "SELECT * FROM nope")
    assert code == 2 and "SQL error" in err


def test_stats_json(cli_index: Path) -> None:
    code, out, _ = run("stats", "--index", str(cli_index), "--json")
    st = json.loads(out)
    assert code == 0 and st["documents"] == 327 and st["clusters"] >= 13 and st["pairs"] >= st["linked_pairs"]
    assert st["bytes"] > 0 and st["params"]["num_perm"] == dedup.Params().num_perm


def test_errors_are_one_line_with_exit_codes(tmp_path: Path, cli_index: Path) -> None:
    code, _, err = run("stats", "--index", str(tmp_path / "missing"))
    assert code == 5 and "no such index" in err and "Traceback" not in err
    code, _, err = run("ingest", str(ARTICLES / "seeds"), "--index", str(cli_index), "--num-perm", "64")
    assert code == 5 and "num_perm" in err
    code, _, err = run("ingest", str(tmp_path / "nofile.jsonl"), "--index", str(tmp_path / "i"))
    assert code == 2 and "no such file" in err


def test_every_shingle_kind_can_be_named_and_must_match_the_index(tmp_path: Path) -> None:
    seeds = str(ARTICLES / "seeds")
    idx = str(tmp_path / "i")
    code, _, err = run("ingest", seeds, "--index", idx, "--shingle", dedup.Params().shingle)  # the default, named
    assert code == 0, err
    code, _, err = run("ingest", seeds, "--index", idx, "--shingle", "stem")
    assert code != 0 and "shingle" in err


def test_console_command_exits_with_its_code_and_quietly_when_stdout_closes(cli_index: Path) -> None:
    """`dedup` (cli.run) ends with os._exit: the exit code and everything printed must still come through, and a
    reader that stops early (`dedup clusters | head`) is not an error."""
    cmd = [sys.executable, "-c", "from dedup.cli import run; run()"]
    done = subprocess.run(cmd + ["stats", "--index", str(cli_index), "--json"], capture_output=True, text=True)
    assert done.returncode == 0 and json.loads(done.stdout)["documents"] > 300
    done = subprocess.run(cmd + ["stats", "--index", str(cli_index / "missing")], capture_output=True, text=True)
    assert done.returncode == 5 and "no such index" in done.stderr
    p = subprocess.Popen(cmd + ["clusters", "--index", str(cli_index)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # before the command has printed anything: every write meets a closed pipe
    assert p.wait(timeout=120) == 0 and p.stderr.read() == b""
