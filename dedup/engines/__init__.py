"""Engines run the steps of `dedup.batch` over a batch; `local` runs them on one machine, `spark` on Spark."""

from __future__ import annotations

from pathlib import Path

from dedup.engines.local import LocalEngine
from dedup.errors import InputError
from dedup.readers import Rejection

ENGINES = ("local", "spark")


def open_engine(name: str, spark_master: str | None = None, files: list[Path | str] | None = None,
                skipped: list[Rejection] | None = None, index: str | None = None) -> LocalEngine:
    """The engine of one ingest (a context manager); pyspark is imported only for `spark` (an optional extra).
    URIs among `files` are replaced by the files the engine lists under them (in place, before the index is
    opened: a missing input creates no index), their unsupported files added to `skipped`. `index`: an index
    URI, which the engine must be able to read."""
    uris = [f for f in files or [] if isinstance(f, str)]
    if name == "local":
        if uris:
            raise InputError(f"{uris[0]}: a URI; only --engine spark reads them (its executors, through the "
                             "filesystems Spark is configured for)")
        return LocalEngine()
    if name == "spark":
        from dedup.engines.spark import SparkEngine
        engine = SparkEngine(spark_master)
        try:
            if index is not None:
                engine.check_index(index)
            if uris:
                engine.list_uris(files, skipped)  # type: ignore[arg-type]
        except BaseException:
            engine.__exit__(None, None, None)
            raise
        return engine
    raise InputError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
