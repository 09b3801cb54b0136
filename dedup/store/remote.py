"""An index on an object store (Amazon S3, and stores speaking its API that honour conditional writes,
`If-None-Match: *`): the same tables, files and manifest as an index directory, committed by a conditional put
where a directory renames. A store that ignores the condition would let two writers both commit a generation.

    URI/manifests/<generation:010d>.json   each commit's manifest, created only if absent (If-None-Match: *)
    URI/tables/<table>/<generation:08d>-<uuid>.parquet
                                           written in place under new names (an object store cannot rename)
    URI/views.sql                          every table as a DuckDB view over absolute URIs (rewritten at each
                                           commit; DuckDB's httpfs reads them)

Readers take the highest manifest: S3 lists what was written, in order, since 2020. Writers need no lock: a writer
names its new files after the generation it will commit, and of two writers that opened the same generation only
the first commit's conditional put succeeds; the second fails (`IndexLocked`, nothing committed) and its files are
removed by the next writer. A file under `tables/` that no manifest lists and that is named for a generation already
committed belongs to a writer that can never commit, so a writer removes it when it opens the index; files of
later generations belong to a writer that may still be running and are left alone. Files a commit stops using stay
in place for readers of older manifests until the grace period is over (`dedup.store.grace_seconds`).

Credentials and the endpoint come from the environment as for any AWS tool (AWS_ACCESS_KEY_ID, AWS_PROFILE, an
instance or pod role; AWS_ENDPOINT_URL for another store), or, with the Spark engine and an `s3a://` URI, from the
cluster's S3A settings (`S3A`: its endpoint, keys, region, path style), so that a cluster configured for S3A needs
nothing more. pyarrow's S3 filesystem reads and writes the files, boto3 makes the conditional put
(`pip install 'dedup[s3]'`). `s3a://` URIs, as Spark's S3A names them, are the same objects.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dedup.errors import IndexLocked, IndexNotFound, IndexProblem
from dedup.integrity import checksum_of

_REMOTE = re.compile(r"^(s3|s3a)://([^/]+)(/.*)?$", re.IGNORECASE)
MANIFESTS = "manifests"
# Hadoop's S3A settings an index on S3 takes from a Spark cluster's configuration (per bucket first:
# fs.s3a.bucket.<bucket>.endpoint, ...), and the names this module gives them
S3A = {"endpoint": "endpoint", "access.key": "access_key", "secret.key": "secret_key",
       "session.token": "session_token", "endpoint.region": "region", "path.style.access": "path_style",
       "connection.ssl.enabled": "ssl"}
KEEP_MANIFESTS = 10  # older manifests are removed: a reader reads its manifest once, when it opens the index


class PositionalFile:
    """A file DuckDB reads from several threads at once. DuckDB's fsspec bridge reads at an offset as two calls,
    `seek` then `read`, each taking the GIL on its own, so with one position per file another thread's seek could
    land between them and a thread would read another's bytes (seen: Parquet footers that did not decode). Here each
    thread has its own position, and reads are pyarrow's positional `read_at`."""

    def __init__(self, f: pa.NativeFile) -> None:
        self._file = f
        self._at = threading.local()

    def seek(self, offset: int, whence: int = 0) -> int:
        base = 0 if whence == 0 else self.tell() if whence == 1 else self._file.size()
        self._at.pos = base + offset
        return self._at.pos

    def tell(self) -> int:
        return getattr(self._at, "pos", 0)

    def read(self, n: int = -1) -> bytes:
        pos = self.tell()
        if n is None or n < 0:
            n = self._file.size() - pos
        data = self._file.read_at(n, pos)
        self._at.pos = pos + len(data)
        return data

    def close(self) -> None:
        self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed


class CommitUnknown(IndexProblem):
    """The commit's put failed without an answer and its manifest could not be read back: it may have been
    committed, so the writer must not delete what it wrote (the next writer removes it if it was not)."""


def is_remote(index: object) -> bool:
    """An index given as an object store URI (s3://bucket/prefix, s3a://...)."""
    return isinstance(index, str) and _REMOTE.match(index) is not None


def generation_of(rel: str) -> int | None:
    """The generation a table file was written for (its name's first field), None for a name of another form."""
    m = re.match(r"\d{8}", rel.rsplit("/", 1)[-1])
    return int(m.group(0)) if m else None


