"""Export the frozen trunk and the merged tops to ONNX for the ONNX Runtime serving path, with probes.

Runs where torch is: in the training child at publish (an adapter folder gains `top.onnx` and its
probe, covered by the registry's checksums) and in a child process the serving side starts when a
base's graphs are missing (`run_export_in_child`). torch is imported inside the functions that
export, so the serving process can name them as a child's target without importing torch.

What is exported, and how (measured, see README "Serving runtime"):
- the trunk without its word-embedding table: the serving side gathers token rows from a memory-
  mapped float32 `word_embeddings.npy` (exact, and only the pages of tokens seen are resident), the
  graph adds positions, token types, LayerNorm and the trunk layers;
- float32 weights. No int8 form keeps >= 99.5% of the decisions (`bench/quantization.py`: trained
  adapters, 2,000 mixed zh/en messages, against these float32 graphs): dynamic int8
  (`quantize_dynamic`, per-tensor activations) 92.3%, the `<s>`/`</s>` outlier channels kept float32
  97.4%, `MatMulNBits` 8-bit (blocks of 32, activations quantised per row block) 99.2% [98.6, 99.5]
  at 1.5x the speed of one message and none on batches; accuracy is the same within 0.3 points in
  all of them, the decisions that change are near-ties;
- each probe: fixed inputs and the torch float32 outputs for them, which `serving.onnx_models`
  re-runs with ONNX Runtime before a graph may serve.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.registry import hash_folder

if TYPE_CHECKING:
    from torch import nn

    from settings import Settings
    from training.encoder import Encoder

log = logging.getLogger(__name__)

GRAPH_FORMAT = 2  # bump when what is exported changes: base graphs are then rebuilt under a new key
PRECISION = "float32"
TOP_GRAPH = "top.onnx"  # in an adapter folder: the merged top (sentiment: logits; FAQ: unit embedding)
TOP_PROBE = "top_probe.npz"
TRUNK_GRAPH = "trunk.onnx"
WORD_EMBEDDINGS = "word_embeddings.npy"
BASE_FAQ_GRAPH = "faq_top.onnx"  # the base's FAQ top (no adapter yet)
BASE_PROBE = "probe.npz"
TOKENIZER = "tokenizer.json"  # the fast tokenizer as transformers builds it (its normaliser and pre-tokeniser)
GRAPHS_MANIFEST = "graphs.json"  # format, identity, quantisation and sha256 of every file of a base's graphs
PROBE_TEXTS = ("能做少糖吗?", "do you deliver to the university?", "珍珠太硬了，下次不来了", "not bad but pricey",
               "你们几点关门", "the brown sugar milk is amazing!!", "可以用支付宝吗", "waited 25 minutes for one drink")
OPSET = 17


def base_identity(folder: Path, top_layers: int, max_length: int) -> str:
    """What a base's graphs depend on: the base folder, the split point, the token limit, the recipe."""
    return f"{Path(folder).resolve()}|top={top_layers}|len={max_length}|{PRECISION}|format={GRAPH_FORMAT}"


def _export(module: nn.Module, inputs: tuple, names: list[str], output: str, dst: Path) -> None:
    """torch.onnx (the TorchScript exporter: offline, no onnxscript needed) with dynamic batch and tokens."""
    import torch

    axes = {name: {0: "batch", 1: "tokens"} for name in names} | {output: {0: "batch"}}
    tmp = dst.with_suffix(".tmp")
    with torch.no_grad():
        torch.onnx.export(module.eval(), inputs, str(tmp), dynamo=False, input_names=names, output_names=[output],
                          dynamic_axes=axes, opset_version=OPSET)
    os.replace(tmp, dst)  # a graph present is a graph complete


def _probe_features(encoder: Encoder) -> tuple[np.ndarray, np.ndarray]:
    """Trunk states (float32 trunk) and mask of the probe texts, padded: the inputs of every top probe."""
    from training.features import pad_numpy

    return pad_numpy(encoder.trunk_features(list(PROBE_TEXTS)))


def export_top(top: nn.Module, encoder: Encoder, folder: Path, name: str = TOP_GRAPH,
               probe: str = TOP_PROBE) -> None:
    """Write a merged top (sentiment or FAQ network over trunk states) as a graph plus its probe into folder."""
    import torch

    hidden, mask = _probe_features(encoder)
    top = top.float().cpu().eval()
    with torch.no_grad():
        expected = top(torch.from_numpy(hidden), torch.from_numpy(mask)).numpy()
    np.savez(folder / probe, hidden=hidden, attention_mask=mask, expected=expected)
    _export(top, (torch.from_numpy(hidden[:2]), torch.from_numpy(mask[:2])), ["hidden", "attention_mask"], "output",
            folder / name)


