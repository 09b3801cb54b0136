"""`dedup report`: one self-contained HTML page that shows an index — its numbers, its stories and how they
grew, who copies whom, the near misses and the rejected rows.

Every figure is a DuckDB aggregate over the index's views, so the page costs the same few scans whatever the
index size; only the stories shown (the largest and the newest) are read document by document. The page works
offline: plotly.js (from the `plotly` package) is written into it, and its Content-Security-Policy forbids
every fetch and every script but the page's own (a nonce), so even a text that escaped escaping could not run.
"""

from __future__ import annotations

import html
import importlib.resources
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import markupsafe

from dedup.explain import Row, align, rows, visible
from dedup.query import Index

NEAR_MISS = 0.15    # pairs this far below verify_threshold are near misses
TOP_SOURCES = 15    # sources named in the matrix; the others are summed as "(other)"
STORIES = 10        # largest and newest stories shown
MEMBERS = 25        # members listed per story
PASSAGES = 60       # rows of a side-by-side view
ALIGN_CHARS = 50_000  # characters of each text aligned for a side-by-side view
MAX_BARS = 120      # batches drawn one by one; more are drawn by week


@dataclass(frozen=True)
class Member:
    doc_id: str
    title: str | None
    source: str | None
    url: str | None
    published_at: str | None
    representative: bool
    score: float | None   # the stored pair score against the representative (None: joined through others)


@dataclass
class Story:
    cluster_id: int
    size: int
    title: str | None
    first_published: str | None
    sources: int
    members: list[Member]
    compared: Member | None = None            # the member shown beside the representative
    side_by_side: list[Row] = field(default_factory=list)
    more_rows: int = 0


@dataclass
class ReportResult:
    output: str
    bytes: int
    seconds: float
    documents: int


def _one(ix: Index, q: str, params: dict | None = None) -> dict:
    return ix.sql(q, params).to_pylist()[0]


def _headline(ix: Index) -> dict:
    p = ix.params
    h = _one(ix, "SELECT count(*) AS documents, count(DISTINCT source) AS sources, "
                 "strftime(min(published_at), '%Y-%m-%d') AS first, strftime(max(published_at), '%Y-%m-%d') AS last "
                 "FROM documents")
    h |= _one(ix, "SELECT count(DISTINCT cluster_id) AS stories, count(*) AS in_stories, "
                  "coalesce(max(size), 0) AS largest FROM clusters WHERE size >= 2")
    h |= _one(ix, "SELECT count(*) AS pairs, count(*) FILTER (WHERE linked) AS linked, "
                  "count(*) FILTER (WHERE NOT linked AND score >= $lo) AS near_misses FROM pairs",
              {"lo": p.verify_threshold - NEAR_MISS})
    h |= _one(ix, "SELECT (SELECT count(*) FROM rejected) AS rejected, (SELECT count(*) FROM batches) AS batches")
    return h


