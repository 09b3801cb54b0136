"""Stage 5: the index on disk, by role.

    schema      the tables and their columns, the views over them, how each table's Parquet files are laid out
    files       the index directory: where each file goes, how table files are written, moved and removed
    manifest    the committed state (`manifest.json`): read, checked, atomically replaced by a commit
    snapshot    readers: one committed generation as DuckDB views (`Snapshot`), confined to its files
    lock        the single writer's flock
    remote      an index on S3: files written in place, commits by conditional put
    writer      the single writer: staged files and atomic commits
    compact     compaction and format upgrade, through the writer's methods
    arrow       Arrow helpers shared by the stages

A commit writes new Parquet files under `DIR/staging/`, moves them into `DIR/tables/<table>/` and atomically
replaces `manifest.json`; readers of the manifest only ever read files it lists, so they see the last committed
state and never a half-written batch (see `dedup.store.writer`). Every name below is importable from `dedup.store`.
"""

from dedup.errors import IndexLocked, IndexNotFound, IndexProblem
from dedup.params import ParamsError
from dedup.store.arrow import fetch, positions, rows_of
from dedup.store.compact import COMPACT_MAX_ROWS, COMPACT_MEMORY, CompactResult, compact, upgrade
from dedup.store.files import COMPACT_TMP, MANIFEST, STAGING, SUPERSEDED, write_table
from dedup.store.lock import LockLostError
from dedup.store.manifest import DamagedError, Manifest, check_files, read_manifest
from dedup.store.schema import (COMPACT_ORDER, DERIVED_VIEWS, SCHEMAS, TABLES, WHOLE_DOCUMENTS, view_statements,
                                whole_documents)
from dedup.store.snapshot import Snapshot, confine
from dedup.store.writer import GRACE_SECONDS, Writer, grace_seconds

__all__ = ["Writer", "Snapshot", "Manifest", "read_manifest", "SCHEMAS", "TABLES", "IndexProblem", "IndexLocked",
           "IndexNotFound", "ParamsError", "compact", "CompactResult", "upgrade", "fetch", "positions", "rows_of",
           "whole_documents", "write_table", "view_statements", "check_files", "confine", "grace_seconds",
           "COMPACT_ORDER", "COMPACT_TMP", "COMPACT_MAX_ROWS", "COMPACT_MEMORY", "DERIVED_VIEWS", "GRACE_SECONDS",
           "MANIFEST", "STAGING", "SUPERSEDED", "WHOLE_DOCUMENTS", "DamagedError", "LockLostError"]
