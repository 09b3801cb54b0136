"""The Spark engine: the batch's heavy stages on a Spark cluster (or `local[N]`), the same index as the local one.

    driver: read → admit (first row wins, versions) ─┐                       ┌→ stage documents files
    executors:                                       └→ sketch + band ──────┴→ stage buckets files (mapInArrow,
                                                                               the numba kernel)
    executors: candidates: the batch's and the index's bucket rows shuffled by (band, bucket), meetings found
               and counted per pair by link.py's kernels (mapInArrow), pairs sharing ≥ min_bands bands
               → texts joined → verify (mapInArrow, the same verifier)
    executors: components of linked pairs (large-star/small-star to convergence) → average-linkage split of
               each component of 3+ documents (applyInArrow per component)
    driver:    stable cluster ids and events (`dedup.batch.recluster`), commit (the same Writer, atomic manifest)

Admitting stays on the driver so that rejections, their order and the identity rules are the local engine's
(`LocalEngine` runs them; this class only replaces where sketching, linking, verifying and clustering run). Input
paths given as URIs (hdfs://, s3a://, file://) are listed by Hadoop's FileSystem on the driver and read by the
executors (`binaryFile`, a file per task, parsed by dedup's own readers into the same records and rejections);
their rows come back to the driver in input order. The executors write the bucket files (their rows never pass
through the driver), the driver the others; the writer lists them all and commits. Executors read and write the
index's Parquet files, so on a cluster the index is either a directory on a POSIX filesystem every node sees at the
same path or on S3 (`dedup.store.remote`): Spark then reads its files through the URI's scheme, and dedup's own
clients take S3A's settings from the cluster's configuration (`SparkEngine.s3_settings`).

On a cluster, spark-submit runs this file (`main`): `spark-submit --master yarn .../dedup/engines/spark.py PATHS
--index DIR` takes the arguments of `dedup ingest`; dedup must be installed on the driver and every executor.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.bands import bucket_rows
from dedup.batch.admit import Admission
from dedup.batch.plan import LinkPlan
from dedup.batch.score import score_group
from dedup.batch.stage import BucketRun, Sketched, admitted_sketches, matchable
from dedup.cluster import _average_linkage
from dedup.engines.local import LocalEngine, Linked, Progress
from dedup.errors import InputError
from dedup.link import _count, _matches, _self_merge
from dedup.params import Params
from dedup.progress import InputMeter
from dedup.readers import (FieldMap, Record, Rejection, RemoteFile, read_file, supported, unsupported_file,
                           unsupported_type)
from dedup.sketch import Sketches, sketch_index
from dedup.store import SCHEMAS, Writer
from dedup.store.files import write_table
from dedup.store.remote import S3A, ObjectStore

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SKETCH_SCHEMA = "i int, words int, shingles int, signature array<bigint>, file string"
FILE_DOCS = 10_000  # documents of a chunk one sketch task takes, and so at most one bucket file holds
SPLIT_SCHEMA = "node bigint, root bigint, sub bigint"
MEET_SCHEMA = "a bigint, b bigint, whole boolean"  # a meeting: two documents' keys in one bucket
COUNT_SCHEMA = "a bigint, b bigint, bands smallint"
READ_SCHEMA = "path string, seq int, data binary"  # a file's rows, pickled a block at a time (seq -1: its end)
_READ_ARROW = pa.schema([("path", pa.string()), ("seq", pa.int32()), ("data", pa.binary())])
READ_BLOCK = 2048
Batches = Iterator[pa.RecordBatch]


def spark_session(master: str | None) -> tuple[SparkSession, bool]:
    """The active SparkSession (a test's, spark-submit's) or a new one on `master` (else Spark's own
    configuration: spark-defaults.conf, SPARK_MASTER; local[*] when there is none); and whether it is new (the
    engine stops only a session it started)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError("--engine spark needs pyspark: pip install 'dedup[spark]'") from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    # executors started by a local master run this interpreter (with dedup and its dependencies), not `python3`
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # no console progress bars: they would break the lines of a nightly job's log
    builder = SparkSession.builder.appName("dedup ingest").config("spark.ui.showConsoleProgress", "false")
    if master:
        builder = builder.master(master)
    return builder.getOrCreate(), True


