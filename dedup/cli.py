"""The `dedup` command line: thin click commands over the library (see `dedup/__init__.py`).

Exit codes (documented in the README): 0 success; 1 internal error; 2 usage error; 3 partial success (some
input rows rejected, everything else committed); 4 index locked by another writer; 5 index problem (missing,
not an index, unsupported version, parameter mismatch); 6 --strict stopped at a bad row (nothing committed);
7 I/O failure while writing (disk full, read-only) or out of memory, index unchanged; 130 interrupted (Ctrl-C),
nothing committed.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.parquet as pq

from dedup.engines import ENGINES
from dedup.ingest import StrictError, ingest
from dedup.params import SHINGLE_KINDS, VERIFIERS, ParamsError
from dedup.query import Index, SQLRefused
from dedup.readers import FieldMap, InputError
from dedup.errors import DocumentNotFound, IndexLocked, IndexProblem
from dedup.kernel_cache import kernels_cached
from dedup.progress import TerminalProgress
from dedup.runtime import prepare_process
from dedup.windows import RETIRED

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_PARTIAL, EXIT_LOCKED, EXIT_INDEX, EXIT_STRICT, EXIT_IO = range(8)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C
log = logging.getLogger("dedup")


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def _fail(message: str, code: int) -> None:
    click.echo(f"dedup: error: {message}", err=True)
    sys.exit(code)


def _out_of_memory(e: BaseException) -> bool:
    """Did `e` come from memory (or address space, which every new thread's stack takes) running out?"""
    import duckdb

    return (isinstance(e, (MemoryError, duckdb.OutOfMemoryException))
            or isinstance(e, RuntimeError) and "can't start new thread" in str(e))


def _guard(fn: Callable) -> Callable:
    """Turn expected failures into one clear line and a documented exit code, never a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except IndexLocked as e:
            _fail(str(e), EXIT_LOCKED)
        except (IndexProblem, ParamsError) as e:
            # the index could not be written (read-only, full disk, no permission): an I/O failure, not a bad index
            io_failure = isinstance(e.__cause__, OSError) and e.__cause__.errno in _WRITE_ERRNOS
            _fail(f"{e}; the index is unchanged" if io_failure else str(e), EXIT_IO if io_failure else EXIT_INDEX)
        except InputError as e:
            _fail(str(e), EXIT_USAGE)
        except StrictError as e:
            _fail(f"--strict: stopped at {e}; nothing from this batch was committed", EXIT_STRICT)
        except DocumentNotFound as e:
            _fail(str(e), EXIT_USAGE)
        except KeyError as e:
            _fail(f"not found: {e.args[0]}", EXIT_USAGE)
        except KeyboardInterrupt:
            # a person presses again while Python winds down (seconds under load): not a reason to die by SIGINT
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            _fail("interrupted; nothing was committed (the index is as it was before this command)",
                  EXIT_INTERRUPTED)
        except BrokenPipeError:  # whoever read stdout stopped (`dedup clusters | head`): not a failure
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush on exit
            sys.exit(EXIT_OK)
        except OSError as e:
            _fail(f"I/O error: {e}; the index is unchanged", EXIT_IO)
        except (click.ClickException, click.exceptions.Exit):
            raise
        except Exception as e:  # noqa: BLE001 - last line of defence for a nightly job
            if _out_of_memory(e):
                _fail(f"out of memory ({type(e).__name__}: {e}); the index is unchanged. Allow the process more "
                      "memory (ulimit -v, container limit) or ingest smaller files", EXIT_IO)
            if os.environ.get("DEDUP_DEBUG"):
                raise
            _fail(f"internal error ({type(e).__name__}: {e}); set DEDUP_DEBUG=1 for a traceback", EXIT_INTERNAL)
        return None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dedup")
@click.option("-v", "--verbose", is_flag=True, help="Also log each stage's seconds.")
@click.option("-q", "--quiet", is_flag=True, help="Log only warnings (rejected rows, dropped dates) and errors.")
def main(verbose: bool, quiet: bool) -> None:
    """Find copies of the same news story: rewritten, abridged, machine-translated."""
    prepare_process()
    _setup_logging(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


def _setup_logging(level: int) -> None:
    """dedup's messages go to stderr through the `dedup` logger, one line each, prefixed `dedup:`."""
    handler = logging.StreamHandler(sys.stderr)  # the stream of this invocation (click's test runner swaps it)
    handler.setFormatter(logging.Formatter("dedup: %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(level)


_index_opt = click.option("--index", "index", required=True, type=click.Path(file_okay=False), envvar="DEDUP_INDEX",
                          show_envvar=True,
                          help="Index directory, or s3://bucket/prefix for an index on S3 (default: $DEDUP_INDEX).")


@main.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@_index_opt
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object to stdout.")
@click.option("--strict", is_flag=True, help="Stop at the first bad row and commit nothing.")
@click.option("--no-store-text", is_flag=True, help="Do not keep document texts in the index.")
@click.option("--store-signatures", is_flag=True,
              help="Keep each document's MinHash values in `signatures` (for datasketch; 0.7 KB a document).")
@click.option("--max-chars", type=click.IntRange(min=1), default=5_000_000, show_default=True,
              help="Reject longer texts (too_long).")
@click.option("--id-field", default="id", show_default=True)
@click.option("--text-field", default="text", show_default=True)
@click.option("--title-field", default="title", show_default=True)
@click.option("--source-field", default="source", show_default=True)
@click.option("--url-field", default="url", show_default=True)
@click.option("--published-at-field", default="published_at", show_default=True)
@click.option("--lang-field", default="lang", show_default=True)
@click.option("--delimiter", help="Field separator of CSV files (default: a tab in .tsv files, else a comma).")
@click.option("--date-format", help="strptime format of published_at (e.g. '%d %b %Y, %H:%M'), tried before the "
                                    "forms read without it (ISO 8601, RFC 2822, 2017/2/7, 07.02.2017, epoch seconds, "
                                    "Feb 7, 2017; see README).")
@click.option("--shingle", type=click.Choice(SHINGLE_KINDS),
              help="[new index] shingle kind (default pair: unordered pairs of nearby content-word stems).")
@click.option("--lead-words", type=int, help="[new index] words of the lead that get their own bands (0 = none).")
@click.option("--min-bands", type=int, help="[new index] bands a pair must share to become a candidate.")
@click.option("--shingle-size", type=int, help="[new index] shingle size n.")
@click.option("--num-perm", type=int, help="[new index] MinHash permutations.")
@click.option("--seed", type=int, help="[new index] MinHash seed.")
@click.option("--threshold", type=float, help="[new index] LSH Jaccard threshold (bands x rows follow).")
@click.option("--bands", type=int, help="[new index] explicit number of bands (with --rows).")
@click.option("--rows", type=int, help="[new index] explicit rows per band (with --bands).")
@click.option("--anchor-bands", type=int, help="[new index] bands over the MinHash of the anchors (0 = none).")
@click.option("--verifier", type=click.Choice(VERIFIERS),
              help="[new index] v10 (default: v9, whose caps for short texts do not hold down a verbatim excerpt "
                   "of the other text), v9 (v8, whose second trees also decide the copy rule's links that the "
                   "caps for short texts hold down), v8 (v7, whose copy-rule links of short texts the first trees "
                   "find unlike any copy are dropped as templated reports, and whose second trees' cut admits "
                   "more), v7 (v6, whose pairs near the trees' cut second trees decide that also read a "
                   "paraphrase encoder), v6 (v5, whose caps for short texts hold down only the copy rule), v5 "
                   "(copy rule + rewrite trees that also read where sentences sit and the words shared), v4 (+ "
                   "rewrite trees), v3 (+ rewrite regression), v2 (copy rule).")
@click.option("--window", "window_days", callback=lambda _c, _p, v: None if v is None else _window(v),
              help="[new index] link only documents dated at most this far apart (30d, 4w); see README, Time "
                   "windows.")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="Where the batch runs: this machine, or Spark (pip install 'dedup[spark]').")
@click.option("--spark-master", help="With --engine spark: the master URL (local[2], yarn, spark://...); default: "
                                     "Spark's configuration, else local[*].")
@_guard
def ingest_cmd(paths: tuple[str, ...], index: str, as_json: bool, strict: bool, no_store_text: bool,
               store_signatures: bool, max_chars: int, engine: str, spark_master: str | None, **opts: object
               ) -> None:
    """Add PATHS (JSONL[.gz|.zst], CSV, Parquet, .txt files or directories of them) to the index as one batch.

    \b
    Examples:
      dedup ingest data/ --index idx
      dedup ingest night-2026-11-21.jsonl.gz --index /srv/news-idx --json
      dedup ingest feed.csv --index idx --id-field guid --text-field body --strict
      dedup ingest "scrapes/2026 11 21/" --index idx --max-chars 200000

    \b
    Bad rows and files are skipped and listed on stderr as file:line: field reason: detail, and kept in
    the `rejected` table. Exit codes: 0 all rows used, 3 some rejected (the rest committed), 6 --strict
    stopped at a bad row (nothing committed), 7 write failure (index unchanged).
    """
    fields = FieldMap(**{k[:-6]: opts.pop(k) for k in list(opts) if k.endswith("_field")},  # type: ignore[arg-type]
                      date_format=opts.pop("date_format"), delimiter=opts.pop("delimiter"))  # type: ignore[arg-type]
    requested = {k: v for k, v in opts.items() if v is not None}
    if ("bands" in requested) != ("rows" in requested):
        raise click.UsageError("--bands and --rows go together")
    # a bar and a line per stage for a person at a terminal; never in a log
    progress = TerminalProgress() if sys.stderr.isatty() and log.isEnabledFor(logging.INFO) else None
    if not kernels_cached(Path(__file__).parent):
        log.info("compiling numba kernels, once after an install or update (~60 CPU-seconds, on two cores); "
                 "later runs load them from dedup/__pycache__")

    s = ingest(list(paths), index, requested=requested, fields=fields, store_text=not no_store_text,
               store_signatures=store_signatures, strict=strict, max_chars=max_chars, progress=progress,
               engine=engine, spark_master=spark_master)
    # every whole-file problem, and the first 50 rejected rows: a nightly log must not lose an unreadable file
    # behind thousands of bad rows
    shown = 0
    for r in s.rejections:
        if r.line is None or shown < 50:
            log.warning("rejected: %s", r.message())
            shown += r.line is not None
    if s.rejected > shown:
        log.warning("... and %d more rejected rows (see the `rejected` table)", s.rejected - shown)
    if s.flags.get("bad_published_at"):
        log.warning("published_at of %s documents is not a date dedup reads and was left empty (flag "
                    "bad_published_at), e.g. %s; give its form with --date-format",
                    f"{s.flags['bad_published_at']:,}", "; ".join(s.dropped_dates))
    if s.flags.get(RETIRED):
        log.info("%s documents are dated before the index's retirement cutoff (dedup retire): indexed without "
                 "buckets, never matched (flag %s)", f"{s.flags[RETIRED]:,}", RETIRED)
    if getattr(s, "stale_lock", None):
        log.warning("note: a previous writer did not exit cleanly (%s); its leftover files were removed", s.stale_lock)
    log.debug("stage seconds: %s", ", ".join(f"{k} {v:.2f}" for k, v in s.timings.items()))
    if as_json:
        click.echo(json.dumps(s.to_json()))
    else:
        log.info("batch %d: read %d, indexed %d (new %d, replaced %d), unchanged %d, rejected %d, file errors %d; "
                 "%d linked pairs; %d clusters of 2+ among %d documents; %.1fs", s.batch, s.read, s.indexed, s.new,
                 s.replaced, s.unchanged, s.rejected, s.file_errors, s.linked, s.clusters, s.documents, s.seconds)
    if s.rejected or s.file_errors:
        sys.exit(EXIT_PARTIAL)


def _window(text: str) -> int:
    from dedup.windows import parse_window

    try:
        return parse_window(text)
    except InputError as e:
        raise click.BadParameter(str(e)) from None


def _write_rows(table: pa.Table, path: str) -> None:
    ext = Path(path).suffix.lower()
    if ext == ".parquet":
        pq.write_table(table, path)
    elif ext == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(table.column_names)
            w.writerows(zip(*(c.to_pylist() for c in table.columns)))
    elif ext in (".jsonl", ".json"):
        with open(path, "w", encoding="utf-8") as f:
            for row in table.to_pylist():
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    else:
        raise click.UsageError(f"--output {path}: use .parquet, .csv or .jsonl")


@main.command("clusters")
@_index_opt
@click.option("--min-size", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="Clusters to print (0: all).")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Instead of printing, write doc_id, cluster_id of EVERY document (.parquet, .csv or .jsonl).")
@_guard
def clusters_cmd(index: str, min_size: int, limit: int, output: str | None) -> None:
    """Print the largest clusters with titles and sources, or write every document's cluster to a file."""
    ix = Index(index)
    if output:
        assignments = ix.assignments()
        _write_rows(assignments, output)
        click.echo(f"wrote {assignments.num_rows:,} assignments to {output}", err=True)
        return
    rows = ix.clusters(min_size=min_size, limit=limit or None).to_pylist()
    current = None
    for r in rows:
        if r["cluster_id"] != current:
            current = r["cluster_id"]
            click.echo(f"\ncluster {current}  ({r['size']} documents)")
        mark = "*" if r["is_representative"] else " "
        when = r["published_at"].date().isoformat() if r["published_at"] else "-"
        click.echo(f"  {mark} {r['doc_id']}  [{r['source'] or '-'}, {when}]  {r['title'] or ''}")
    if not rows:
        click.echo(f"no clusters with {min_size}+ documents")


@main.command("similar")
@_index_opt
@click.option("--id", "doc_id", help="An indexed document id.")
@click.option("--text-file", type=click.File("rb"), help="A UTF-8 text file ('-' for stdin).")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "tsv", "json", "jsonl"]), default="table",
              show_default=True, help="json: one array of rows; jsonl: one row a line.")
