"""`dedup export`: the corpus with one representative per story (or every document with its story), written as
JSONL, Parquet, CSV or TSV for dataset builders.

The rows stream from DuckDB in Arrow batches straight into the output file, so memory stays bounded whatever the
index size (DuckDB's join is held to `MEMORY_LIMIT` and spills to a temporary directory beyond it). The file is
written under a temporary name beside the output and renamed when complete: a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dedup.readers import InputError
from dedup.store import Snapshot

FORMATS = (".jsonl", ".parquet", ".csv", ".tsv")
MEMORY_LIMIT = "512MB"
BATCH_ROWS = 8192
COLUMNS = ["doc_id", "cluster_id", "cluster_size", "is_representative", "title", "source", "url", "published_at",
           "lang"]


@dataclass
class ExportSummary:
    """What `export` wrote: `rows` documents of `stories` stories (clusters, singletons included)."""

    output: str
    rows: int
    stories: int

    def to_json(self) -> dict:
        return {"output": self.output, "rows": self.rows, "stories": self.stories}


def export(index: str | os.PathLike, output: str | os.PathLike, representatives: bool = True,
           with_text: bool = False, batch_rows: int = BATCH_ROWS) -> ExportSummary:
    """Write the documents of `index` to `output` (.jsonl, .parquet, .csv or .tsv, by its name): with
    `representatives`, one per story — the cluster's representative (earliest published, then smallest id), a
    singleton being its own story — else every document. Each row carries its story's `cluster_id` and
    `cluster_size`; `with_text` adds the text."""
    out = Path(output)
    ext = out.suffix.lower()
    if ext not in FORMATS:
        raise InputError(f"{out}: unknown output format (use {', '.join(FORMATS)})")
    snapshot = Snapshot(index)
    with tempfile.TemporaryDirectory(prefix="dedup-export-") as spill:
        con = snapshot.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": spill})
        cols = ", ".join(["d.doc_id", "c.cluster_id", "c.size AS cluster_size",
                          "d.doc_id = c.representative AS is_representative", "d.title", "d.source", "d.url",
                          "d.published_at", "d.lang"] + (["d.text"] if with_text else []))
        where = "WHERE d.doc_id = c.representative" if representatives else ""
        reader = con.sql(f"SELECT {cols} FROM documents d JOIN clusters c USING (doc_id) {where}") \
            .to_arrow_reader(batch_rows)
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        try:
            rows = _write(reader, tmp, ext)
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        stories = con.sql("SELECT count(DISTINCT cluster_id) FROM clusters").fetchall()[0][0]
        con.close()
    return ExportSummary(str(out), rows, stories)


def _write(reader: pa.RecordBatchReader, path: Path, ext: str) -> int:
    """Stream every batch of `reader` into `path`; returns the number of rows."""
    rows = 0
    if ext == ".parquet":
        with pq.ParquetWriter(path, reader.schema, compression="zstd") as w:
            for batch in reader:
                w.write_batch(batch)
                rows += batch.num_rows
    elif ext in (".csv", ".tsv"):
        options = pacsv.WriteOptions(delimiter="," if ext == ".csv" else "\t")
        with pacsv.CSVWriter(path, reader.schema, write_options=options) as w:
            for batch in reader:
                w.write_batch(batch)
                rows += batch.num_rows
    else:
        with open(path, "w", encoding="utf-8") as f:
            for batch in reader:
                for row in batch.to_pylist():
                    f.write(json.dumps(row, ensure_ascii=False, default=_iso) + "\n")
                rows += batch.num_rows
    return rows


def _iso(v: object) -> object:
    return v.isoformat() if hasattr(v, "isoformat") else str(v)
