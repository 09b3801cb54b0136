"""Stage 9: queries over a committed index — SQL, similar documents, cluster listings, statistics.

Everything reads one committed snapshot, so queries never see a half-written batch and never take the lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Self, TypeVar

import duckdb
import numpy as np
import pyarrow as pa

from dedup.bands import bucket_rows
from dedup.errors import DocumentNotFound
from dedup.runtime import prepare_process
from dedup.sketch import sketch_index
from dedup.store import SUPERSEDED, TABLES, Snapshot, check_files, fetch
from dedup.store.files import file_path
from dedup.verify import verify_pairs

T = TypeVar("T")
_SCORES = ["score", "aligned", "jaccard", "containment", "jaccard_est", "linked"]


class SQLRefused(Exception):
    """A statement that a confined index connection does not run (anything but a query)."""


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Refuse every statement of `query` that is not a query (SELECT, WITH, FROM, DESCRIBE, ...): a connection may
    read only the index's files, but DuckDB would let it *write* those (COPY TO), create or drop views, attach
    in-memory databases. Raises `SQLRefused`, or duckdb.ParserException for text that is not SQL."""
    for st in con.extract_statements(query):
        if st.type != duckdb.StatementType.SELECT:
            text = st.query.strip().rstrip(";")
            raise SQLRefused(f"only queries (SELECT, WITH, FROM, DESCRIBE, SUMMARIZE) run over an index; "
                             f"refused {st.type.name}: {text[:80]!r} (the index is read-only here; to export results "
                             "use `--output FILE`, or `dedup sql --allow-writes` / Index(..., allow_writes=True) "
                             "for a plain DuckDB session)")


def interruptible(con: duckdb.DuckDBPyConnection, run: Callable[[], T]) -> T:
    """`run()`, a query on `con`, stopped by Ctrl-C. While DuckDB runs a query the main thread waits in C++ and
    Python never gets to raise KeyboardInterrupt: the query went on to its end (minutes) and the interrupt was
    lost. So the query runs in a thread while the main thread waits where a signal reaches it, interrupts the
    query (`con.interrupt()`), waits for it to stop and raises KeyboardInterrupt. In other threads: `run()`."""
    if threading.current_thread() is not threading.main_thread():
        return run()
    done: Future[T] = Future()

    def work() -> None:
        try:
            done.set_result(run())
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread as it is
            done.set_exception(e)

    threading.Thread(target=work, name="dedup-query", daemon=True).start()
    try:
        return done.result()
    except KeyboardInterrupt:
        con.interrupt()
        done.exception()  # the query stops at its next check (milliseconds); its error is not the news
        raise


