"""dedup: near-duplicate news detection with MinHash/LSH, a Parquet index and DuckDB.

Python API (everything the CLI does):
    import dedup
    summary = dedup.ingest("data/", "idx")             # a path, or a list of paths, tables, DataFrames, dicts
    dedup.Index("idx").table("clusters")                # any index table as a pyarrow Table
    with dedup.Index("idx") as ix:                      # closes its DuckDB connection on leaving
        ix.sql("SELECT * FROM cluster_summary ORDER BY size DESC")
    except dedup.DedupError: every error dedup raises on purpose (see dedup.errors)

Importing changes nothing in the process: the settings a job needs are applied when it starts
(`dedup.runtime.prepare_process`).
"""

from dedup.errors import DedupError, DocumentNotFound, IndexLocked, IndexNotFound, IndexProblem, InputError
from dedup.export import ExportSummary, export
from dedup.ingest import StrictError, Summary, ingest
from dedup.params import Params, ParamsError
from dedup.query import Index
from dedup.readers import FieldMap

__all__ = ["ingest", "Index", "export", "Summary", "ExportSummary", "Params", "FieldMap",
           "DedupError", "InputError", "IndexProblem", "IndexNotFound", "IndexLocked", "DocumentNotFound",
           "ParamsError", "StrictError"]
__version__ = "0.1.0"