def export_adapter(task: str, folder: Path, encoder: Encoder, out: Path | None = None) -> None:
    """The graph of the adapter saved in `folder` (before it is published), merged as serving loads it, into
    `out` (default: the folder itself)."""
    from training.faq import load_faq
    from training.sentiment import load_sentiment

    model = load_faq(encoder, folder)[0] if task == "faq" else load_sentiment(encoder, folder)[0]
    export_top(model, encoder, out or folder)


def _trunk_module(encoder: Encoder) -> nn.Module:
    """The trunk from word-embedding rows (not token ids) to its last layer's states, for export."""
    from torch import nn

    from training.encoder import _layer_out, extended_mask

    class Trunk(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embeddings = encoder.embeddings
            self.layers = encoder.trunk_layers

        def forward(self, inputs_embeds, attention_mask):
            x = self.embeddings(inputs_embeds=inputs_embeds)
            ext = extended_mask(attention_mask, x.dtype)
            for layer in self.layers:
                x = _layer_out(layer(x, attention_mask=ext))
            return x

    return Trunk()


def export_base(folder: Path, top_layers: int, max_length: int, out: Path) -> Path:
    """Build a base's graphs (trunk, word embeddings, base FAQ top, tokenizer, probe, manifest) into `out`, atomically."""
    import torch

    from training.encoder import EmbeddingModel, Encoder

    torch.set_num_threads(1)
    encoder = Encoder(folder, top_layers, max_length, "float32", device="cpu")
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=out.parent))
    try:
        words = encoder.embeddings.word_embeddings.weight.detach().float().numpy()
        np.save(staging / WORD_EMBEDDINGS, words)
        batch = encoder.tokenize(list(PROBE_TEXTS))
        ids, mask = batch["input_ids"], batch["attention_mask"]
        trunk = _trunk_module(encoder).eval()
        with torch.no_grad():
            embeds = encoder.embeddings.word_embeddings(ids)
            expected = trunk(embeds, mask).numpy()
        _export(trunk, (embeds[:2], mask[:2]), ["inputs_embeds", "attention_mask"], "hidden", staging / TRUNK_GRAPH)
        np.savez(staging / BASE_PROBE, input_ids=ids.numpy(), attention_mask=mask.numpy(), expected=expected)
        export_top(EmbeddingModel(encoder.new_top()), encoder, staging, BASE_FAQ_GRAPH, "faq_probe.npz")
        encoder.tokenizer.backend_tokenizer.save(str(staging / TOKENIZER))  # as transformers configured it
        manifest = {"format": GRAPH_FORMAT, "identity": base_identity(folder, top_layers, max_length),
                    "precision": PRECISION, "hidden_size": encoder.hidden_size, "max_length": max_length,
                    "files": hash_folder(staging)}
        (staging / GRAPHS_MANIFEST).write_text(json.dumps(manifest, indent=2))
        if out.exists():  # another process built it meanwhile: keep theirs
            shutil.rmtree(staging)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("ONNX graphs of the base built in %s", out)
    return out


def _child_export(target: str, kwargs: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s export[%(process)d] %(levelname)s %(message)s")
    if target == "base":
        export_base(**kwargs)
    else:
        from training.encoder import Encoder

        encoder = Encoder(kwargs["base"], kwargs["top_layers"], kwargs["max_length"], "float32", device="cpu")
        export_adapter(kwargs["task"], kwargs["folder"], encoder, kwargs["out"])


def run_export_in_child(target: str, timeout_s: float = 600, **kwargs: Any) -> None:
    """Run an export ("base": `export_base`; "adapter": `export_adapter`) in a spawned child with torch."""
    process = multiprocessing.get_context("spawn").Process(target=_child_export, args=(target, kwargs),
                                                           name="shopbot-export", daemon=True)
    process.start()
    process.join(timeout_s)
    if process.is_alive():
        process.kill()
        process.join()
        raise TimeoutError(f"exporting ONNX graphs ({target}) took over {timeout_s:g} s")
    if process.exitcode != 0:
        raise RuntimeError(f"exporting ONNX graphs ({target}) failed: exit code {process.exitcode}")


def base_graphs_for(settings: Settings) -> tuple[Path, Path]:
    """(base model folder, where its graphs live: paths.model_cache/onnx/<identity hash>) for these settings."""
    import hashlib

    from training.base_model import resolve_base_model

    model = settings.model
    folder = resolve_base_model(model.base, settings.paths.model_cache)
    key = hashlib.sha1(base_identity(folder, model.top_layers, model.max_length).encode()).hexdigest()[:16]
    return folder, settings.paths.model_cache / "onnx" / key