class SnapshotReader:
    """Read access to an index directory (the last committed state at the time of opening), following later
    commits where a read needs it (`refresh`, `_reading`).

    Its SQL is confined by default: it reads the index's current files and nothing else, runs only queries and
    cannot change settings (`dedup.store.confine`). `allow_writes=True` gives a plain DuckDB session (COPY TO
    anywhere, ATTACH, extensions, ...), which can also overwrite the index's own files."""

    def __init__(self, path: str | os.PathLike, allow_writes: bool = False):
        prepare_process()  # before `similar` or `explain` run a kernel
        self.path = path
        self.confined = not allow_writes
        self.refresh()

    def refresh(self) -> bool:
        """Move to the last committed state; True if it is a newer one. A long-lived Index needs it after a
        commit that stopped using files (compaction, replacements): those are deleted by a later writer after the
        grace period (`dedup.store.grace_seconds`). A read that fails because they are gone refreshes by itself
        and runs again once."""
        old = getattr(self, "snapshot", None)
        self.snapshot = Snapshot(self.path)
        self.params = self.snapshot.params
        if old is not None and old.manifest.generation == self.snapshot.manifest.generation:
            return False
        self.con = self._reading(lambda: self.snapshot.connect(confined=self.confined))
        return old is not None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the DuckDB connection (the index files are not held open between queries)."""
        self.con.close()

    def table(self, name: str) -> pa.Table:
        return self._reading(lambda: self.snapshot.table(name))

    def sql(self, query: str, parameters: list | dict | None = None) -> pa.Table:
        """Run SQL over the index views (documents, signatures, buckets, pairs, clusters, ...); confined (see
        `Index`), anything but a query raises `SQLRefused`."""
        if self.confined:
            check_read_only(self.con, query)
        return self._reading(lambda: interruptible(self.con, lambda: fetch(self.con, query, parameters)))

    def _reading(self, read: Callable[[], T]) -> T:
        """`read()`. If it fails as a missing or damaged file makes it fail: run it again once on the last commit
        if there is a newer one (this one's files may have been collected); else raise `DamagedError` naming the
        files that do not match their checksums (not a bug, not a bad query: exit 5 from the CLI)."""
        try:
            return read()
        except duckdb.PermissionException as e:
            if file_path(self.snapshot.root, "").rstrip("/") not in str(e):  # the query named another file: refused
                raise
            failed = e  # a listed file is gone (DuckDB then looks for it as a directory, outside what is allowed)
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
                duckdb.InterruptException, duckdb.OutOfMemoryException):
            raise
        except (duckdb.Error, pa.ArrowException, OSError) as e:
            failed = e
        if hasattr(self, "con") and self._follow_moved():  # a later commit moved this one's files to superseded/
            return read()
        if hasattr(self, "con") and self.refresh():  # files of an older commit, deleted after the grace period
            return read()
        check_files(self.snapshot.root, self.snapshot.manifest, hashes=True)
        raise failed

    def _follow_moved(self) -> bool:
        """Connect again to this snapshot's files where they are now; True if a later commit moved some of them
        out of their table folders and all are still there (under superseded/ for the grace period)."""
        snap = self.snapshot
        if not isinstance(snap.root, Path):  # nothing is moved on an object store
            return False
        files = [f for t in TABLES for f in snap.manifest.tables[t]]
        in_place = [(snap.root / f).exists() for f in files]
        moved = not all(in_place) and all(here or (snap.root / SUPERSEDED / f).exists()
                                          for f, here in zip(files, in_place))
        if moved:
            self.con = snap.connect(confined=self.confined)
        return moved


class Index(SnapshotReader):
    """The questions asked of an index: clusters, assignments, similar documents, statistics (and any SQL, see
    `SnapshotReader`)."""

    def clusters(self, min_size: int = 2, limit: int | None = None) -> pa.Table:
        """Clusters of at least `min_size` documents, largest first, with every member's title (or, without one,
        the start of its text) and source."""
        q = """SELECT c.cluster_id, c.size, c.doc_id,
                      coalesce(d.title, left(trim(regexp_replace(d.text, '\\s+', ' ', 'g')), 80) || '…') AS title,
                      d.source, d.published_at,
                      c.doc_id = c.representative AS is_representative
               FROM clusters c JOIN documents d USING (doc_id)
               WHERE c.size >= $min AND c.cluster_id IN (
                   SELECT cluster_id FROM clusters WHERE size >= $min GROUP BY cluster_id
                   ORDER BY any_value(size) DESC, cluster_id LIMIT $lim)
               ORDER BY c.size DESC, c.cluster_id, is_representative DESC, d.published_at NULLS LAST, c.doc_id"""
        return self.sql(q, {"min": min_size, "lim": limit if limit is not None else 2**62})

    def assignments(self) -> pa.Table:
        """doc_id, cluster_id for every indexed document (singletons have their own id)."""
        return self.sql("SELECT doc_id, cluster_id FROM clusters ORDER BY cluster_id, doc_id")

    def similar(self, doc_id: str | None = None, text: str | None = None, limit: int = 20) -> pa.Table:
        """Near-duplicates of an indexed document or of a new text, with their scores, best first.

        An indexed document's candidates were verified when it was linked and every pair scoring ≥ 0.2 is in
        `pairs`, so it is answered from there (a few small reads, whatever the index size). A new text goes the
        ingest path: its buckets are probed and its candidates verified. An id that is not indexed raises
        `DocumentNotFound` (a KeyError)."""
        if (doc_id is None) == (text is None):
            raise ValueError("give exactly one of doc_id or text")
        if doc_id is not None:
            return self._stored_similar(doc_id, limit)
        p = self.params
        me = "\x00query"
        sk = sketch_index([text], p)
        probe = bucket_rows(np.array([me], dtype=object), sk.signatures, sk.lead, sk.anchors, p).select(
            ["band", "bucket"])
        self.con.register("probe", probe)
        # the bucket filter is pushed into the Parquet scan; only the few hits are then matched band by band
        cands = self.sql("WITH hits AS (SELECT band, bucket, doc_id FROM buckets WHERE list_contains($keys, bucket)) "
                         "SELECT h.doc_id, count(*) FILTER (WHERE h.band < $b) AS bands "
                         "FROM hits h JOIN probe USING (band, bucket) GROUP BY h.doc_id HAVING count(*) >= $k",
                         {"keys": probe["bucket"].to_pylist(), "k": p.min_bands, "b": p.bands})
        self.con.unregister("probe")
        if not cands.num_rows:
            return _empty_similar()
        ids = cands["doc_id"].to_pylist()
        # two filtered scans joined in memory: each filter is pushed into its Parquet scan
        docs = self.sql("SELECT doc_id, text FROM documents WHERE list_contains($ids, doc_id)", {"ids": ids})
        docs = pa.concat_tables([docs, pa.table({"doc_id": [me], "text": [text]}).cast(docs.schema)])
        pairs = verify_pairs(pa.table({"doc_a": [me] * cands.num_rows, "doc_b": cands["doc_id"],
                                       "bands": cands["bands"]}), docs, p)
        scored = pairs.select(["doc_b", *_SCORES]).rename_columns(["doc_id", *_SCORES])
        return self._describe(scored, limit)

    def _stored_similar(self, doc_id: str, limit: int) -> pa.Table:
        if not self.sql("SELECT 1 FROM documents WHERE doc_id = $id LIMIT 1", {"id": doc_id}).num_rows:
            raise DocumentNotFound(doc_id)
        cols = ", ".join(_SCORES)
        scored = self.sql(f"SELECT doc_b AS doc_id, {cols} FROM pairs WHERE doc_a = $id UNION ALL "
                          f"SELECT doc_a, {cols} FROM pairs WHERE doc_b = $id", {"id": doc_id})
        return self._describe(scored, limit) if scored.num_rows else _empty_similar()

    def _describe(self, scored: pa.Table, limit: int) -> pa.Table:
        """The best `limit` of (doc_id, scores...) with each document's title, source and cluster."""
        self.con.register("scored", scored)
        ids = scored["doc_id"].to_pylist()
        out = self.sql(f"""WITH best AS (SELECT * FROM scored ORDER BY score DESC, doc_id LIMIT $lim)
                          SELECT b.doc_id, d.title, d.source, c.cluster_id, {", ".join("b." + s for s in _SCORES)}
                          FROM best b
                          LEFT JOIN (SELECT doc_id, title, source FROM documents
                                     WHERE list_contains($ids, doc_id)) d ON d.doc_id = b.doc_id
                          LEFT JOIN (SELECT doc_id, cluster_id FROM clusters WHERE list_contains($ids, doc_id)) c
                            ON c.doc_id = b.doc_id
                          ORDER BY b.score DESC, b.doc_id""", {"lim": limit, "ids": ids})
        self.con.unregister("scored")
        return out

    def stats(self) -> dict:
        m = self.snapshot.manifest
        one = lambda q: self._reading(lambda: self.con.execute(q).fetchall()[0][0])  # noqa: E731
        root = self.snapshot.root
        size = (sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if isinstance(root, Path)
                else sum(i.size for i in root.listing("").values()))
        return {
            "documents": one("SELECT count(*) FROM documents"),
            "clusters": one("SELECT count(DISTINCT cluster_id) FROM clusters WHERE size >= 2"),
            "clustered_documents": one("SELECT count(*) FROM clusters WHERE size >= 2"),
            "largest_cluster": one("SELECT coalesce(max(size), 0) FROM clusters"),
            "pairs": one("SELECT count(*) FROM pairs"),
            "linked_pairs": one("SELECT count(*) FROM pairs WHERE linked"),
            "rejected": one("SELECT count(*) FROM rejected"),
            "batches": one("SELECT count(*) FROM batches"),
            "generation": m.generation,
            "format_version": self.snapshot.manifest.to_json()["version"],
            "bytes": size,
            "params": self.params.to_dict(),
        }


def _empty_similar() -> pa.Table:
    return pa.table({"doc_id": pa.array([], pa.string()), "title": pa.array([], pa.string()),
                     "source": pa.array([], pa.string()), "cluster_id": pa.array([], pa.int64()),
                     "score": pa.array([], pa.float32()), "aligned": pa.array([], pa.float32()),
                     "jaccard": pa.array([], pa.float32()),
                     "containment": pa.array([], pa.float32()), "jaccard_est": pa.array([], pa.float32()),
                     "linked": pa.array([], pa.bool_())})
