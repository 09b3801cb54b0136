"""Memory and time of the recluster step on an existing index, in this process alone: after every batch the driver
(either engine's) reads every document id and every scored pair of the index and reclusters them
(`dedup.batch.recluster`), so this is the part of a batch's memory that grows with the whole index, not the batch.

    python scripts/recluster_memory.py IDX

Prints the index's documents and pairs, then for each step its seconds and the process's resident memory (VmRSS)
and peak (VmHWM) after it, from /proc/self/status.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb

from dedup.batch.recluster import read_cluster_inputs, recluster
from dedup.store import Snapshot


def memory() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in bytes."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return tuple(int(status[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", type=Path)
    args = ap.parse_args()
    snap = Snapshot(args.index)
    con = duckdb.connect(config={"memory_limit": "512MB"})  # as ingest's scratch connection
    print("| step | seconds | RSS MiB | peak MiB |\n|---|---|---|---|")
    rss, hwm = memory()
    print(f"| start | 0 | {rss / 2**20:,.0f} | {hwm / 2**20:,.0f} |")
    t = time.perf_counter()
    inputs = read_cluster_inputs(con, snap.files("documents"), snap.files("clusters"), snap.files("pairs"))
    rss, hwm = memory()
    print(f"| read documents and pairs | {time.perf_counter() - t:.1f} | {rss / 2**20:,.0f} | {hwm / 2**20:,.0f} |")
    t = time.perf_counter()
    out = recluster(inputs, snap.params, snap.manifest.next_cluster_id)
    rss, hwm = memory()
    print(f"| recluster | {time.perf_counter() - t:.1f} | {rss / 2**20:,.0f} | {hwm / 2**20:,.0f} |")
    print(f"\n{inputs.documents.num_rows:,} documents ({inputs.documents.nbytes / 2**20:,.0f} MiB in Arrow), "
          f"{inputs.pairs.num_rows:,} pairs ({inputs.pairs.nbytes / 2**20:,.0f} MiB), {out.stories:,} stories")


if __name__ == "__main__":
    main()