@dataclass(kw_only=True)
class _SparkSketched(Sketched):
    """A chunk sketched on the executors, with the bucket files they staged (already adopted by the writer)."""

    runs: list[BucketRun]


def _sketch_task(p: Params, signatures: bool, root: Path | ObjectStore, generation: int
                 ) -> Callable[[Batches], Batches]:
    def run(batches: Batches) -> Batches:
        for b in batches:
            yield _sketch_batch(b, p, signatures, root, generation)
    return run


def _lists(lengths: np.ndarray, values: np.ndarray, type_: pa.DataType) -> pa.ListArray:
    offsets = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type_))


def _sketch_batch(b: pa.RecordBatch, p: Params, signatures: bool, root: Path | ObjectStore, generation: int
                  ) -> pa.RecordBatch:
    """On an executor: sketch a batch of texts (i, doc_id, text, matchable) as `stage.sketch_admitted` does and
    stage the bucket file of its matchable documents as `stage.bucket_run` makes it (the driver only lists it: its
    rows, ~250 a document, never pass through the driver). `file`: that file (relative to the index), null for a
    document without bucket rows."""
    sk = sketch_index(pa.chunked_array([b.column("text")]), p)
    n = b.num_rows
    banded = (sk.shingles > 0) & (sk.words >= p.min_words) & b.column("matchable").to_numpy(zero_copy_only=False)
    linkable = np.flatnonzero(banded)
    files = pa.nulls(n, pa.string())
    if len(linkable):
        rows = bucket_rows(b.column("doc_id").take(pa.array(linkable)), sk.signatures[linkable],
                           sk.lead[linkable] if len(sk.lead) else sk.lead, sk.anchors[linkable], p)
        rel = write_table(root, "buckets", rows, generation, whole=True)
        files = pc.if_else(pa.array(banded), rel, files)
    sig = sk.signatures if signatures else np.empty((n, 0), np.uint32)
    return pa.RecordBatch.from_pydict({
        "i": b.column("i"), "words": pa.array(sk.words), "shingles": pa.array(sk.shingles),
        "signature": _lists(np.full(n, sig.shape[1]), sig.ravel().astype(np.int64), pa.int64()),
        "file": files,
    })


def _read_task(names: dict[str, str], fields: FieldMap, max_chars: int) -> Callable[[Batches], Batches]:
    def run(batches: Batches) -> Batches:
        for b in batches:
            for path, content in zip(b.column("path").to_pylist(), b.column("content").to_pylist()):
                rows = _file_rows(names.get(path, path), path, content, fields, max_chars)
                for seq, block in enumerate(rows):
                    yield pa.RecordBatch.from_pydict({"path": [path], "seq": [seq], "data": [block]}, _READ_ARROW)
                yield pa.RecordBatch.from_pydict({"path": [path], "seq": [-1], "data": [b""]}, _READ_ARROW)
    return run


def _file_rows(name: str, path: str, content: bytes, fields: FieldMap, max_chars: int) -> Iterator[bytes]:
    """On an executor: a file's records and rejections, pickled in blocks, as `read_file` reads it locally (from a
    copy under the same file name: the name decides the format and a .txt file's id) but named `name`."""
    with tempfile.TemporaryDirectory(prefix="dedup-read-") as tmp:
        local = Path(tmp) / path.rsplit("/", 1)[-1]
        local.write_bytes(content)
        block: list[Record | Rejection] = []
        for r in read_file(local, fields, max_chars):
            if isinstance(r, Record):
                if r.column is not None:  # a row of the Parquet file's Arrow column: its text travels alone
                    r.string, r.column = r.text, None
                r.file = name
            else:
                r = dataclasses.replace(r, file=name, detail=r.detail.replace(str(local), name))
            block.append(r)
            if len(block) == READ_BLOCK:
                yield pickle.dumps(block, protocol=5)
                block = []
        if block:
            yield pickle.dumps(block, protocol=5)


