"""The index's tables: their columns (`SCHEMAS`), the DuckDB views over them, and how each table's Parquet files are
laid out (dictionaries, compression, row groups, the whole-documents mark of bucket files)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dedup.embed import PARAPHRASE_SIGNALS, STRUCTURE_SIGNALS, WORD_SIGNALS

# Sort order of each table's files after `compact` (buckets: lookups by (band, bucket) read few row groups).
COMPACT_ORDER: dict[str, list[str]] = {
    "documents": ["doc_id"], "signatures": ["doc_id"], "buckets": ["band", "bucket", "doc_id"],
    "pairs": ["doc_a", "doc_b"], "clusters": ["cluster_id", "doc_id"],
    "cluster_events": ["batch", "kind", "cluster_id"], "rejected": ["batch", "file", "line", "doc_id"],
    "batches": ["batch"],
}

SCHEMAS: dict[str, pa.Schema] = {
    "documents": pa.schema([
        ("doc_id", pa.string()), ("title", pa.string()), ("source", pa.string()), ("url", pa.string()),
        ("published_at", pa.timestamp("us")), ("lang", pa.string()), ("words", pa.int32()),
        ("shingles", pa.int32()), ("text_hash", pa.uint64()), ("text", pa.string()),
        ("flags", pa.list_(pa.string())), ("batch", pa.int32()), ("file", pa.string()), ("line", pa.int64()),
    ]),
    "signatures": pa.schema([("doc_id", pa.string()), ("minhash", pa.list_(pa.uint32()))]),
    "buckets": pa.schema([("band", pa.int16()), ("bucket", pa.uint32()), ("doc_id", pa.string())]),
    "pairs": pa.schema([
        ("doc_a", pa.string()), ("doc_b", pa.string()), ("jaccard_est", pa.float32()),
        ("jaccard", pa.float32()), ("containment", pa.float32()), ("aligned", pa.float32()),
        ("score", pa.float32()), ("linked", pa.bool_()), ("batch", pa.int32()),
        # verifier v3 (null in pairs verified before): the signals of the rewrite model and the rule that decided
        ("ordered", pa.float32()), ("anchors", pa.float32()), ("figures", pa.float32()), ("loose", pa.float32()),
        ("rewrite", pa.float32()), ("rule", pa.string()),
        # verifier v4: the sentence-vector signals of its rewrite model (dedup.embed)
        ("vec_cover", pa.float32()), ("vec_cover_long", pa.float32()), ("vec_chain70", pa.float32()),
        ("vec_chain60", pa.float32()),
        # verifiers v5, v6: where the sentences' counterparts sit, and the shared rare words and names (dedup.embed)
        *((name, pa.float32()) for name in (*STRUCTURE_SIGNALS, *WORD_SIGNALS)),
        # verifier v7: the first trees' probability, and the paraphrase encoder's sentence signals its second trees
        # read (dedup.embed), for the pairs the second trees decide
        ("rewrite_first", pa.float32()), *((name, pa.float32()) for name in PARAPHRASE_SIGNALS),
        # verifiers v8 to v10: the character n-gram overlap of the pairs whose re-issue test decided which trees judge
        # them (v8's template check, v9's second trees) or whose excerpt test decided if the caps hold them (v10)
        ("char_containment", pa.float32()), ("char_jaccard", pa.float32()),
    ]),
    "clusters": pa.schema([
        ("doc_id", pa.string()), ("cluster_id", pa.int64()), ("size", pa.int32()),
        ("representative", pa.string()),
    ]),
    "cluster_events": pa.schema([
        ("batch", pa.int32()), ("at", pa.timestamp("us")), ("kind", pa.string()), ("cluster_id", pa.int64()),
        ("other_ids", pa.list_(pa.int64())), ("size", pa.int32()),
    ]),
    "rejected": pa.schema([
        ("batch", pa.int32()), ("file", pa.string()), ("line", pa.int64()), ("doc_id", pa.string()),
        ("field", pa.string()), ("reason", pa.string()), ("detail", pa.string()),
    ]),
    "batches": pa.schema([
        ("batch", pa.int32()), ("started_at", pa.timestamp("us")), ("finished_at", pa.timestamp("us")),
        ("inputs", pa.list_(pa.string())), ("read", pa.int64()), ("new", pa.int64()), ("replaced", pa.int64()),
        ("unchanged", pa.int64()), ("rejected", pa.int64()), ("pairs", pa.int64()), ("clusters", pa.int64()),
        ("seconds", pa.float64()),
    ]),
}
TABLES = tuple(SCHEMAS)


def sql_str(s: str) -> str:
    """`s` as a SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def view_statements(tables: dict[str, list[str]]) -> list[str]:
    """CREATE VIEW statements over the given files of each table (absolute, or relative to the index directory as
    in `views.sql`)."""
    out = []
    for name in TABLES:
        files = ", ".join(sql_str(f) for f in tables[name])
        # by name: files written before a column was added read it as null
        out.append(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{files}], union_by_name = true);")
    out.extend(DERIVED_VIEWS)
    return out


