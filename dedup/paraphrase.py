"""A paraphrase sentence encoder (all-MiniLM-L6-v2) run in NumPy, for telling LLM rewrites from other reports.

GloVe means (`dedup.embed`) see that two sentences share a topic; a sentence encoder trained on a billion paraphrase
pairs also sees that they say the same thing in other words, which is what an LLM rewrite does and another
outlet's report on the same event does not. The model is sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0; see
docs/rewrites.md), shipped as float16 weights with its tokenizer in `dedup/data/paraphrase-<version>.npz` (made by
scripts/make_paraphrase_encoder.py): no download, and no torch at run time, only NumPy and Hugging Face's
`tokenizers` for the WordPiece the model was trained with.

Vectors must be bit-identical for the same sentence whatever else is encoded (pairs score the same in the local
and Spark engines), so nothing is padded: the dense layers run over the chunk's tokens packed row after row (BLAS
computes a row's product the same whatever the other rows; tests/test_paraphrase.py checks it bit for bit),
attention over runs of sentences of the same length, and pooling over each sentence's own rows.
"""
from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

ENCODER = "minilm-l6-v2-f16"  # the encoder a v7 index records
DATA = Path(__file__).with_name("data")
DIMS, LAYERS, HEADS = 384, 6, 12
HEAD = DIMS // HEADS
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model: longer sentences are cut, as it does
CHUNK = 64  # sentences a forward pass at most (sorted by token count): bounds memory, not the vectors


@dataclass(frozen=True)
class Layer:
    """One transformer layer's weights, float32, dense matrices as (in, out) with query/key/value side by side."""
    qkv: np.ndarray
    qkv_bias: np.ndarray
    out: np.ndarray
    out_bias: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray]
    up: np.ndarray
    up_bias: np.ndarray
    down: np.ndarray
    down_bias: np.ndarray
    norm2: tuple[np.ndarray, np.ndarray]


