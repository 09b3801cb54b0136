"""`dedup check`: is every file the manifest lists there and intact, and do the tables agree with each other?"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from dedup.integrity import Damage, damage
from dedup.store import TABLES, Snapshot, read_manifest
from dedup.store.files import file_path, location

# (what is wrong, a query counting the rows where it is): run only when every file is intact
_CONSISTENCY = [
    ("documents: doc_id listed more than once", "SELECT count(*) - count(DISTINCT doc_id) FROM documents"),
    ("clusters: documents without a cluster row",
     "SELECT count(*) FROM documents d ANTI JOIN clusters c USING (doc_id)"),
    ("clusters: rows of documents that are not indexed",
     "SELECT count(*) FROM clusters c ANTI JOIN documents d USING (doc_id)"),
    ("clusters: doc_id listed more than once", "SELECT count(*) - count(DISTINCT doc_id) FROM clusters"),
    ("clusters: size differs from the cluster's number of rows",
     "SELECT count(*) FROM (SELECT cluster_id FROM clusters GROUP BY cluster_id HAVING count(*) <> any_value(size)"
     " OR min(size) <> max(size))"),
    ("signatures: rows of documents that are not indexed",
     "SELECT count(*) FROM signatures s ANTI JOIN documents d USING (doc_id)"),
    ("buckets: rows of documents that are not indexed",
     "SELECT count(*) FROM (SELECT DISTINCT doc_id FROM buckets) b ANTI JOIN documents d USING (doc_id)"),
    ("pairs: a document that is not indexed",
     "SELECT count(*) FROM pairs p WHERE p.doc_a NOT IN (SELECT doc_id FROM documents) "
     "OR p.doc_b NOT IN (SELECT doc_id FROM documents)"),
    ("pairs: doc_a not before doc_b, or a pair listed twice",
     "SELECT count(*) FILTER (WHERE NOT doc_a < doc_b) + count(*) - count(DISTINCT (doc_a, doc_b)) FROM pairs"),
]


@dataclass
class CheckReport:
    """What `dedup check` found: `problems` is empty for a sound index."""

    index: str
    files: int = 0
    files_with_checksum: int = 0
    problems: list[Damage] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"index": self.index, "ok": not self.problems, "files": self.files,
                "files_with_checksum": self.files_with_checksum,
                "problems": [{"file": p.file, "problem": p.problem} for p in self.problems],
                "seconds": round(self.seconds, 3)}


def check_index(root: str | os.PathLike, threads: int = 2) -> CheckReport:
    """Compare every listed file with its checksum (files without one are read whole), then the tables with each
    other. Raises `IndexProblem` only if the manifest itself cannot be read."""
    started = time.time()
    path = location(root)
    m = read_manifest(path)
    files = [f for t in TABLES for f in m.tables[t]]
    r = CheckReport(str(path), len(files), sum(f in m.checksums for f in files))
    r.problems = damage(path, files, m.checksums, hashes=True, threads=threads)
    bad = {p.file for p in r.problems}
    for rel in files:
        if rel in m.checksums or rel in bad:
            continue
        try:  # no checksum to compare with: every page must at least decode
            f = pq.ParquetFile(file_path(path, rel))
            for g in range(f.num_row_groups):
                f.read_row_group(g)
        except (OSError, pa.ArrowException) as e:
            r.problems.append(Damage(rel, f"unreadable ({e})"))
    if not r.problems:
        con = Snapshot(path).connect()
        for what, q in _CONSISTENCY:
            n = con.execute(q).fetchall()[0][0]
            if n:
                r.problems.append(Damage(what.split(":")[0], f"{what.split(': ', 1)[1]}: {n:,} rows"))
    r.seconds = time.time() - started
    return r
