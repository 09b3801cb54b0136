"""The index directory's files: where each goes, how a table file is written and synced, moved into its table folder
by a commit, moved out to `superseded/` when no longer listed, and removed when a killed writer left it.

    DIR/manifest.json                    the committed state (`dedup.store.manifest`)
    DIR/views.sql                        every table as a DuckDB view (rewritten at each commit)
    DIR/tables/<table>/*.parquet         the files the manifest lists, and nothing else once a commit is done
    DIR/staging/<table>/*.parquet        written for the next commit
    DIR/superseded/tables/<table>/...    files a commit stopped using, kept for readers of older manifests
    DIR/lock                             held (flock) by the one writer; names the holder
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from dedup.errors import IndexNotFound, IndexProblem
from dedup.integrity import file_checksum
from dedup.store.remote import ObjectStore, is_remote
from dedup.store.schema import SCHEMAS, TABLES, WHOLE_DOCUMENTS, parquet_options, row_group_size

if TYPE_CHECKING:
    from dedup.store.manifest import Manifest

MANIFEST = "manifest.json"
STAGING = "staging"        # files written for the next commit, moved into tables/ by it
SUPERSEDED = "superseded"  # files a commit stopped using, kept for readers of older manifests until collected
COMPACT_TMP = "tables/_compact_tmp"  # DuckDB spill directory of writers, removed with the leftovers


def location(index: str | os.PathLike | ObjectStore, settings: tuple[tuple[str, str], ...] = ()
             ) -> Path | ObjectStore:
    """Where the index `index` is: a directory (resolved), or a prefix on an object store (`dedup.store.remote`;
    `settings`: how to reach it, else the environment's). A store already opened is kept, with its listing."""
    if isinstance(index, ObjectStore):
        return index
    if is_remote(index):
        return ObjectStore.of(index, settings)  # type: ignore[arg-type]
    return Path(index).resolve()


def file_path(root: Path | ObjectStore, rel: str) -> str:
    """A file of the index, as DuckDB and pyarrow open it (a path, or a URI)."""
    return root.path(rel) if isinstance(root, ObjectStore) else str(root / rel)


def checksum(root: Path | ObjectStore, rel: str) -> dict:
    """The manifest entry of a file of the index (`dedup.integrity`)."""
    return root.checksum(rel) if isinstance(root, ObjectStore) else file_checksum(root / rel)


def connect(root: Path | ObjectStore, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that can read the index's files: on an object store through its pyarrow filesystem
    (`ObjectStore.register`)."""
    con = duckdb.connect(config=config or {})
    if isinstance(root, ObjectStore):
        root.register(con)
    return con


def object_name(name: str, generation: int) -> str:
    """A new file of table `name` on an object store: written in its table folder, since nothing moves there."""
    return f"tables/{name}/{_name(generation)}"


def delete_file(root: Path | ObjectStore, rel: str) -> None:
    if isinstance(root, ObjectStore):
        root.delete([rel])
    else:
        (root / rel).unlink(missing_ok=True)


def _name(generation: int) -> str:
    """A new file's name: the generation its writer means to commit (`dedup.store.remote` relies on it), and a
    random part."""
    return f"{generation:08d}-{uuid.uuid4().hex[:12]}.parquet"


def new_file(root: Path, name: str, generation: int) -> tuple[str, Path]:
    """A new file's path under `staging/` (relative and absolute): `publish_file` moves it into its table folder."""
    rel = f"{STAGING}/{name}/{_name(generation)}"
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    return rel, path


@dataclass
class NewFile:
    """A table file written as a stream (compaction's sorted output): a staged file, or on an object store an
    object written in place."""

    rel: str
    target: str | pa.NativeFile  # what pq.ParquetWriter writes to
    path: Path | None = None

    @classmethod
    def open(cls, root: Path | ObjectStore, name: str, generation: int) -> NewFile:
        if isinstance(root, ObjectStore):
            rel = object_name(name, generation)
            return cls(rel, root.fs.open_output_stream(f"{root.base}/{rel}"))
        rel, path = new_file(root, name, generation)
        return cls(rel, str(path), path)

    def close(self) -> None:
        """Once its writer is closed: sync the file, or finish the object's upload."""
        if self.path is not None:
            fsync_file(self.path)
        elif not self.target.closed:  # type: ignore[union-attr]
            self.target.close()  # type: ignore[union-attr]


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` in `schema`'s columns and types; a column added to the schema after the rows were written (a file of
    an older dedup, rewritten when documents are replaced or retired) is null."""
    missing = [f for f in schema if f.name not in table.column_names]
    for f in missing:
        table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table.select(schema.names).cast(schema)


def write_table(root: Path | ObjectStore, name: str, table: pa.Table, generation: int,
                sort_by: list[str] | None = None, whole: bool = False) -> str:
    """Write one Parquet file for `name` (cast to its schema) and return its path relative to root. `whole`:
    a bucket file holding every row of its documents (WHOLE_DOCUMENTS). On an object store it is written in its
    table folder under a name of its own, since nothing can be moved there (`dedup.store.remote`)."""
    table = conform(table, SCHEMAS[name])
    if whole:
        table = table.replace_schema_metadata({WHOLE_DOCUMENTS: b"1"})
    if sort_by and table.num_rows:
        table = table.sort_by([(c, "ascending") for c in sort_by])
    if isinstance(root, ObjectStore):
        rel = object_name(name, generation)
        root.write_parquet(rel, table, row_group_size=row_group_size(name), **parquet_options(name))
        return rel
    rel, path = new_file(root, name, generation)
    try:
        pq.write_table(table, path, row_group_size=row_group_size(name), **parquet_options(name))
        fsync_file(path)
    except BaseException:
        path.unlink(missing_ok=True)  # not staged yet: nobody else would remove it before the next writer
        raise
    return rel


def publish_file(root: Path, rel: str) -> str:
    """Move a staged file into its table folder (the commit lists it there); returns its new relative path."""
    if not rel.startswith(STAGING + "/"):
        return rel
    table_rel = "tables/" + rel[len(STAGING) + 1:]
    (root / table_rel).parent.mkdir(parents=True, exist_ok=True)
    os.replace(root / rel, root / table_rel)
    return table_rel


def supersede(root: Path, rel: str) -> None:
    """Move a file the manifest no longer lists out of its table folder (best effort: readers of the manifest
    never look there, and the next writer moves what is left)."""
    src = root / rel
    if not src.exists():
        return
    dst = root / SUPERSEDED / rel
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    except OSError as e:
        warnings.warn(f"{root}: committed, but {rel} could not be moved to {SUPERSEDED}/: {e}", stacklevel=3)


def owned_only(root: Path) -> bool:
    """True if `root` holds nothing but what a writer killed before the first commit can leave behind."""
    for p in root.iterdir():
        n = p.name
        if n in ("lock", "views.sql") or n.startswith(MANIFEST + ".tmp") or n.startswith("views.sql.tmp"):
            continue
        if n in (STAGING, SUPERSEDED) and p.is_dir():
            continue
        if n == "tables" and p.is_dir():
            for q in p.rglob("*"):
                rel = q.relative_to(p).parts
                if q.is_dir():
                    if rel[0] not in TABLES and rel[0] != Path(COMPACT_TMP).name:
                        return False
                elif not (rel[0] == Path(COMPACT_TMP).name or (rel[0] in TABLES and len(rel) == 2
                                                                   and q.suffix == ".parquet")):
                    return False
            continue
        return False
    return True


def check_creatable(root: Path, create: bool) -> None:
    """Refuse to make an index of `root` unless it is one already, or empty but for what a killed writer left."""
    if (root / MANIFEST).is_file():
        return
    if not create:
        raise IndexNotFound(f"{root}: not a dedup index (no {MANIFEST})")
    if root.exists() and not root.is_dir():
        raise IndexProblem(f"{root}: exists and is not a directory")
    if root.is_dir() and not owned_only(root):
        raise IndexProblem(f"{root}: directory is not empty and is not a dedup index")


def remove_index(root: Path, made_dir: bool) -> None:
    """Undo the creation of an index whose first batch failed: its files, and its directory if the writer made it
    (`made_dir`)."""
    for name in (MANIFEST, "views.sql"):
        (root / name).unlink(missing_ok=True)
    for folder in ("tables", STAGING):
        shutil.rmtree(root / folder, ignore_errors=True)
    if made_dir:
        (root / "lock").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            root.rmdir()


def remove_leftovers(root: Path, manifest: Manifest | None) -> None:
    """Delete files `manifest` does not list (a killed writer's: staged Parquet files, temporary manifest and views
    files, compaction spill files); without a manifest (none committed yet), all table files."""
    listed: set[str] = set()
    garbage: set[str] = set()
    if manifest is not None:
        listed = {f for files in manifest.tables.values() for f in files}
        garbage = {g["file"] for g in manifest.garbage}
        for rel in garbage:  # a commit that stopped before moving what it dropped (or an older dedup's)
            supersede(root, rel)
    shutil.rmtree(root / STAGING, ignore_errors=True)
    superseded = root / SUPERSEDED
    if superseded.is_dir():
        for p in sorted(superseded.rglob("*"), reverse=True):
            if p.is_file() and p.relative_to(superseded).as_posix() not in garbage:
                p.unlink(missing_ok=True)
    tables = root / "tables"
    if tables.is_dir():
        for p in sorted(tables.rglob("*"), reverse=True):  # files before their directories
            rel = p.relative_to(root).as_posix()
            if p.is_dir():
                if p.parent == tables and p.name not in TABLES:
                    shutil.rmtree(p, ignore_errors=True)
            elif rel not in listed:
                p.unlink(missing_ok=True)
    for pattern in (MANIFEST + ".tmp*", "views.sql.tmp*"):
        for p in root.glob(pattern):
            p.unlink(missing_ok=True)