def _verify_task(p: Params, batch: int) -> Callable[[Batches], Batches]:
    schema = SCHEMAS["pairs"]

    def run(batches: Batches) -> Batches:
        for b in batches:
            t = pa.Table.from_batches([b])
            ids = pa.concat_arrays([t["doc_a"].combine_chunks(), t["doc_b"].combine_chunks()])
            texts = pa.concat_arrays([t["text_a"].combine_chunks(), t["text_b"].combine_chunks()])
            unique = pc.unique(ids)
            docs = pa.table({"doc_id": unique, "text": texts.take(pc.index_in(unique, value_set=ids))})
            pairs = score_group(t.select(["doc_a", "doc_b", "bands"]), docs, p, batch)
            yield from pairs.select(schema.names).cast(schema).to_batches()
    return run


def _split_task(threshold: float) -> Callable[[pa.Table], pa.Table]:
    def run(t: pa.Table) -> pa.Table:
        """On an executor: the pairs of one component; its average-linkage clusters unless it stays whole
        (fewer than 3 documents, or every two of them scored at least `threshold`), as `cluster.partition`."""
        a, b = t["a"].to_numpy(), t["b"].to_numpy()
        score = t["score"].to_numpy()
        nodes = np.unique(np.concatenate([a, b]))
        k = len(nodes)
        close = score >= threshold
        close_pairs = len(np.unique(np.stack([np.minimum(a, b)[close], np.maximum(a, b)[close]], 1), axis=0))
        if k < 3 or close_pairs == k * (k - 1) // 2:
            return pa.table({"node": pa.array([], pa.int64()), "root": pa.array([], pa.int64()),
                             "sub": pa.array([], pa.int64())})
        sub = _average_linkage(k, np.searchsorted(nodes, a), np.searchsorted(nodes, b), score, threshold)
        return pa.table({"node": nodes, "root": np.full(k, t["root"][0].as_py()), "sub": sub})
    return run


def _large_star(e: DataFrame) -> DataFrame:
    """Each node's larger neighbours move to the smallest of its neighbourhood (edges as (u > v))."""
    from pyspark.sql import functions as F

    both = e.unionByName(e.select(F.col("v").alias("u"), F.col("u").alias("v")))
    low = both.groupBy("u").agg(F.min("v").alias("m"))
    return (both.join(low, "u").where(F.col("v") > F.col("u"))
            .select(F.col("v").alias("u"), F.least("m", "u").alias("v")).distinct())


def _small_star(e: DataFrame) -> DataFrame:
    """Each node and its smaller neighbours move to the smallest of them (edges as (u > v))."""
    from pyspark.sql import functions as F

    low = e.groupBy("u").agg(F.min("v").alias("m"))
    moved = e.join(low, "u").where(F.col("v") != F.col("m")).select(F.col("v").alias("u"), F.col("m").alias("v"))
    return moved.unionByName(low.select("u", F.col("m").alias("v"))).distinct()


def star_components(links: DataFrame) -> DataFrame:
    """(node, root) for every node of an edge (a, b): root is the smallest node of its connected component.
    Large-star and small-star rounds (Kiveris et al., "Connected Components in MapReduce and Beyond", 2014) until
    a round changes no edge; each round's edges are checkpointed, so the plan does not grow with the rounds."""
    from pyspark.sql import functions as F

    e = (links.select(F.greatest("a", "b").alias("u"), F.least("a", "b").alias("v"))
         .where(F.col("u") != F.col("v")).distinct().localCheckpoint())
    while True:
        nxt = _small_star(_large_star(e)).localCheckpoint()
        same = nxt.exceptAll(e).isEmpty() and e.exceptAll(nxt).isEmpty()
        e = nxt
        if same:
            break
    roots = e.select(F.col("v").alias("node"), F.col("v").alias("root")).distinct()
    return e.select(F.col("u").alias("node"), F.col("v").alias("root")).unionByName(roots)


