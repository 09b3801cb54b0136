"""dedup: near-duplicate news detection with MinHash/LSH, a Parquet index and DuckDB.

Python API (everything the CLI does):
    import dedup
    summary = dedup.ingest(["data/"], "idx")           # files, directories or pyarrow Tables
    dedup.Index("idx").table("clusters")                # any index table as a pyarrow Table
    dedup.Index("idx").sql("SELECT * FROM cluster_summary ORDER BY size DESC")
"""

import os
from pathlib import Path

from dedup.kernel_cache import drop_stale_kernels

drop_stale_kernels(Path(__file__).parent)  # before any kernel is loaded from numba's cache

# numba's OpenMP threads otherwise spin ~12 ms on a core after every parallel kernel, waiting for the next one:
# CPU the reading and writing threads needed (set before numba loads OpenMP; a value the user set is kept)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dedup.ingest import StrictError, Summary, ingest
from dedup.params import Params, ParamsError
from dedup.query import Index
from dedup.readers import FieldMap, InputError
from dedup.store import IndexError_ as IndexError, LockedError

__all__ = ["ingest", "Index", "Params", "ParamsError", "FieldMap", "Summary", "StrictError", "InputError",
           "IndexError", "LockedError"]
__version__ = "0.1.0"