def _charts(ix: Index) -> dict:
    """The data of every chart, aggregated in DuckDB."""
    p = ix.params
    sizes = ix.sql("SELECT size, count(DISTINCT cluster_id) AS stories FROM clusters WHERE size >= 2 "
                   "GROUP BY size ORDER BY size").to_pydict()
    scores = ix.sql("SELECT round(floor(score * 50) / 50, 2) AS bin, linked, count(*) AS n FROM pairs "
                    "WHERE score IS NOT NULL GROUP BY ALL ORDER BY bin").to_pylist()
    # who publishes a story first (its representative: the earliest document) and who follows
    follow = ix.sql("""
        WITH m AS (SELECT c.cluster_id, coalesce(d.source, '(no source)') AS source, c.doc_id = c.representative AS rep
                   FROM clusters c JOIN documents d USING (doc_id) WHERE c.size >= 2),
             top AS (SELECT source FROM m GROUP BY source ORDER BY count(*) DESC, source LIMIT $top),
             named AS (SELECT cluster_id, rep, CASE WHEN source IN (SELECT source FROM top) THEN source
                              ELSE '(other)' END AS source FROM m)
        SELECT f.source AS first, o.source AS follower, count(*) AS n
        FROM named f JOIN named o ON o.cluster_id = f.cluster_id AND NOT o.rep
        WHERE f.rep GROUP BY ALL""", {"top": TOP_SOURCES}).to_pylist()
    names = sorted({r["first"] for r in follow} | {r["follower"] for r in follow},
                   key=lambda s: (s == "(other)", -sum(r["n"] for r in follow if s in (r["first"], r["follower"])), s))
    pos = {s: i for i, s in enumerate(names)}
    matrix: list[list[int | None]] = [[None] * len(names) for _ in names]  # None: no such story (drawn blank)
    for r in follow:
        matrix[pos[r["first"]]][pos[r["follower"]]] = r["n"]
    # one bar per batch; by week when there are more batches than bars fit (years of nightly runs)
    weekly = _one(ix, "SELECT count(*) > $most AS w FROM batches", {"most": MAX_BARS})["w"]
    events = ix.sql("""SELECT CASE WHEN $weekly THEN strftime(date_trunc('week', b.finished_at), 'week of %Y-%m-%d')
                                   ELSE '#' || e.batch || coalesce(strftime(b.finished_at, ' %Y-%m-%d %H:%M'), '')
                              END AS label, min(e.batch) AS first, e.kind, count(*) AS n
                       FROM cluster_events e LEFT JOIN batches b USING (batch) GROUP BY label, e.kind
                       ORDER BY first, label""", {"weekly": weekly}).to_pylist()
    return {"sizes": sizes, "scores": scores, "threshold": p.verify_threshold,
            "near_miss": p.verify_threshold - NEAR_MISS, "sources": names, "matrix": matrix, "events": events}


def _stories(ix: Index, order: str) -> list[Story]:
    """The STORIES stories first in `order`, with up to MEMBERS members each."""
    heads = ix.sql(f"""SELECT cluster_id, size, title, strftime(first_published, '%Y-%m-%d') AS first_published,
                              sources, representative FROM cluster_summary ORDER BY {order} LIMIT $n""",
                   {"n": STORIES}).to_pylist()
    if not heads:
        return []
    members = ix.sql("""
        WITH m AS (SELECT c.cluster_id, c.doc_id, c.representative, c.doc_id = c.representative AS rep,
                          row_number() OVER (PARTITION BY c.cluster_id ORDER BY c.doc_id = c.representative DESC,
                                             d.published_at NULLS LAST, c.doc_id) AS k,
                          d.title, d.source, d.url, strftime(d.published_at, '%Y-%m-%d') AS published_at
                   FROM clusters c JOIN documents d USING (doc_id) WHERE list_contains($ids, c.cluster_id))
        SELECT m.*, p.score FROM m LEFT JOIN pairs p
          ON (p.doc_a = least(m.doc_id, m.representative) AND p.doc_b = greatest(m.doc_id, m.representative))
        WHERE k <= $k ORDER BY cluster_id, k""",
                     {"ids": [h["cluster_id"] for h in heads], "k": MEMBERS}).to_pylist()
    by_story: dict[int, list[Member]] = {}
    for r in members:
        by_story.setdefault(r["cluster_id"], []).append(
            Member(r["doc_id"], r["title"], r["source"], r["url"], r["published_at"], r["rep"],
                   None if r["rep"] else r["score"]))
    return [Story(h["cluster_id"], h["size"], h["title"], h["first_published"], h["sources"],
                  by_story.get(h["cluster_id"], [])) for h in heads]


def _side_by_side(ix: Index, stories: list[Story]) -> None:
    """Each story's representative beside its first follower, passage by passage (texts of these documents
    only are read)."""
    pairs = {s.cluster_id: (s.members[0], s.members[1]) for s in stories if len(s.members) >= 2}
    ids = sorted({m.doc_id for two in pairs.values() for m in two})
    texts = {r["doc_id"]: r["text"] for r in ix.sql(
        "SELECT doc_id, text FROM documents WHERE list_contains($ids, doc_id)", {"ids": ids}).to_pylist()}
    for s in stories:
        if s.cluster_id not in pairs:
            continue
        rep, other = pairs[s.cluster_id]
        ta, tb = texts.get(rep.doc_id), texts.get(other.doc_id)
        if ta is None or tb is None:  # stored without text
            continue
        # the view shows PASSAGES rows: the start of a very long text is enough, and aligning all of two 5 MB
        # texts would cost more than the rest of the report
        view = rows(align(ta[:ALIGN_CHARS], tb[:ALIGN_CHARS], ix.params.verifier))
        s.compared, s.side_by_side, s.more_rows = other, view[:PASSAGES], max(0, len(view) - PASSAGES)


