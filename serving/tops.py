"""The tops a serving model runs, loaded for its base: torch modules (LoRA merged) or checked ONNX graphs.

`tops_for(base, settings)` gives the loader matching `serving.loading.load_base`'s base; the torch
one imports torch when it is made, the ONNX one never does. An adapter folder published before
ONNX graphs existed (or by a bench) has no `top.onnx`: its graph is exported once, in a child
process with torch, into paths.model_cache/onnx/adapters/<folder name>-<manifest hash> (probe and all).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Protocol

from serving.onnx_models import OnnxBase, OnnxTop, adapter_top
from training.export_onnx import TOP_GRAPH, run_export_in_child
from training.recipe import read_labels
from training.registry import ADAPTER_MANIFEST, files_checksum, hash_folder
from training.router import RouterWeights, load_router

log = logging.getLogger(__name__)


class TopLoader(Protocol):
    """Loads the tops of one base."""

    def base_faq(self) -> Any:
        """The FAQ top of the base model (no adapter)."""
        ...

    def faq(self, folder: Path) -> tuple[Any, RouterWeights | None]:
        """An FAQ adapter's top and its router."""
        ...

    def sentiment(self, folder: Path) -> tuple[Any, tuple[str, ...]]:
        """A sentiment adapter's top and its label order."""
        ...


class TorchTops:
    """Tops as torch modules on the encoder's device, LoRA merged in (int8 too when the trunk is)."""

    def __init__(self, encoder: Any):
        self.encoder = encoder

    def _serving_form(self, model: Any) -> Any:
        if not self.encoder.quantized:
            return model
        import torch

        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

    def base_faq(self) -> Any:
        from training.encoder import EmbeddingModel

        return self._serving_form(EmbeddingModel(self.encoder.new_top()).eval())

    def faq(self, folder: Path) -> tuple[Any, RouterWeights | None]:
        from training.faq import load_faq

        model, router = load_faq(self.encoder, folder)
        return self._serving_form(model), router

    def sentiment(self, folder: Path) -> tuple[Any, tuple[str, ...]]:
        from training.sentiment import load_sentiment

        model, labels = load_sentiment(self.encoder, folder)
        return self._serving_form(model), labels


class OnnxTops:
    """Tops as ONNX Runtime graphs, each checked against its probe before it may serve."""

    def __init__(self, base: OnnxBase):
        self.base = base

    def base_faq(self) -> OnnxTop:
        return self.base.base_faq

    def _graph_folder(self, task: str, folder: Path) -> Path:
        """Where the adapter's graph is: in its folder (published with it), else exported once into the cache."""
        if (folder / TOP_GRAPH).exists():
            return folder
        manifest = folder / ADAPTER_MANIFEST
        content = manifest.read_bytes() if manifest.exists() else files_checksum(hash_folder(folder)).encode()
        cached = self.base.graphs.parent / "adapters" / f"{folder.name}-{hashlib.sha256(content).hexdigest()[:12]}"
        if not (cached / TOP_GRAPH).exists():
            log.info("adapter %s has no ONNX graph: exporting it once into %s", folder, cached)
            cached.mkdir(parents=True, exist_ok=True)
            run_export_in_child("adapter", task=task, folder=folder, out=cached, base=self.base.folder,
                                top_layers=self.base.top_layers, max_length=self.base.max_length)
        return cached

    def faq(self, folder: Path) -> tuple[OnnxTop, RouterWeights | None]:
        return adapter_top(self._graph_folder("faq", folder), logits=False), load_router(folder)

    def sentiment(self, folder: Path) -> tuple[OnnxTop, tuple[str, ...]]:
        return adapter_top(self._graph_folder("sentiment", folder), logits=True), read_labels(folder)


def tops_for(base: Any) -> TopLoader:
    """The loader for tops that `base` runs."""
    return OnnxTops(base) if isinstance(base, OnnxBase) else TorchTops(base)
