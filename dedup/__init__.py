"""dedup: near-duplicate news detection with MinHash/LSH, a Parquet index and DuckDB.

Python API (everything the CLI does):
    import dedup
    summary = dedup.ingest("data/", "idx")             # a path, or a list of paths, tables, DataFrames, dicts
    dedup.Index("idx").table("clusters")                # any index table as a pyarrow Table
    with dedup.Index("idx") as ix:                      # closes its DuckDB connection on leaving
        ix.sql("SELECT * FROM cluster_summary ORDER BY size DESC")
    except dedup.DedupError: every error dedup raises on purpose (see dedup.errors)

Importing changes nothing in the process: the settings a job needs are applied when it starts
(`dedup.runtime.prepare_process`). It is also cheap: the names below are imported on first use, so a script that
only catches `dedup.DedupError` or reads `dedup.Params` loads neither DuckDB nor numba nor Arrow.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from dedup.errors import DedupError, DocumentNotFound, IndexLocked, IndexNotFound, IndexProblem, InputError

# name -> the module that defines it, imported when the name is first used
_LAZY = {"ingest": "dedup.ingest", "Summary": "dedup.ingest", "StrictError": "dedup.ingest",
         "export": "dedup.export", "ExportSummary": "dedup.export", "Index": "dedup.query",
         "Params": "dedup.params", "ParamsError": "dedup.params", "FieldMap": "dedup.readers"}

__all__ = ["ingest", "Index", "export", "Summary", "ExportSummary", "Params", "FieldMap",
           "DedupError", "InputError", "IndexProblem", "IndexNotFound", "IndexLocked", "DocumentNotFound",
           "ParamsError", "StrictError"]
__version__ = "0.1.0"


class _Package(types.ModuleType):
    """The `dedup` module: imports the API names of `_LAZY`, and its submodules, on first use. `ingest` and `export`
    are both functions and modules of this package; importing the module (`from dedup.ingest import ...`) must not
    replace the function, which is what `dedup.ingest` has always meant."""

    def __getattr__(self, name: str) -> object:
        if name in _LAZY:
            value = getattr(importlib.import_module(_LAZY[name]), name)
        elif not name.startswith("_") and importlib.util.find_spec(f"dedup.{name}") is not None:
            value = importlib.import_module(f"dedup.{name}")  # `dedup.store.compact` after `import dedup` alone
        else:
            raise AttributeError(f"module 'dedup' has no attribute {name!r}")
        super().__setattr__(name, value)
        return value

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and name in _LAZY:
            return  # the import system naming a submodule after a function of the API: the function keeps the name
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_LAZY})


sys.modules[__name__].__class__ = _Package
