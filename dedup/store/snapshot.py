"""Readers of an index: a `Snapshot` is a read-only view of one committed generation, as DuckDB views over exactly
its files, wherever a later commit moved them. Readers never take the writer's lock."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from dedup.store.files import SUPERSEDED, connect, location
from dedup.store.manifest import check_files, read_manifest
from dedup.store.remote import ObjectStore
from dedup.store.schema import SCHEMAS, TABLES, sql_str, view_statements


class Snapshot:
    """A read-only view of one committed generation: DuckDB views over exactly its files."""

    def __init__(self, root: str | os.PathLike | ObjectStore):
        self.root = location(root)
        self.manifest = read_manifest(self.root)
        self.params = self.manifest.params
        check_files(self.root, self.manifest, hashes=False)  # a stat per file: names a missing or truncated one

    def files(self, table: str) -> list[str]:
        return [self.path(f) for f in self.manifest.tables[table]]

    def path(self, rel: str) -> str:
        """Where a file of this snapshot is now: in its table folder, or moved to `superseded/` by a later commit
        (on an object store files are not moved)."""
        if isinstance(self.root, ObjectStore):
            return self.root.path(rel)
        current = self.root / rel
        return str(current if current.exists() else self.root / SUPERSEDED / rel)

    def connect(self, confined: bool = True, config: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with every table as a view over this snapshot's files where they are now (see
        `path`). `confined`: it reads these files and nothing else, and its configuration is locked (see
        `confine`). `config`: DuckDB settings for the connection (memory limit, spill directory)."""
        safe = {"autoload_known_extensions": False, "autoinstall_known_extensions": False} if confined else {}
        con = connect(self.root, {**(config or {}), **safe})
        con.execute("SET enable_progress_bar = false")  # DuckDB draws it on stdout, among the results
        if confined:
            confine(con, [f for t in TABLES for f in self.files(t)])
        for stmt in view_statements({t: self.files(t) for t in TABLES}):
            con.execute(stmt)
        return con

    def table(self, name: str) -> pa.Table:
        if name not in SCHEMAS:
            raise KeyError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
        if isinstance(self.root, ObjectStore):
            return pq.ParquetDataset([f.removeprefix("s3://") for f in self.files(name)], schema=SCHEMAS[name],
                                     filesystem=self.root.fs).read()
        return pq.ParquetDataset(self.files(name), schema=SCHEMAS[name]).read()


def confine(con: duckdb.DuckDBPyConnection, paths: list[str]) -> None:
    """Let `con` read `paths` and no other file, load no extension and change no setting, for good: an analyst's
    query (a typo, a pasted snippet) must not read other files, attach databases or change the session. DuckDB's
    `allowed_paths` also allows *writing* those files, so callers refuse every statement but SELECT as well
    (`dedup.query.check_read_only`)."""
    con.execute(f"SET allowed_paths = [{', '.join(sql_str(p) for p in paths)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
