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

# Threads that would spin on a core, taking it from ingest's reading and writing threads (a value the user set is
# kept; both are read when the library loads, so they are set before numpy and numba are imported):
# - numba's OpenMP workers, ~12 ms after every parallel kernel, waiting for the next one;
# - OpenBLAS's pool, started by importing numpy and scipy: 0.3-0.5 s of CPU in the second after the import, and
#   dedup does no linear algebra.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from dedup.export import ExportSummary, export
from dedup.ingest import StrictError, Summary, ingest
from dedup.params import Params, ParamsError
from dedup.query import Index
from dedup.readers import FieldMap, InputError
from dedup.store import IndexError_ as IndexError, LockedError

__all__ = ["ingest", "Index", "export", "ExportSummary", "Params", "ParamsError", "FieldMap", "Summary", "StrictError", "InputError",
           "IndexError", "LockedError"]
__version__ = "0.1.0"
