"""Checksums of the index's data files: what the manifest records for each file, and how a file is compared with it.

Each file a commit lists gets an entry in the manifest's `checksums`: its size in bytes, the xxh3-64 of its bytes
and its row count. Writers compare every listed file with its entry before they read anything (a damaged file
would otherwise be read, and its wrong rows carried into new files); readers compare sizes only (a stat per file)
and, when a read fails, the hashes too, to name the damaged file. Indexes written before checksums existed have
no entries: their files are checked for what can be (present, a readable Parquet footer) until `dedup upgrade`
records them.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

if TYPE_CHECKING:
    from dedup.store.remote import ObjectStore

# bytes hashed at a time, read into one buffer per file: reading each 8 MB block as a new bytes object cost 5x the
# CPU (the kernel maps and zeroes fresh pages for every block): 2.75 against 0.52 CPU s for a night into a 2M archive
_READ = 1 << 20


def _xxh3(path: Path) -> str:
    h = xxhash.xxh3_64()
    buf = bytearray(_READ)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def file_checksum(path: Path) -> dict:
    """The manifest entry of a data file: {"bytes", "xxh3", "rows"}."""
    return {"bytes": path.stat().st_size, "xxh3": _xxh3(path), "rows": pq.ParquetFile(path).metadata.num_rows}


def checksum_of(data: bytes | memoryview, rows: int) -> dict:
    """The manifest entry of a data file whose bytes are in memory (written to, or read from, an object store)."""
    return {"bytes": len(data), "xxh3": xxhash.xxh3_64_hexdigest(data), "rows": rows}


@dataclass(frozen=True)
class Damage:
    """One listed file that does not match the manifest."""

    file: str      # relative to the index root
    problem: str   # e.g. "missing", "size 1024 bytes, the manifest says 4096"

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


def damage(root: Path | ObjectStore, files: Iterable[str], sums: dict[str, dict], hashes: bool = True,
           threads: int = 2) -> list[Damage]:
    """The listed `files` that are missing or differ from their entry in `sums` (the size only, unless
    `hashes`); a file without an entry must at least have a readable Parquet footer. On an object store the sizes
    come from the listing the store took when it opened the index (`ObjectStore.tables`), not a request a file."""
    if isinstance(root, Path):
        size_of = lambda rel: (root / rel).stat().st_size  # noqa: E731
        hash_of = lambda rel: _xxh3(root / rel)  # noqa: E731
        footer = lambda rel: pq.ParquetFile(root / rel)  # noqa: E731
    else:
        listed = root.tables

        def size_of(rel: str) -> int:
            if rel not in listed:
                raise FileNotFoundError(rel)
            return listed[rel].size

        hash_of = lambda rel: xxhash.xxh3_64_hexdigest(root.read(rel))  # noqa: E731
        footer = lambda rel: pq.ParquetFile(pa.BufferReader(root.read(rel)))  # noqa: E731

    def one(rel: str) -> Damage | None:
        expected = sums.get(rel)
        try:
            size = size_of(rel)
        except FileNotFoundError:
            return Damage(rel, "missing")
        except OSError as e:
            return Damage(rel, f"unreadable: {e.strerror or e}")
        if expected is None:
            try:
                footer(rel)
            except Exception as e:  # noqa: BLE001 - any failure to parse the footer is damage
                return Damage(rel, f"not a readable Parquet file ({e})")
            return None
        if size != expected["bytes"]:
            return Damage(rel, f"size {size:,} bytes, the manifest says {expected['bytes']:,}")
        if hashes:
            try:
                got = hash_of(rel)
            except OSError as e:
                return Damage(rel, f"unreadable: {e.strerror or e}")
            if got != expected["xxh3"]:
                return Damage(rel, f"content differs from the manifest's checksum (xxh3 {got}, "
                                   f"expected {expected['xxh3']})")
        return None

    files = list(dict.fromkeys(files))
    if not hashes:  # a stat per file: no thread worth starting
        return [d for d in map(one, files) if d is not None]
    with ThreadPoolExecutor(max_workers=threads) as ex:
        return [d for d in ex.map(one, files) if d is not None]