@dataclass(frozen=True)
class ObjectStore:
    """An index's prefix on an object store: where its files are, and the few operations a writer needs."""

    uri: str  # s3://bucket/prefix or s3a://..., as given, without a trailing slash
    # connection settings (S3A's values by this module's names), else the environment's: see the module's doc
    settings: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # checksums of the files this process wrote (relative path -> manifest entry): a commit need not read them back
    written: dict[str, dict] = field(default_factory=dict, compare=False, repr=False)

    def __reduce__(self) -> tuple:
        """Sent to Spark's executors as its URI and settings (not the driver's filesystem or checksums)."""
        return (ObjectStore, (self.uri, self.settings))

    @classmethod
    def of(cls, index: str, settings: tuple[tuple[str, str], ...] = ()) -> ObjectStore:
        m = _REMOTE.match(index)
        if m is None:
            raise IndexProblem(f"{index}: not an object store URI (s3://bucket/prefix)")
        prefix = (m.group(3) or "").strip("/")
        if not prefix:
            raise IndexProblem(f"{index}: give the index a prefix of its own in the bucket (s3://bucket/news-index): "
                               "its writers remove files under it that no manifest lists")
        return cls(f"{m.group(1).lower()}://{m.group(2)}/{prefix}", settings)

    def _endpoint(self) -> tuple[str | None, str]:
        """The settings' endpoint (host[:port]) and scheme."""
        s = dict(self.settings)
        endpoint, scheme = s.get("endpoint") or None, "http" if s.get("ssl") == "false" else "https"
        if endpoint and "://" in endpoint:
            scheme, endpoint = endpoint.split("://", 1)
        return endpoint, scheme

    def __str__(self) -> str:
        return self.uri

    @cached_property
    def fs(self) -> pafs.FileSystem:
        s = dict(self.settings)
        try:
            if self.settings:
                endpoint, scheme = self._endpoint()
                return pafs.S3FileSystem(access_key=s.get("access_key"), secret_key=s.get("secret_key"),
                                         session_token=s.get("session_token"), region=s.get("region"),
                                         endpoint_override=endpoint, scheme=scheme)
            fs, _ = pafs.FileSystem.from_uri(self.path(""))
        except (OSError, pa.ArrowException) as e:
            raise IndexProblem(f"{self.uri}: cannot reach the object store: {e}") from e
        return fs

    @property
    def base(self) -> str:
        return self.uri.split("://", 1)[1]

    def path(self, rel: str) -> str:
        """A file's URI, as DuckDB and pyarrow open it (s3://)."""
        return f"s3://{self.base}/{rel}"

    def hadoop(self, path: str) -> str:
        """A file's URI (`path`'s) in the scheme the index was given in, which Spark's Hadoop filesystems read:
        s3:// on EMR, s3a:// with S3A elsewhere."""
        return self.uri + path.removeprefix(f"s3://{self.base}")

    def listing(self, folder: str) -> dict[str, pafs.FileInfo]:
        """The files under `folder` (relative path -> info), none if there is no such folder."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(f"{self.base}/{folder}", recursive=True,
                                                            allow_not_found=True))
        except OSError as e:
            raise IndexProblem(f"{self.uri}: cannot list {folder}/: {e}") from e
        return {i.path.removeprefix(self.base + "/"): i for i in infos if i.type == pafs.FileType.File}

    def read(self, rel: str) -> bytes:
        with self.fs.open_input_stream(f"{self.base}/{rel}") as f:
            return f.read()

    def write(self, rel: str, data: bytes | pa.Buffer) -> None:
        with self.fs.open_output_stream(f"{self.base}/{rel}") as f:
            f.write(data)

    def write_parquet(self, rel: str, table: pa.Table, **options: object) -> None:
        """Write `table` as the Parquet file `rel`, checksummed as written (`written`)."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **options)  # type: ignore[arg-type]
        data = sink.getvalue()
        self.write(rel, data)
        self.written[rel] = checksum_of(memoryview(data), table.num_rows)

    def checksum(self, rel: str) -> dict:
        """The manifest entry of a file (`dedup.integrity`): from the write, else read back."""
        got = self.written.get(rel)
        if got is None:
            data = self.read(rel)
            got = checksum_of(data, pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows)
        return got

    def delete(self, rels: Iterable[str]) -> None:
        for rel in rels:
            try:
                self.fs.delete_file(f"{self.base}/{rel}")
            except FileNotFoundError:
                pass

    def create(self, rel: str, data: bytes) -> bool:
        """Write `rel` only if no object has that name (S3's conditional put); False if one has. A put that fails
        otherwise is settled by reading `rel` back: raises IndexProblem if it is not there, CommitUnknown if that
        cannot be told."""
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            raise IndexProblem(f"{self.uri}: an index on S3 needs boto3 for its commits: pip install 'dedup[s3]'") \
                from None
        bucket, _, prefix = self.base.partition("/")
        s = dict(self.settings)
        endpoint, scheme = self._endpoint()
        client = boto3.client("s3", endpoint_url=endpoint and f"{scheme}://{endpoint}",
                              aws_access_key_id=s.get("access_key"), aws_secret_access_key=s.get("secret_key"),
                              aws_session_token=s.get("session_token"), region_name=s.get("region"),
                              config=Config(s3={"addressing_style": "path"}) if s.get("path_style") == "true" else None)
        try:
            client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=data, IfNoneMatch="*")
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            failed: Exception = e
        except BotoCoreError as e:  # no answer (a connection lost): the object may have been written
            failed = e
        else:
            return True
        try:
            there = self.read(rel)
        except FileNotFoundError:
            raise IndexProblem(f"{self.uri}: cannot write {rel}: {failed}") from None
        except OSError:
            raise CommitUnknown(f"{self.uri}: cannot tell whether {rel} was written ({failed}); run `dedup check "
                                f"--index {self.uri}`, then the command again") from None
        if there == data:
            return True
        return False  # another writer's

    @cached_property
    def tables(self) -> dict[str, pafs.FileInfo]:
        """The table files as listed when first asked (relative path -> info), which is when the index is opened:
        files never change once written, so their sizes for `dedup.integrity.damage`, the leftovers, and what DuckDB
        asks of them (size, time, existence; ten requests a file) all come from this one listing."""
        return self.listing("tables")

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Let `con` read s3:// URIs through this store's pyarrow filesystem (no DuckDB extension to download)."""
        con.register_filesystem(self.duckdb_filesystem())

    def duckdb_filesystem(self) -> object:
        """This store as the fsspec filesystem DuckDB reads through: what DuckDB asks of a listed file (size, time,
        existence; ten HEAD requests a file per query) is answered from `tables`, and files opened for reading keep
        a position per thread (`PositionalFile`)."""
        try:
            from fsspec.implementations.arrow import ArrowFSWrapper
        except ImportError:
            raise IndexProblem(f"{self.uri}: DuckDB reads an index on S3 through fsspec: pip install 'dedup[s3]'") \
                from None
        known, base = self.tables, self.base + "/"

        class S3(ArrowFSWrapper):
            protocol = ("s3",)

            def info(self, path: str, **kwargs: object) -> dict:
                got = known.get(self._strip_protocol(path).removeprefix(base))
                if got is None:  # written since the listing, or not a table file
                    return super().info(path, **kwargs)
                return {"name": got.path, "size": got.size, "type": "file", "mtime": got.mtime}

            def modified(self, path: str) -> object:
                return self.info(path)["mtime"]

            def _open(self, path: str, mode: str = "rb", **kwargs: object) -> object:
                if mode != "rb":  # a plain session's COPY TO (`--allow-writes`)
                    return super()._open(path, mode, **kwargs)
                return PositionalFile(self.fs.open_input_file(self._strip_protocol(path)))

        return S3(self.fs)

    # -- manifests

    def manifests(self) -> list[str]:
        """The manifests present, oldest first."""
        return sorted(rel for rel in self.listing(MANIFESTS) if re.fullmatch(rf"{MANIFESTS}/\d{{10}}\.json", rel))

    def latest_manifest(self) -> tuple[str, dict]:
        """The URI and the JSON of the highest committed manifest; IndexNotFound if there is none."""
        names = self.manifests()
        if not names:
            raise IndexNotFound(f"{self.uri}: not a dedup index (no {MANIFESTS}/ under it)")
        try:
            return self.path(names[-1]), json.loads(self.read(names[-1]))
        except (OSError, ValueError) as e:
            raise IndexProblem(f"{self.path(names[-1])}: unreadable manifest: {e}") from e

    def commit_manifest(self, generation: int, data: bytes) -> None:
        """The commit point: create manifest `generation`, or raise IndexLocked if another writer committed it. A
        writer that ran across more than KEEP_MANIFESTS commits finds its generation's manifest removed, so its put
        succeeds: the listing after it shows the later ones, and it has committed nothing."""
        name = f"{MANIFESTS}/{generation:010d}.json"
        if not self.create(name, data):
            raise IndexLocked(f"{self.uri}: another writer committed generation {generation} while this one ran; "
                              "nothing was committed (run the command again: it starts from that commit)")
        try:
            names = self.manifests()
        except IndexProblem as e:
            raise CommitUnknown(f"{self.uri}: cannot tell whether {name} is the last commit ({e}); run the command "
                                "again") from None
        if names[-1] != name:
            self.delete([name])
            raise IndexLocked(f"{self.uri}: other writers committed up to {names[-1]} while this one ran (from "
                              f"generation {generation - 1}); nothing was committed (run the command again)")
        try:  # committed: the rest is best effort
            self.delete(names[:-KEEP_MANIFESTS])
        except (OSError, IndexProblem) as e:
            warnings.warn(f"{self.uri}: committed, but older manifests could not be removed: {e}", stacklevel=3)

    def remove_leftovers(self, listed: set[str], garbage: set[str], generation: int) -> None:
        """Delete table files no manifest lists that were written for a generation already committed (a killed or
        beaten writer's); files of later generations may be a running writer's."""
        gone = [rel for rel in self.tables if rel not in listed and rel not in garbage
                and (g := generation_of(rel)) is not None and g <= generation]
        self.delete(gone)
        for rel in gone:
            del self.tables[rel]
