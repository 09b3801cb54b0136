"""Engines run the steps of `dedup.batch` over a batch; `local` runs them on one machine, `spark` on Spark."""

from __future__ import annotations

from dedup.engines.local import LocalEngine
from dedup.errors import InputError

ENGINES = ("local", "spark")


def open_engine(name: str, spark_master: str | None = None) -> LocalEngine:
    """The engine of one ingest (a context manager); pyspark is imported only for `spark` (an optional extra)."""
    if name == "local":
        return LocalEngine()
    if name == "spark":
        from dedup.engines.spark import SparkEngine
        return SparkEngine(spark_master)
    raise InputError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