class SparkEngine(LocalEngine):
    """Ingest with the sketch, link, verify and cluster stages on Spark (see the module's docstring)."""

    def __init__(self, master: str | None = None) -> None:
        self.spark, self.owned = spark_session(master)
        super().__init__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if self.owned:
            self.spark.stop()

    def abort(self) -> None:
        self.spark.sparkContext.cancelAllJobs()  # the worker thread may be waiting for a job
        super().abort()

    def check_index(self, index: str) -> None:
        """Refuse, before anything runs, an index URI that Spark's Hadoop filesystems cannot read (which it would
        only find at the candidate join): `s3://` outside EMR, S3A without its jars."""
        from py4j.protocol import Py4JJavaError

        jvm = self.spark.sparkContext._jvm
        try:
            jvm.org.apache.hadoop.fs.Path(index).getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration())
        except Py4JJavaError as e:
            reason = str(e.java_exception.toString()).split("\n", 1)[0]
            raise InputError(f"--index {index}: Spark cannot read it ({reason}); give the URI in a scheme the "
                             "cluster's Hadoop reads (s3a:// with hadoop-aws; s3:// on EMR)") from None

    def s3_settings(self, index: str) -> tuple[tuple[str, str], ...]:
        """The cluster's S3A settings for an `s3a://` index's bucket (`dedup.store.remote.S3A`; a bucket's own
        `fs.s3a.bucket.<bucket>.*` first): dedup's own S3 clients, on the driver and the executors, then use what
        Spark's S3A uses. None set (or another scheme): the environment's, as for any AWS tool."""
        if not index.lower().startswith("s3a://"):
            return ()
        conf = self.spark.sparkContext._jsc.hadoopConfiguration()
        bucket = index.split("://", 1)[1].split("/", 1)[0]
        found = ((name, conf.get(f"fs.s3a.bucket.{bucket}.{key}") or conf.get(f"fs.s3a.{key}"))
                 for key, name in S3A.items())
        return tuple((name, str(value)) for name, value in found if value)

    def list_uris(self, files: list[Path | str | RemoteFile], skipped: list[Rejection]) -> None:
        """Replace each URI of `files` by the files below it, listed by Hadoop's FileSystem as `expand_paths`
        lists a local directory (recursively, sorted, hidden names skipped, unsupported files in `skipped`)."""
        jvm = self.spark.sparkContext._jvm
        conf = self.spark.sparkContext._jsc.hadoopConfiguration()
        for k in reversed(range(len(files))):
            uri = files[k]
            if not isinstance(uri, str):
                continue
            path = jvm.org.apache.hadoop.fs.Path(uri)
            fs = path.getFileSystem(conf)
            if not fs.exists(path):
                raise InputError(f"{uri}: no such file or directory")
            status = fs.getFileStatus(path)
            if status.isFile():
                if not supported(uri):
                    raise unsupported_type(uri)
                files[k:k + 1] = [RemoteFile(uri, status.getPath().toString(), status.getLen())]
                continue
            root = status.getPath().toString().rstrip("/") + "/"
            found = []
            listing = fs.listFiles(path, True)
            while listing.hasNext():
                st = listing.next()
                full = st.getPath().toString()
                rel = full[len(root):] if full.startswith(root) else full.rsplit("/", 1)[-1]
                if not any(part.startswith(".") for part in rel.split("/")):
                    found.append((tuple(rel.split("/")), full, st.getLen()))
            listed = []
            for rel, full, size in sorted(found):
                name = uri.rstrip("/") + "/" + "/".join(rel)
                if supported(name):
                    listed.append(RemoteFile(name, full, size))
                else:
                    skipped.append(unsupported_file(name))
            files[k:k + 1] = listed

    def read_files(self, files: list[Path | RemoteFile], fields: FieldMap, max_chars: int, meter: InputMeter
                   ) -> Iterator[Record | Rejection]:
        """Local files as the local engine reads them; runs of listed URIs on the executors, as many files at once
        as Spark has cores (the driver holds the rows of those files at a time)."""
        at = 0
        per_job = max(1, self.spark.sparkContext.defaultParallelism)
        while at < len(files):
            meter.start(at)
            end = at
            while end < len(files) and isinstance(files[end], RemoteFile) and end - at < per_job:
                end += 1
            if end == at:
                yield from read_file(files[at], fields, max_chars)  # type: ignore[arg-type]
                at += 1
            else:
                yield from self._read_remote(files[at:end], fields, max_chars)  # type: ignore[arg-type]
                at = end
        meter.start(len(files))

    def _read_remote(self, group: list[RemoteFile], fields: FieldMap, max_chars: int
                     ) -> Iterator[Record | Rejection]:
        """The rows of `group`, file after file. A file Spark cannot read is an `unreadable_file` rejection with
        Spark's reason, as a local file that cannot be opened is (a failed job is retried a file at a time)."""
        self._stage("read")
        names = {f.path: f.name for f in group if f.size}  # Spark skips empty files: they are read here
        try:
            got = (self.spark.read.format("binaryFile").load(list(names))
                   .mapInArrow(_read_task(names, fields, max_chars), READ_SCHEMA).toArrow() if names else
                   pa.table({"path": pa.array([], pa.string()), "seq": pa.array([], pa.int32()),
                             "data": pa.array([], pa.binary())}))
        except Exception as e:  # noqa: BLE001 - Py4J's or Spark's error for an unreadable file: named below
            if len(group) > 1:
                for f in group:
                    yield from self._read_remote([f], fields, max_chars)
                return
            reason = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            yield Rejection(group[0].name, None, None, None, "unreadable_file", f"Spark cannot read it: {reason}")
            return
        got = got.sort_by([("path", "ascending"), ("seq", "ascending")])
        paths, seqs, data = (got[c].to_pylist() for c in ("path", "seq", "data"))
        ends = {path for path, seq in zip(paths, seqs) if seq < 0}
        blocks: dict[str, list[bytes]] = {}
        for path, seq, block in zip(paths, seqs, data):
            if seq >= 0:
                blocks.setdefault(path, []).append(block)
        for f in group:
            if not f.size:
                blocks[f.path] = list(_file_rows(f.name, f.path, b"", fields, max_chars))
                ends.add(f.path)
            for block in blocks.get(f.path, []):
                yield from pickle.loads(block)
            if f.path not in ends:  # nothing may be lost silently, should Spark skip a file it was given
                yield Rejection(f.name, None, None, None, "unreadable_file", "Spark did not read it")

    def _stage(self, name: str) -> None:
        """Name this thread's next Spark jobs after the stage (the UI, event logs, scripts/benchmark_spark.py)."""
        self.spark.sparkContext.setJobDescription(f"dedup {name}")

    def sketch(self, admission: Admission, w: Writer, signatures: bool) -> Sketched | None:
        """A chunk's texts go to the executors, which stage its bucket files (a task's documents each); their
        sketches (signatures only if kept) and the files' names come back, and the writer lists the files. A
        task whose file was written but whose job failed leaves it unlisted: the next writer removes it."""
        if not admission.records:
            return None
        n = len(admission.records)
        texts = pa.table({"i": pa.array(np.arange(n, dtype=np.int32)),
                          "doc_id": pa.array([r.doc_id for r in admission.records], pa.string()),
                          "text": admission.texts, "matchable": pa.array(matchable(admission.records))})
        self._stage("sketch")
        task = _sketch_task(w.params, signatures, w.root, w.manifest.generation + 1)
        got = (self.spark.createDataFrame(texts).coalesce(-(-n // FILE_DOCS))  # a big cluster: no tiny files
               .mapInArrow(task, SKETCH_SCHEMA).toArrow())
        got = got.take(pc.sort_indices(got["i"]))
        sigs = got["signature"].combine_chunks().flatten().to_numpy().astype(np.uint32)
        sketches = Sketches(sigs.reshape(n, -1) if signatures else np.empty((n, 0), np.uint32),
                            np.empty((0, 0), np.uint32), np.empty((n, 0), np.uint32),
                            got["words"].to_numpy(), got["shingles"].to_numpy())
        sk = admitted_sketches(admission, sketches)
        counts = pc.value_counts(got["file"].drop_null()).to_pylist()  # files in the order of their documents
        w.adopt("buckets", [c["values"] for c in counts])
        empty = np.empty(0, np.int32)
        runs = [BucketRun(SCHEMAS["buckets"].empty_table(), empty, empty, empty, c["counts"],
                          path=w.path(c["values"])) for c in counts]
        return _SparkSketched(**{f.name: getattr(sk, f.name) for f in fields(Sketched)}, runs=runs)

    @staticmethod
    def stage_buckets(w: Writer, sk: Sketched, first: int, dates: np.ndarray | None) -> list[BucketRun]:
        """The executors staged them (an index with a time window is refused before)."""
        assert isinstance(sk, _SparkSketched) and dates is None
        return sk.runs

    def link_and_verify(self, plan: LinkPlan, w: Writer, progress: Progress | None) -> Linked:
        """Candidates by a shuffle join on (band, bucket) of the staged files of the batch with every other
        bucket file of the index, verified on the executors; the pairs come back to be staged."""
        import time

        plan.held = []  # the local engine links its last part from memory; here every part is read as staged
        new = [f for part in plan.parts for f in part.files]
        old = [f for f in w.current_files("buckets") if f not in set(new)]
        documents = w.hadoop_paths(w.current_files("documents"))
        p, out = w.params, Linked()
        t = time.perf_counter()
        self._stage("link")
        cands = candidates(self.spark, w.hadoop_paths(new), w.hadoop_paths(old), documents, p).persist()
        out.candidates = cands.count()
        out.link_seconds = time.perf_counter() - t
        if progress:
            progress("candidates", out.candidates, None)
        t = time.perf_counter()
        if out.candidates:
            self._stage("verify")
            pairs = verified(self.spark, cands, documents, p, w.manifest.next_batch).toArrow()
            out.pairs, out.linked = pairs.num_rows, int(pc.sum(pairs["linked"]).as_py() or 0)
            if pairs.num_rows:
                w.stage("pairs", pairs, sort_by=["doc_a", "doc_b"])
        cands.unpersist()
        out.verify_seconds = time.perf_counter() - t
        return out

    def partition(self, n: int, ia: np.ndarray, ib: np.ndarray, score: np.ndarray, link_threshold: float,
                  cluster_threshold: float) -> np.ndarray:
        """`dedup.cluster.partition` with the components and their splits computed on Spark: the same labels
        (components numbered by their oldest document, then each split component's clusters after them)."""
        from pyspark.sql import functions as F

        labels = np.arange(n, dtype=np.int64)
        if not len(ia):
            return labels
        # which pairs link is decided here, as numpy decides it in `partition`: a float32 score against the
        # threshold as float32 (Spark would compare in float64, and 0.7 as float32 is below 0.7)
        edges = self.spark.createDataFrame(pa.table({"a": ia.astype(np.int64), "b": ib.astype(np.int64),
                                                     "score": score, "linked": score >= link_threshold}))
        self._stage("components")
        comp = star_components(edges.where("linked")).localCheckpoint()
        found = comp.toArrow()
        labels[found["node"].to_numpy()] = found["root"].to_numpy()
        labels = np.unique(labels, return_inverse=True)[1].astype(np.int64)  # numbered as scipy numbers them
        inside = (edges.join(comp.select(F.col("node").alias("a"), "root"), "a")
                  .join(comp.select(F.col("node").alias("b"), F.col("root").alias("root_b")), "b")
                  .where(F.col("root") == F.col("root_b")).select("a", "b", "score", "root"))
        self._stage("split")
        split = inside.groupBy("root").applyInArrow(_split_task(cluster_threshold), SPLIT_SCHEMA).toArrow()
        if split.num_rows:
            node, root, sub = (split[c].to_numpy() for c in ("node", "root", "sub"))
            order = np.lexsort((node, labels[root]))
            node, root, sub = node[order], root[order], sub[order]
            starts = np.flatnonzero(np.r_[True, root[1:] != root[:-1]])
            next_label = labels.max() + 1
            for lo, hi in zip(starts, np.r_[starts[1:], len(root)]):
                labels[node[lo:hi]] = next_label + sub[lo:hi]
                next_label += sub[lo:hi].max() + 1
        return labels


def doc_keys(spark: SparkSession, documents: list[str]) -> tuple[DataFrame, int]:
    """(doc_id, h) of the documents files, h a 64-bit hash of the id, and the hash's salt: the join shuffles and
    counts two longs a meeting instead of two strings. A salt whose hashes collide is replaced by the next, so
    every id keeps its own key (at 1M ids a collision has a chance of ~3e-8)."""
    from pyspark.sql import functions as F

    ids = spark.read.parquet(*documents).select("doc_id").distinct().localCheckpoint()
    salt = 0
    while True:
        keyed = ids.select("doc_id", F.xxhash64("doc_id", F.lit(salt)).alias("h"))
        if keyed.groupBy("h").count().where("count > 1").isEmpty():
            return keyed, salt
        salt += 1


def _gathered(batches: Batches) -> pa.Table | None:
    """A task's batches as one table; None if it has no rows (Spark may hand a task no batch at all)."""
    got = [b for b in batches if b.num_rows]
    return pa.Table.from_batches(got) if got else None


def _meet_task(p: Params) -> Callable[[Batches], Batches]:
    def run(batches: Batches) -> Batches:
        """On an executor: the meetings of one shuffle partition's bucket rows (band, bucket, h, fresh), every
        key's rows together: the batch's rows with each other and with the older ones, found by the local
        engine's kernels (`link._self_merge`, `link._merge`) over task-local document numbers. One row a meeting:
        (a < b, whole), the documents' keys and whether the band is a whole-text band."""
        t = _gathered(batches)
        if t is None:
            return
        keys, docs = np.unique(t["h"].to_numpy(), return_inverse=True)
        order = np.lexsort((t["bucket"].to_numpy(), t["band"].to_numpy()))
        band = t["band"].to_numpy()[order]
        bucket = t["bucket"].to_numpy()[order].astype(np.uint32)
        docs = docs.astype(np.int32)[order]
        fresh = t["fresh"].to_numpy(zero_copy_only=False)[order]
        offsets = np.searchsorted(band[fresh], np.arange(p.all_bands + 1)).astype(np.int64)
        part = (offsets, bucket[fresh], docs[fresh])
        own = _self_merge(*part, p.bands)
        other = _matches(*part, band[~fresh], bucket[~fresh], docs[~fresh], p.bands)
        a, b = np.concatenate([own[0], other[0]]), np.concatenate([own[1], other[1]])
        x, y = keys[a], keys[b >> 1]
        yield pa.RecordBatch.from_pydict({"a": np.minimum(x, y), "b": np.maximum(x, y), "whole": (b & 1) == 0})
    return run


def _count_task(min_bands: int) -> Callable[[Batches], Batches]:
    def run(batches: Batches) -> Batches:
        """On an executor: the pairs among one partition's meetings (all of a pair's meetings are in one
        partition) that met in at least `min_bands` bands, with how many were whole-text bands: `link._count`
        over task-local numbers (ordered as the keys, so each pair keeps its orientation)."""
        t = _gathered(batches)
        if t is None:
            return
        n = t.num_rows
        keys, ends = np.unique(np.concatenate([t["a"].to_numpy(), t["b"].to_numpy()]), return_inverse=True)
        ends = ends.astype(np.int32)
        lead = ~t["whole"].to_numpy(zero_copy_only=False)
        a, b, whole = _count(ends[:n], 2 * ends[n:] + lead.astype(np.int32), min_bands)
        yield pa.RecordBatch.from_pydict({"a": keys[a], "b": keys[b], "bands": whole})
    return run


def candidates(spark: SparkSession, new: list[str], old: list[str], documents: list[str], p: Params
               ) -> DataFrame:
    """(doc_a < doc_b, bands) of the pairs with a document of the batch (bucket files `new`) sharing at least
    `min_bands` bands, `bands` counting the whole-text ones: `dedup.link.candidate_pairs` on Spark. Bucket rows
    are shuffled by (band, bucket), each partition's meetings found by link.py's kernels and shuffled by pair as
    two 64-bit document keys (`doc_keys`), each pair's meetings counted by link.py's kernel; the ids are joined
    back to the few pairs kept. Spark's own join and aggregation over string ids, here before, spent most of a
    1M-document run on the meetings (two documents in one bucket, ~1G at 1M: docs/benchmarks.md)."""
    from pyspark.sql import functions as F

    ids, salt = doc_keys(spark, documents)

    def rows(files: list[str], fresh: bool) -> DataFrame:
        return spark.read.parquet(*files).select("band", "bucket", F.xxhash64("doc_id", F.lit(salt)).alias("h"),
                                                 F.lit(fresh).alias("fresh"))

    keyed = rows(new, True).unionByName(rows(old, False)) if old else rows(new, True)
    pairs = (keyed.repartition("band", "bucket").mapInArrow(_meet_task(p), MEET_SCHEMA)
             .repartition("a").mapInArrow(_count_task(p.min_bands), COUNT_SCHEMA)
             .localCheckpoint())  # a job of its own, so that Spark sizes the count's partitions to its data, not
    # to the ids join's 200 (each a Python task: 145 s of the 100k run's tasks before, 29 s after)
    named = (pairs.join(ids.select(F.col("h").alias("a"), F.col("doc_id").alias("x")), "a")
             .join(ids.select(F.col("h").alias("b"), F.col("doc_id").alias("y")), "b"))
    return named.select(F.least("x", "y").alias("doc_a"), F.greatest("x", "y").alias("doc_b"), "bands")


def verified(spark: SparkSession, cands: DataFrame, documents: list[str], p: Params, batch: int) -> DataFrame:
    """The `pairs` rows of the candidates, scored on the executors with both texts joined to each pair."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    texts = spark.read.parquet(*documents).select("doc_id", "text")
    both = (cands.join(texts.select(F.col("doc_id").alias("doc_a"), F.col("text").alias("text_a")), "doc_a")
            .join(texts.select(F.col("doc_id").alias("doc_b"), F.col("text").alias("text_b")), "doc_b"))
    return both.mapInArrow(_verify_task(p, batch), from_arrow_schema(SCHEMAS["pairs"]))


def main() -> None:
    """spark-submit's entry (also `python -m dedup.engines.spark`): `dedup ingest ARGS --engine spark`, in the
    session spark-submit configured (master, executors, memory)."""
    from dedup.cli import run

    sys.argv = [sys.argv[0], "ingest", *sys.argv[1:], "--engine", "spark"]
    run()


if __name__ == "__main__":
    main()