@_guard
def similar_cmd(index: str, doc_id: str | None, text_file: object, limit: int, fmt: str) -> None:
    """Near-duplicates of a document, with verification scores (`linked` = counted as a copy)."""
    if (doc_id is None) == (text_file is None):
        raise click.UsageError("give exactly one of --id or --text-file")
    text = None
    if text_file is not None:
        data = text_file.read()  # type: ignore[attr-defined]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            _fail(f"--text-file {text_file.name}: not UTF-8 text (byte {e.start:,}); "  # type: ignore[attr-defined]
                  "give the article as a UTF-8 text file", EXIT_USAGE)
        if "\x00" in text:
            _fail(f"--text-file {text_file.name}: binary data (NUL characters), not an article's text",  # type: ignore[attr-defined]
                  EXIT_USAGE)
    _print_table(Index(index).similar(doc_id=doc_id, text=text, limit=limit), fmt)


@main.command("sql")
@_index_opt
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "tsv", "json", "jsonl"]), default="table",
              show_default=True, help="json: one document (an array of rows; with several statements, an array of "
                                      "such arrays); jsonl: one row a line.")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Write the (last statement's) result to this file (.parquet, .csv or .jsonl; not inside the index).")
@click.option("--allow-writes", is_flag=True,
              help="A plain DuckDB session: any statement, any file (COPY TO, ATTACH, ...), the index's own too.")
@_guard
def sql_cmd(index: str, query: str, fmt: str, output: str | None, allow_writes: bool) -> None:
    """Run QUERY over the index views (documents, signatures, buckets, pairs, clusters, cluster_summary, ...).

    QUERY may hold several statements separated by `;`: each one's rows are printed in turn. Only queries run,
    and they read the index's current files and no other file (exit 2 otherwise)."""
    import duckdb

    try:
        statements = [st.query for st in duckdb.extract_statements(query)]
    except duckdb.Error as e:
        _fail(f"SQL error: {e}", EXIT_USAGE)
    if not statements:
        _fail("no SQL statement given", EXIT_USAGE)
    ix = Index(index, allow_writes=allow_writes)
    if output and isinstance(ix.snapshot.root, Path) and Path(output).resolve().is_relative_to(ix.snapshot.root):
        raise click.UsageError(f"--output {output}: inside the index directory; write it elsewhere")
    results = []
    for i, statement in enumerate(statements, 1):
        where = f" in statement {i} of {len(statements)}" if len(statements) > 1 else ""
        try:
            results.append(ix.sql(statement))
        except SQLRefused as e:
            _fail(f"{e}{where}", EXIT_USAGE)
        except duckdb.OutOfMemoryException:
            raise  # not the query's fault: exit 7 (see _guard)
        except duckdb.PermissionException as e:
            _fail(f"SQL error{where}: {e} (queries read only the index's current files; see --allow-writes)",
                  EXIT_USAGE)
        except duckdb.Error as e:
            _fail(f"SQL error{where}: {e}", EXIT_USAGE)
    if output:
        _write_rows(results[-1], output)
        click.echo(f"wrote {results[-1].num_rows} rows to {output}", err=True)
        return
    if fmt == "json" and len(results) > 1:  # still one document
        click.echo(json.dumps([t.to_pylist() for t in results], ensure_ascii=False, default=_json_value))
        return
    for i, table in enumerate(results):
        if i and fmt in ("table", "csv", "tsv"):
            click.echo("")
        _print_table(table, fmt)


@main.command("export")
@_index_opt
@click.option("--output", required=True, type=click.Path(dir_okay=False),
              help="The file to write: .jsonl, .parquet, .csv or .tsv.")
@click.option("--representatives/--all", default=True, show_default=True,
              help="One document per story (its representative: earliest published, then smallest id), or all.")
@click.option("--with-text", is_flag=True, help="Add each document's text.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object to stdout.")
@_guard
def export_cmd(index: str, output: str, representatives: bool, with_text: bool, as_json: bool) -> None:
    """Write the corpus without its copies (or every document with its story): doc_id, cluster_id,
    cluster_size, is_representative, title, source, url, published_at, lang[, text]. Streams in batches."""
    from dedup.export import export

    r = export(index, output, representatives=representatives, with_text=with_text)
    if as_json:
        click.echo(json.dumps(r.to_json()))
    click.echo(f"wrote {r.rows:,} documents ({r.stories:,} stories in the index) to {r.output}", err=True)


@main.command("stats")
@_index_opt
@click.option("--json", "as_json", is_flag=True)
@_guard
def stats_cmd(index: str, as_json: bool) -> None:
    """Documents, clusters, pairs, parameters and on-disk size."""
    st = Index(index).stats()
    if as_json:
        click.echo(json.dumps(st))
        return
    for k, v in st.items():
        if k != "params":
            click.echo(f"{k:20} {v:,}" if isinstance(v, int) else f"{k:20} {v}")
    click.echo("params              " + ", ".join(f"{k}={v}" for k, v in st["params"].items()))


@main.command("compact")
@_index_opt
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object to stdout.")
@_guard
def compact_cmd(index: str, as_json: bool) -> None:
    """Merge the many small Parquet files that nightly batches leave into few sorted files.

    Takes the writer lock (exit 4 if another writer holds it) and commits atomically; every query result stays
    the same. Old files are deleted by a later writer after a grace period, so open readers keep working.
    """
    from dedup.store import compact

    r = compact(index)
    if as_json:
        click.echo(json.dumps(r.to_json()))
    else:
        what = ", ".join(r.tables) if r.tables else "nothing to do"
        click.echo(f"compacted {r.files_before} files into {r.files_after} ({what}); {r.seconds:.1f}s", err=True)


@main.command("retire")
@_index_opt
@click.option("--before", required=True, help="A date (2025-01-01, or any form of published_at): documents dated "
                                               "before it are retired.")
@click.option("--purge", is_flag=True, help="Remove the old documents entirely: texts, pairs, cluster rows.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object to stdout.")
@_guard
def retire_cmd(index: str, before: str, purge: bool, as_json: bool) -> None:
    """Stop matching documents dated before --before (their buckets go); with --purge remove them entirely.

    A document's date is its published_at, else the start of the batch that indexed it. The date is recorded
    with the index (it only moves forward): later batches index older documents without buckets, or after
    --purge reject them (purged_date). One atomic commit under the writer lock (exit 4 if another writer holds
    it); killed at any point, the index stays as it was.
    """
    from dedup.dates import parse_date
    from dedup.retire import retire

    try:
        cutoff = parse_date(before)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--before") from None
    r = retire(index, cutoff, purge)
    if as_json:
        click.echo(json.dumps(r.to_json()))
    else:
        what = f", {r.pairs:,} pairs; {r.clusters:,} stories lost members" if purge else ""
        click.echo(f"{'purged' if purge else 'retired'} {r.documents:,} documents dated before {r.before} "
                   f"({r.bucket_rows:,} bucket rows{what}); {r.seconds:.1f}s", err=True)
        recorded = r.purged_before if purge else r.retired_before
        if recorded != r.before:  # an earlier date does not move the recorded one back
            click.echo(f"the index keeps its later cutoff: {'purged' if purge else 'retired'} before {recorded}",
                       err=True)


@main.command("check")
@_index_opt
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report object to stdout.")
@_guard
def check_cmd(index: str, as_json: bool) -> None:
    """Check that every file the manifest lists is present and matches its size and checksum, and that the tables
    agree with each other (ids, row counts). Exit 5 naming each bad file; takes no lock."""
    from dedup.check import check_index

    r = check_index(index)
    if as_json:
        click.echo(json.dumps(r.to_json()))
    for p in r.problems:
        click.echo(f"dedup: damaged: {p}", err=True)
    if not as_json:
        click.echo(f"{index}: {r.files} files ({r.files_with_checksum} with checksums), "
                   f"{len(r.problems)} problems; {r.seconds:.1f}s", err=True)
    if r.problems:
        sys.exit(EXIT_INDEX)


@main.command("upgrade")
@_index_opt
@_guard
def upgrade_cmd(index: str) -> None:
    """Convert an index written by an older dedup to the current format (one atomic commit, under the writer
    lock; exit 4 if another writer holds it)."""
    from dedup.params import FORMAT_VERSION
    from dedup.store import upgrade

    old = upgrade(index)
    click.echo(f"{index}: format version {old} → {FORMAT_VERSION}" if old != FORMAT_VERSION
               else f"{index}: at format version {FORMAT_VERSION}, every file with a checksum", err=True)


@main.command("explain")
@_index_opt
@click.argument("id_a")
@click.argument("id_b", required=False)
@click.option("--text-file", type=click.File("r", encoding="utf-8"),
              help="Compare ID_A with this text instead of an indexed document ('-' for stdin).")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as one JSON object.")
@click.option("--color/--no-color", default=None, help="Colour the passages (default: when stdout is a terminal).")
@_guard
def explain_cmd(index: str, id_a: str, id_b: str | None, text_file: object, as_json: bool, color: bool | None
                ) -> None:
    """Why ID_A and ID_B (or a text) are one story or not: each stage's decision and the two texts side by side,
    matched passages with their scores."""
    import shutil

    from dedup.explain import explain, render_text

    if (id_b is None) == (text_file is None):
        raise click.UsageError("give exactly one of ID_B or --text-file")
    text = text_file.read() if text_file is not None else None  # type: ignore[attr-defined]
    e = explain(index, id_a, id_b, text)
    if as_json:
        click.echo(json.dumps(e.to_json(), ensure_ascii=False))
    else:
        click.echo(render_text(e, shutil.get_terminal_size((120, 40)).columns), color=color)


@main.command("report")
@_index_opt
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@_guard
def report_cmd(index: str, output: str) -> None:
    """Write one self-contained HTML page (works offline) showing the index: numbers, charts, stories side by
    side, near misses and rejected rows."""
    from dedup.report import write_report

    r = write_report(index, output)
    click.echo(f"wrote {r.output} ({r.bytes / 1e6:.1f} MB, {r.documents:,} documents) in {r.seconds:.1f}s", err=True)


def _json_value(v: object) -> object:
    """JSON for what SQL returns beyond JSON's types: dates and times in ISO 8601, anything else as text."""
    return v.isoformat() if hasattr(v, "isoformat") else str(v)


def _print_table(table: pa.Table, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(table.to_pylist(), ensure_ascii=False, default=_json_value))
        return
    if fmt == "jsonl":
        for row in table.to_pylist():
            click.echo(json.dumps(row, ensure_ascii=False, default=_json_value))
        return
    if fmt in ("csv", "tsv"):
        w = csv.writer(sys.stdout, delimiter="," if fmt == "csv" else "\t")
        w.writerow(table.column_names)
        w.writerows(zip(*(c.to_pylist() for c in table.columns)))
        return
    cols = table.column_names
    rows = [["" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)) for v in r]
            for r in zip(*(c.to_pylist() for c in table.columns))]
    width = [min(60, max([len(c)] + [len(r[i]) for r in rows])) for i, c in enumerate(cols)]
    click.echo("  ".join(c.ljust(width[i]) for i, c in enumerate(cols)))
    click.echo("  ".join("-" * w for w in width))
    for r in rows:
        click.echo("  ".join(v[:60].ljust(width[i]) for i, v in enumerate(r)))
    click.echo(f"({len(rows)} rows)")


if __name__ == "__main__":
    main()


def run() -> None:
    """The `dedup` console command: `main`, then leave without tearing the interpreter down. Every file is
    closed and every commit made by then; what finalization would still do — free each module and collect the
    objects numba and scipy made — took 0.6 s after each command's work was done."""
    try:
        main()  # click's standalone mode always ends in SystemExit
        code: int | str | None = 0
    except SystemExit as e:
        code = e.code
    if isinstance(code, str):
        click.echo(code, err=True)
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # stdout closed early (`dedup clusters | head`): nothing more can be said
        pass
    os._exit(code or 0)
