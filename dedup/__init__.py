"""dedup: near-duplicate news detection with MinHash/LSH, a Parquet index and DuckDB.

Python API (everything the CLI does):
    import dedup
    summary = dedup.ingest(["data/"], "idx")           # files, directories or pyarrow Tables
    dedup.Index("idx").table("clusters")                # any index table as a pyarrow Table
    dedup.Index("idx").sql("SELECT * FROM cluster_summary ORDER BY size DESC")

Importing changes nothing in the process: the settings a job needs are applied when it starts
(`dedup.runtime.prepare_process`).
"""

from dedup.ingest import StrictError, Summary, ingest
from dedup.params import Params, ParamsError
from dedup.query import Index
from dedup.readers import FieldMap, InputError
from dedup.store import IndexError_ as IndexError, LockedError

__all__ = ["ingest", "Index", "Params", "ParamsError", "FieldMap", "Summary", "StrictError", "InputError",
           "IndexError", "LockedError"]
__version__ = "0.1.0"