DERIVED_VIEWS = [
    # One row per cluster with two or more documents: its size, representative and time span.
    """CREATE OR REPLACE VIEW cluster_summary AS
SELECT c.cluster_id, any_value(c.size) AS size, any_value(c.representative) AS representative,
       min(d.published_at) AS first_published, max(d.published_at) AS last_published,
       count(DISTINCT d.source) AS sources, arg_min(d.title, d.doc_id) AS title
FROM clusters c JOIN documents d USING (doc_id)
WHERE c.size >= 2 GROUP BY c.cluster_id;""",
    # Documents with their cluster and the representative's title: "all copies of a story".
    """CREATE OR REPLACE VIEW copies AS
SELECT c.cluster_id, c.size, d.doc_id, d.title, d.source, d.url, d.published_at,
       d.doc_id = c.representative AS is_representative
FROM clusters c JOIN documents d USING (doc_id);""",
]


# The columns worth a Parquet dictionary where not all are: random bucket keys and MinHash values only pay for
# trying one (a bucket file of 20k documents: 0.60 s and 47 MB with, 0.24 s and 40 MB without).
_DICTIONARY_COLUMNS = {"buckets": ["band", "doc_id"], "signatures": ["doc_id"],
                       # not ids, urls and texts: unique, they only cost a dictionary attempt
                       "documents": [c for c in SCHEMAS["documents"].names if c not in ("doc_id", "url", "text")]}


def parquet_options(name: str) -> dict:
    """Parquet writer options of a table: dictionaries only where they pay off, and the texts compressed fast
    (see below: ingest compresses every text once, verification decompresses many). A bucket file is one row group
    (a compacted one, two): bucket rows are sorted by key, so every row group names nearly every document of the
    file, and reading 59 row groups' dictionaries of ids took 2/3 of the time to read a file's bucket keys. Its
    keys, sorted within each band, are delta-encoded and left uncompressed: 2.5 bytes a row in a file of 20k
    documents (4 plain, 3.2 with zstd), read 4× faster than zstd's plain 64-bit keys of format 1."""
    options = {"use_dictionary": _DICTIONARY_COLUMNS.get(name, True), "compression": "zstd", "write_statistics": True}
    if name == "buckets":
        options.update(dictionary_pagesize_limit=64 << 20, column_encoding={"bucket": "DELTA_BINARY_PACKED"},
                       compression={"band": "zstd", "bucket": "none", "doc_id": "zstd"})
    elif name == "documents":
        # zstd level 1: a 100k batch's texts compress in 1.1 s of CPU (2.3 s at level 3: ingest 12.0 -> 10.7 s in six
        # interleaved runs) and decompress faster (0.27 s against 0.36), for 19 % more bytes; no min/max of texts
        options.update(compression_level=1, write_statistics=[c for c in SCHEMAS[name].names if c != "text"])
    return options


def row_group_size(name: str) -> int:
    """Rows a row group: a bucket file is one (see `parquet_options`); documents hold ~3 KB of text a row, and a row
    group is what compaction buffers and what verification decompresses to read one text of it."""
    return {"buckets": 4 << 20, "documents": 32 * 1024}.get(name, 128 * 1024)


# Key-value metadata of a bucket file that holds every bucket row of each document it names (files written by
# ingest, and rewrites of such files): the link stage can then count a document's shared bands file by file.
WHOLE_DOCUMENTS = b"dedup.whole_documents"


def whole_documents(path: str | Path, filesystem: object = None) -> bool:
    """Does this bucket file hold all bucket rows of each of its documents (see WHOLE_DOCUMENTS)? (`filesystem`:
    the pyarrow filesystem `path` is on, else the path's own)"""
    meta = pq.read_schema(path, filesystem=filesystem).metadata or {}
    return meta.get(WHOLE_DOCUMENTS) == b"1"
