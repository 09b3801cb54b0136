"""Engines run the steps of `dedup.batch` over a batch; `local` runs them on one machine."""