def _layer_norm(x: np.ndarray, norm: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Layer normalisation, in place on a fresh array (`x` is a sum the caller no longer needs)."""
    x -= x.mean(-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)[:, None] / np.float32(x.shape[1])
    x *= np.float32(1) / np.sqrt(var + np.float32(1e-12))
    x *= norm[0]
    x += norm[1]
    return x


# GELU's tanh form, 0.5 h (1 + tanh(c (h + 0.044715 h^3))), is h / (1 + exp(-2 c (h + 0.044715 h^3)))
_GELU_CUBE, _GELU_LINEAR = np.float32(-2 * np.sqrt(2 / np.pi) * 0.044715), np.float32(-2 * np.sqrt(2 / np.pi))


def _gelu(h: np.ndarray) -> np.ndarray:
    """GELU in its tanh form (within 5e-4 of the exact erf form BERT was trained with), written with one exp and
    in-place products: the activations of the feed-forward layers are the encoder's largest elementwise work, and
    scipy's erf cost as much as every matrix product together."""
    t = h * h
    t *= _GELU_CUBE
    t += _GELU_LINEAR
    t *= h
    with np.errstate(over="ignore"):  # exp(+large) = inf makes GELU(-large) = -0, as it should be
        np.exp(t, out=t)
    t += np.float32(1)
    return np.divide(h, t, out=t)


@dataclass(frozen=True)
class Encoder:
    """all-MiniLM-L6-v2: WordPiece, 6 BERT layers, mean pooling over the tokens, unit length."""
    tokenizer: object  # tokenizers.Tokenizer
    words: np.ndarray  # (vocabulary, DIMS) word embeddings
    positions: np.ndarray  # (512, DIMS) position embeddings, plus token type 0's
    norm: tuple[np.ndarray, np.ndarray]
    layers: tuple[Layer, ...]

    def encode(self, sentences: Sequence[str], threads: int | None = None) -> np.ndarray:
        """float32 (n, 384) unit vectors; a sentence's vector depends on that sentence alone. The chunks run on
        `threads` threads (default: dedup's, numba's thread count), each with a single-threaded BLAS: BLAS's own
        threads synchronise on every one of these small products and spend ~15 % more CPU for the same vectors
        (a row's product does not depend on how many threads compute the matrix)."""
        import numba
        from threadpoolctl import threadpool_limits

        out = np.zeros((len(sentences), DIMS), np.float32)
        if not len(sentences):
            return out
        ids = [np.array(e.ids, np.int64) for e in self.tokenizer.encode_batch(list(sentences))]
        order = np.argsort([len(i) for i in ids], kind="stable")
        chunks = [order[start:start + CHUNK] for start in range(0, len(ids), CHUNK)]
        workers = min(len(chunks), threads or numba.get_num_threads())
        with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
            for chunk, vectors in zip(chunks, pool.map(lambda c: self._forward([ids[j] for j in c]), chunks)):
                out[chunk] = vectors
        return out

    def _forward(self, ids: list[np.ndarray]) -> np.ndarray:
        """Vectors of sentences given as token ids, shortest first."""
        lengths = np.array([len(i) for i in ids])
        x = self.words[np.concatenate(ids)] + self.positions[np.concatenate([np.arange(n) for n in lengths])]
        x = _layer_norm(x, self.norm)
        # runs of sentences of the same length: (first row, sentences, tokens each)
        runs, row = [], 0
        for n, count in zip(*np.unique(lengths, return_counts=True)):
            runs.append((row, int(count), int(n)))
            row += int(count * n)
        scale = np.float32(1 / np.sqrt(HEAD))
        for p in self.layers:
            qkv = x @ p.qkv + p.qkv_bias
            context = np.empty_like(x)
            for row, count, n in runs:
                h = qkv[row:row + count * n].reshape(count, n, 3, HEADS, HEAD)
                q = np.ascontiguousarray(h[:, :, 0].transpose(0, 2, 1, 3)) * scale
                k = np.ascontiguousarray(h[:, :, 1].transpose(0, 2, 3, 1))
                v = np.ascontiguousarray(h[:, :, 2].transpose(0, 2, 1, 3))
                s = np.matmul(q, k)
                s -= s.max(-1, keepdims=True)
                np.exp(s, out=s)
                s /= s.sum(-1, keepdims=True)
                context[row:row + count * n] = np.matmul(s, v).transpose(0, 2, 1, 3).reshape(count * n, DIMS)
            x = _layer_norm(context @ p.out + p.out_bias + x, p.norm1)
            h = x @ p.up + p.up_bias
            h = _gelu(h)
            x = _layer_norm(h @ p.down + p.down_bias + x, p.norm2)
        pooled = np.concatenate([x[row:row + count * n].reshape(count, n, DIMS).sum(1) / np.float32(n)
                                 for row, count, n in runs])
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


@functools.cache
def encoder(version: str) -> Encoder:
    """The shipped encoder `version` (ENCODER for v7), its weights made float32 once."""
    path = DATA / f"paraphrase-{version}.npz"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("paraphrase-") for p in DATA.glob("paraphrase-*.npz"))
        raise ValueError(f"unknown paraphrase encoder {version!r}: the package ships {known}")
    from tokenizers import Tokenizer

    with np.load(path) as data:
        w = {k: data[k].astype(np.float32) for k in data.files if k != "tokenizer"}
        tokenizer = Tokenizer.from_str(str(data["tokenizer"]))
    tokenizer.no_padding()  # the shipped tokenizer.json pads to 128 and cuts there
    tokenizer.enable_truncation(MAX_TOKENS)

    layers = []
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        a = p + "attention.self."
        layers.append(Layer(
            qkv=np.ascontiguousarray(np.concatenate([w[a + n + ".weight"] for n in ("query", "key", "value")]).T),
            qkv_bias=np.concatenate([w[a + n + ".bias"] for n in ("query", "key", "value")]),
            out=np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
            out_bias=w[p + "attention.output.dense.bias"],
            norm1=(w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
            up=np.ascontiguousarray(w[p + "intermediate.dense.weight"].T), up_bias=w[p + "intermediate.dense.bias"],
            down=np.ascontiguousarray(w[p + "output.dense.weight"].T), down_bias=w[p + "output.dense.bias"],
            norm2=(w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])))
    return Encoder(tokenizer, w["embeddings.word_embeddings.weight"],
                   w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0],
                   (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]), tuple(layers))