def _rejected(ix: Index) -> tuple[list[dict], list[dict]]:
    summary = ix.sql("SELECT reason, field, count(*) AS n FROM rejected GROUP BY ALL ORDER BY n DESC, reason, field "
                     "LIMIT 50").to_pylist()
    sample = ix.sql("SELECT batch, file, line, doc_id, field, reason, detail FROM rejected "
                    "ORDER BY batch DESC, file, line LIMIT 20").to_pylist()
    return summary, sample


def _near_misses(ix: Index) -> list[dict]:
    p = ix.params
    return ix.sql("""WITH n AS (SELECT doc_a, doc_b, score, aligned, jaccard FROM pairs
                                WHERE NOT linked AND score >= $lo ORDER BY score DESC, doc_a, doc_b LIMIT 20)
                     SELECT n.*, a.title AS title_a, a.source AS source_a, b.title AS title_b, b.source AS source_b
                     FROM n LEFT JOIN documents a ON a.doc_id = n.doc_a LEFT JOIN documents b ON b.doc_id = n.doc_b
                     ORDER BY n.score DESC, n.doc_a, n.doc_b""",
                  {"lo": p.verify_threshold - NEAR_MISS}).to_pylist()


def _finalize(value: object) -> object:
    """Every value the template prints: strings with their control and bidi characters written out (autoescape
    then escapes the markup); the template's own markup (`tojson`, the script) passes as it is."""
    if isinstance(value, markupsafe.Markup):
        return value
    return visible(value) if isinstance(value, str) else ("" if value is None else value)


def _safe_url(url: str | None) -> str | None:
    """Only http(s) addresses become links: a `javascript:` or `data:` URL in a document stays text."""
    return url if url and url.lower().startswith(("http://", "https://")) else None


def _plot_text(s: str | None) -> str:
    """A label for plotly, which reads a few HTML tags in its strings: entities make it draw them as text."""
    return html.escape(visible(s or ""), quote=False)


def render(ix: Index, index_path: str) -> str:
    """The report of an index as one HTML string."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("dedup", "templates"), autoescape=True,
                             finalize=_finalize, undefined=jinja2.StrictUndefined)
    env.filters["safe_url"] = _safe_url
    charts = _charts(ix)
    charts["sources"] = [_plot_text(s) for s in charts["sources"]]
    largest = _stories(ix, "size DESC, cluster_id")
    newest = _stories(ix, "first_published DESC NULLS LAST, cluster_id DESC")
    _side_by_side(ix, largest + [s for s in newest if s.cluster_id not in {x.cluster_id for x in largest}])
    shown = {s.cluster_id: s for s in largest}
    newest = [shown.get(s.cluster_id, s) for s in newest]
    summary, sample = _rejected(ix)
    plotly_js = (importlib.resources.files("plotly") / "package_data" / "plotly.min.js").read_text("utf-8")
    return env.get_template("report.html.j2").render(
        index=index_path, generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        head=_headline(ix), charts=charts, largest=largest, newest=newest, near_misses=_near_misses(ix),
        rejected_summary=summary, rejected_sample=sample, params=ix.params.to_dict(), near_miss=NEAR_MISS,
        plotly_js=plotly_js.replace("</", "<\\/"), nonce=secrets.token_urlsafe(16))


def write_report(index: str | os.PathLike, output: str | os.PathLike) -> ReportResult:
    """Write the report of `index` to `output` (one HTML file, written whole then renamed into place)."""
    start = time.perf_counter()
    ix = Index(index)
    page = render(ix, str(index))
    out = Path(output)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    docs = _one(ix, "SELECT count(*) AS n FROM documents")["n"]
    return ReportResult(str(out), out.stat().st_size, time.perf_counter() - start, docs)

