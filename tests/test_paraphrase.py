"""The paraphrase encoder shipped in the package (`dedup.paraphrase`, all-MiniLM-L6-v2 in NumPy) on real sentences.

The reference vectors are sentence-transformers' own (torch, float32 weights), made once by
scripts/make_paraphrase_reference.py; the tests need neither torch nor ../shared.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dedup.paraphrase import DIMS, ENCODER, encoder

REFERENCE = Path(__file__).parent / "fixtures" / "paraphrase_reference.npz"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def vectors(reference: dict[str, np.ndarray]) -> np.ndarray:
    return encoder(ENCODER).encode(reference["sentences"].tolist())


def test_reproduces_sentence_transformers(reference: dict[str, np.ndarray], vectors: np.ndarray) -> None:
    assert vectors.dtype == np.float32 and vectors.shape == (len(reference["sentences"]), DIMS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    cos = (vectors * reference["vectors"]).sum(1)
    assert cos.min() >= 0.9999, reference["sentences"][cos.argmin()]
    # two whole articles: past the tokenizer.json's 128 tokens, and cut at the model's 256 as sentence-transformers
    lengths = [len(e.ids) for e in encoder(ENCODER).tokenizer.encode_batch(reference["sentences"].tolist())]
    assert max(lengths) == 256 and sorted(lengths)[-2] > 128


def test_a_rewritten_sentence_is_closest_to_its_original(reference: dict[str, np.ndarray],
                                                         vectors: np.ndarray) -> None:
    """L2R: a sentence of an LLM rewrite finds the sentence it rewrites among all of its original's sentences."""
    article, counterpart = reference["article"], reference["counterpart"]
    rewrites = np.flatnonzero(counterpart >= 0)
    assert len(rewrites) >= 10
    for i in rewrites:
        same_article = np.flatnonzero(article == article[counterpart[i]])
        closest = same_article[np.argmax(vectors[same_article] @ vectors[i])]
        assert closest == counterpart[i], (reference["sentences"][i], reference["sentences"][closest])


def test_a_sentence_vector_depends_on_that_sentence_alone(reference: dict[str, np.ndarray],
                                                           vectors: np.ndarray) -> None:
    """Pairs score the same whatever else is encoded in the process (local and Spark engines): bit for bit."""
    sentences = reference["sentences"].tolist()
    enc = encoder(ENCODER)
    alone = np.concatenate([enc.encode([s]) for s in sentences])
    assert np.array_equal(alone, vectors)
    twice = enc.encode(sentences[::-1] + sentences)  # more than one chunk, in another order
    assert np.array_equal(twice[len(sentences):], vectors) and np.array_equal(twice[:len(sentences)][::-1], vectors)
    assert np.array_equal(enc.encode(sentences[5:9]), vectors[5:9])
    # chunks on one thread or on several, BLAS single-threaded or not (a Spark executor's cores differ): the same
    assert np.array_equal(enc.encode(sentences[::-1] + sentences, threads=1), twice)
    assert np.array_equal(np.concatenate([enc._forward([np.array(e.ids, np.int64)]) for e in
                                          enc.tokenizer.encode_batch(sentences)]), vectors)


def test_empty_input_and_unknown_version() -> None:
    empty = encoder(ENCODER).encode([])
    assert empty.shape == (0, DIMS) and empty.dtype == np.float32
    with pytest.raises(ValueError, match="minilm-l6-v2-f16"):
        encoder("minilm-l6-v2-f32")


def test_runs_without_torch() -> None:
    code = ("import sys\n"
            "for m in ('torch', 'sentence_transformers', 'transformers', 'safetensors'): sys.modules[m] = None\n"
            "from dedup.paraphrase import ENCODER, encoder\n"
            "v = encoder(ENCODER).encode(['Patients and staff were evacuated.'])\n"
            "assert v.shape == (1, 384)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
