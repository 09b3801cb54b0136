"""The errors dedup raises on purpose, one family: `except dedup.DedupError` catches every one of them (and
nothing that is a bug). The CLI maps each to an exit code (see the README)."""

from __future__ import annotations


class DedupError(Exception):
    """Base of every error dedup raises for a reason a user can act on."""


class InputError(DedupError):
    """An input given to ingest that cannot be used at all (a missing path, an unsupported file type)."""


class IndexProblem(DedupError):
    """The index cannot be used: not an index, an unsupported format version, unreadable, or not writable."""


class IndexNotFound(IndexProblem):
    """No index at that path (no directory, or no manifest in it)."""


class IndexLocked(IndexProblem):
    """Another writer (ingest, compact) holds the index; the message names it."""


class DocumentNotFound(DedupError, KeyError):
    """No document with that id in the index (a KeyError too, for code that looks ids up like a mapping)."""

    def __str__(self) -> str:  # KeyError's own repr-quotes its argument
        return f"not found: no document with id {self.args[0]!r} in the index"
