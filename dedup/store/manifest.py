"""The committed state of an index: `manifest.json` (format version, parameters, the exact Parquet files of every
table and their checksums), how it is read and checked, and how a commit replaces it atomically (write to a
temporary file, fsync, rename, fsync the directory) and rewrites `views.sql` after it."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dedup.errors import IndexNotFound, IndexProblem
from dedup.integrity import damage
from dedup.params import FORMAT_NAME, FORMAT_VERSION, Params
from dedup.store.files import MANIFEST, fsync_dir
from dedup.store.remote import ObjectStore
from dedup.store.schema import TABLES, view_statements


class DamagedError(IndexProblem):
    """Files the manifest lists are missing or differ from their checksums."""

    def __init__(self, root: Path | ObjectStore, problems: list) -> None:
        shown = "; ".join(str(p) for p in problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5
                                                          else "")
        super().__init__(f"{root}: damaged index: {shown}; run `dedup check --index {root}` for the full list")
        self.problems = problems


@dataclass
class Manifest:
    params: Params
    generation: int
    tables: dict[str, list[str]]
    next_cluster_id: int
    next_batch: int
    garbage: list[dict]
    created_at: float
    updated_at: float
    version: int = FORMAT_VERSION  # of the manifest read; every commit writes FORMAT_VERSION
    # file -> {"bytes", "xxh3", "rows"} (dedup.integrity); files of indexes written before checksums have none
    checksums: dict[str, dict] = field(default_factory=dict)
    # bucket file -> [first, last] date of its documents (epoch seconds), in an index with a time window: the
    # link planner skips files outside a batch's window without opening them (dedup.windows)
    ranges: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "generation": self.generation,
            "params": self.params.manifest_dict(), "tables": self.tables, "next_cluster_id": self.next_cluster_id,
            "next_batch": self.next_batch, "garbage": self.garbage, "created_at": self.created_at,
            "updated_at": self.updated_at, "checksums": self.checksums,
        }
        if self.ranges:  # an index without a window keeps the manifest it had before windows
            d["ranges"] = self.ranges
        return d


def read_manifest(root: Path | ObjectStore, upgrading: bool = False) -> Manifest:
    """The committed manifest. An index of an older format version is refused (`upgrading` accepts those that
    `upgrade` can convert)."""
    if isinstance(root, ObjectStore):
        where, d = root.latest_manifest()
        return _parse(d, root, where, upgrading)
    path = root / MANIFEST
    if not root.is_dir():
        raise IndexNotFound(f"{root}: no such index directory")
    if not path.is_file():
        raise IndexNotFound(f"{root}: not a dedup index (no {MANIFEST})")
    try:
        d = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise IndexProblem(f"{path}: unreadable manifest: {e}") from e
    return _parse(d, root, str(path), upgrading)


def _parse(d: dict, root: Path | ObjectStore, path: str, upgrading: bool) -> Manifest:
    if d.get("format") != FORMAT_NAME:
        raise IndexProblem(f"{path}: not a dedup index manifest")
    if d.get("version") not in ((1, FORMAT_VERSION) if upgrading else (FORMAT_VERSION,)):
        hint = f"; convert it with `dedup upgrade --index {root}`" if d.get("version") == 1 else ""
        raise IndexProblem(f"{path}: index format version {d.get('version')} is not supported "
                          f"(this dedup reads version {FORMAT_VERSION}){hint}")
    return Manifest(Params.from_dict(d["params"]), d["generation"], d["tables"], d["next_cluster_id"],
                    d["next_batch"], d["garbage"], d["created_at"], d["updated_at"], d["version"], d.get("checksums", {}),
                    d.get("ranges", {}))


def check_files(root: Path | ObjectStore, m: Manifest, hashes: bool, unread: Collection[str] = ()) -> None:
    """Raise `DamagedError` if a file `m` lists is missing or differs from its checksum (sizes only unless
    `hashes`; sizes only for the files `unread`, which the caller hashes if it comes to read them)."""
    files = [f for t in TABLES for f in m.tables[t]]
    problems = damage(root, [f for f in files if f not in unread], m.checksums, hashes)
    problems += damage(root, [f for f in files if f in unread], m.checksums, hashes=False)
    if problems:
        raise DamagedError(root, problems)


def write_manifest(root: Path | ObjectStore, m: Manifest, moved: Iterable[str]) -> None:
    """The commit point: `m` replaces the manifest, after the folders of the files `moved` into them are synced
    (the manifest must not outlive the move). Raises only if `m` was not committed (the index is then unchanged);
    once the rename (on an object store: the conditional put) has happened nothing raises, so no caller reports a
    failure or aborts (deleting files `m` lists)."""
    data = json.dumps(m.to_json(), indent=1).encode()
    if isinstance(root, ObjectStore):
        root.commit_manifest(m.generation, data)
    else:
        _replace_manifest(root, data, moved)
    # committed: readers now see `m`. The rest is best effort.
    try:
        write_views(root, m)
    except OSError as e:  # views.sql is a convenience for the DuckDB CLI; the next writer rewrites it
        warnings.warn(f"{root}: committed, but views.sql could not be rewritten: {e}", stacklevel=3)


def _replace_manifest(root: Path, data: bytes, moved: Iterable[str]) -> None:
    """A directory's commit: the new manifest under a temporary name, synced, renamed over the old one."""
    tmp = root / f"{MANIFEST}.tmp{os.getpid()}"
    try:
        for folder in {(root / rel).parent for rel in moved}:  # the files it lists are where it says
            fsync_dir(folder)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, root / MANIFEST)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # committed
        fsync_dir(root)
    except OSError as e:  # the rename is visible; after a power loss the index may be at the previous commit
        warnings.warn(f"{root}: committed, but the directory could not be synced: {e}", stacklevel=4)


def write_views(root: Path | ObjectStore, m: Manifest) -> None:
    """`views.sql` for `m`: paths relative to the index directory, so a copied or moved index reads its own files
    (on an object store: absolute URIs, for DuckDB's httpfs)."""
    if isinstance(root, ObjectStore):
        views = ("-- dedup index views (generated at each commit; do not edit), over the files of generation "
                 f"{m.generation}.\n-- DuckDB reads them with its httpfs extension and S3 credentials: "
                 "LOAD httpfs; CREATE SECRET (TYPE s3, PROVIDER credential_chain);\n")
        views += "\n".join(view_statements({t: [root.path(f) for f in files] for t, files in m.tables.items()}))
        root.write("views.sql", (views + "\n").encode())
        return
    views = ("-- dedup index views (generated at each commit; do not edit). Paths are relative to the index\n"
             "-- directory, so a copied or moved index reads its own files: cd DIR && duckdb -init views.sql\n")
    views += "\n".join(view_statements(m.tables)) + "\n"
    vtmp = root / f"views.sql.tmp{os.getpid()}"
    try:
        vtmp.write_text(views, "utf-8")
        os.replace(vtmp, root / "views.sql")
    except BaseException:
        vtmp.unlink(missing_ok=True)
        raise
