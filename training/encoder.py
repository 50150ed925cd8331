"""The base encoder split in two: a frozen, shared trunk and a small top that each task adapts with LoRA.

multilingual-e5-small has 12 layers. The bottom `n - k` layers (the trunk) are never trained, so
their output for a text never changes: it is computed once, cached (see `features.py`) and shared
by both tasks at serving time. Each task owns a copy of the top `k` layers, adapted with LoRA,
plus its head. A message then costs one trunk pass and two k-layer passes instead of two full
forwards, and training only back-propagates through k layers.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from settings import ModelSettings, Settings
from training.base_model import resolve_base_model
from training.device import choose_device, quantisation_config, top_layer_names
from training.features import pad_batch
from training.model_folder import QUERY_PREFIX

if TYPE_CHECKING:  # transformers is imported when an encoder is loaded, not with this module
    from transformers import BatchEncoding

log = logging.getLogger(__name__)
# How the frozen trunk computes: int8 = dynamic quantisation (CPU only); nf4 = 4-bit bitsandbytes weights
# computing in bfloat16 (CUDA only, model.load_in_4bit).
TRUNK_DTYPES = ("float32", "bfloat16", "int8", "nf4")


def choose_trunk_dtype(preference: str, device: str) -> str:
    """The trunk's dtype for model.trunk_dtype = auto | float32 | bfloat16 | int8 on `device`.

    auto: bfloat16 where the CPU has native bf16 (AVX512-BF16 / AMX: same features as float32 to
    cosine 0.99998, half the time measured here) and on a CUDA GPU with bf16; float32 elsewhere.
    int8 is measured 5-6 points less accurate on reviews (cosine 0.972 to float32) and is never
    chosen by auto.
    """
    if preference != "auto":
        return preference
    return "bfloat16" if native_bf16(device) else "float32"


def native_bf16(device: str) -> bool:
    """Whether `device` ("cpu" | "cuda") computes bfloat16 natively: a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX."""
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    return getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or \
        getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()


@dataclass(frozen=True)
class TrunkOutput:
    """Trunk hidden states for a batch of texts: (batch, tokens, hidden) and the attention mask."""

    hidden: torch.Tensor
    mask: torch.Tensor


class Encoder:
    """Tokenizer + the frozen trunk of the base model + the pristine top layers to copy per task, on `device`."""

    def __init__(self, folder: Path, top_layers: int, max_length: int = 128, trunk_dtype: str = "float32",
                 device: str = "cpu"):
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if trunk_dtype not in TRUNK_DTYPES:
            raise ValueError(f"trunk_dtype must be one of {', '.join(TRUNK_DTYPES)}, got {trunk_dtype!r}")
        self.device = torch.device(device)
        if trunk_dtype == "int8" and self.device.type != "cpu":
            raise ValueError("trunk_dtype int8 (dynamic quantisation) runs on the CPU only")
        self.folder = Path(folder)
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        n_layers = AutoConfig.from_pretrained(self.folder).num_hidden_layers
        if not 1 <= top_layers < n_layers:
            raise ValueError(f"model.top_layers must be between 1 and {n_layers - 1}, got {top_layers}")
        if trunk_dtype == "nf4":  # QLoRA: the trunk's Linear weights in 4-bit on the GPU, the top layers as they are
            config = quantisation_config(True, self.device.type, keep=top_layer_names(n_layers, top_layers))
            model = AutoModel.from_pretrained(
                self.folder, add_pooling_layer=False, quantization_config=config, dtype=torch.float32,
                device_map={"": self.device.index if self.device.index is not None else torch.cuda.current_device()})
        else:
            model = AutoModel.from_pretrained(self.folder, add_pooling_layer=False)
        model.eval()
        self.top_layers = top_layers
        self.hidden_size = model.config.hidden_size
        self.embeddings = model.embeddings
        self.trunk_layers = nn.ModuleList(model.encoder.layer[: n_layers - top_layers])
        self.pristine_top = nn.ModuleList(model.encoder.layer[n_layers - top_layers :])
        for p in model.parameters():
            p.requires_grad_(False)
        self.trunk_dtype = trunk_dtype
        self._compute_dtype = torch.bfloat16 if trunk_dtype == "bfloat16" else torch.float32
        if trunk_dtype == "int8":
            self.trunk_layers = torch.ao.quantization.quantize_dynamic(self.trunk_layers, {nn.Linear}, dtype=torch.qint8)
        elif trunk_dtype == "bfloat16":
            self.trunk_layers = self.trunk_layers.to(torch.bfloat16)
        if trunk_dtype != "nf4":  # a 4-bit model is loaded onto its device
            for part in (self.embeddings, self.trunk_layers, self.pristine_top):
                part.to(self.device)
        self.config = model.config

    @property
    def quantized(self) -> bool:
        """Whether the trunk is int8 (then serving quantises the merged tops too)."""
        return self.trunk_dtype == "int8"

    def tokenize(self, texts: list[str]) -> BatchEncoding:
        """Tokenise with e5's "query: " prefix, padded to the longest text in the batch."""
        return self.tokenizer(
            [QUERY_PREFIX + t for t in texts], padding=True, truncation=True,
            max_length=self.max_length, return_tensors="pt",
        )

    @torch.no_grad()
    def trunk(self, texts: list[str]) -> TrunkOutput:
        """Run embeddings + trunk layers on a batch of texts, on the encoder's device; the output is on the CPU."""
        batch = self.tokenize(texts).to(self.device)
        mask = batch["attention_mask"]
        x = self.embeddings(input_ids=batch["input_ids"], token_type_ids=torch.zeros_like(batch["input_ids"]))
        x = x.to(self._compute_dtype)
        ext = extended_mask(mask, x.dtype)
        for layer in self.trunk_layers:
            x = _layer_out(layer(x, attention_mask=ext))
        return TrunkOutput(x.float().cpu(), mask.cpu())

    def trunk_features(self, texts: list[str]) -> list[np.ndarray]:
        """Trunk states (tokens, hidden) per text, unpadded, float32 numpy (the feature cache's and serving's form)."""
        out = self.trunk(texts)
        hidden = out.hidden.numpy()
        return [hidden[i, : int(n)] for i, n in enumerate(out.mask.sum(1).tolist())]

    @torch.no_grad()
    def run_top(self, top: nn.Module, features: Sequence[np.ndarray]) -> np.ndarray:
        """A top's outputs (batch, ...) as float32 numpy for one batch of trunk features (eval mode)."""
        top.eval()
        return top(*pad_batch(features)).float().cpu().numpy()

    def new_top(self) -> TopLayers:
        """A fresh, trainable copy of the top layers (to be wrapped with LoRA)."""
        return TopLayers(copy.deepcopy(self.pristine_top))


class TopLayers(nn.Module):
    """The top k encoder layers followed by mean pooling."""

    def __init__(self, layers: nn.ModuleList):
        super().__init__()
        self.layers = layers

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pooled (batch, hidden) representation of trunk states (moved to the layers' device, e.g. from the CPU cache)."""
        device = next(self.layers.parameters()).device
        hidden, mask = hidden.to(device), mask.to(device)
        ext = extended_mask(mask, hidden.dtype)
        x = hidden
        for layer in self.layers:
            x = _layer_out(layer(x, attention_mask=ext))
        return mean_pool(x, mask)


class SentimentModel(nn.Module):
    """Top layers + a linear classifier over the pooled representation."""

    def __init__(self, top: TopLayers, hidden_size: int, num_labels: int):
        super().__init__()
        self.top = top
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.classifier(self.dropout(self.top(hidden, mask)))


class EmbeddingModel(nn.Module):
    """Top layers + L2 normalisation: a sentence embedding for FAQ retrieval."""

    def __init__(self, top: TopLayers):
        super().__init__()
        self.top = top

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unit-length embeddings."""
        return nn.functional.normalize(self.top(hidden, mask), dim=-1)


def extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, tokens) 0/1 mask -> additive (batch, 1, 1, tokens) mask as BERT layers expect."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def mean_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors that are not padding."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def _layer_out(out: torch.Tensor | tuple) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def load_encoder(settings: Settings) -> Encoder:
    """The configured base model (`model.base`, resolved under `paths.model_cache`) as `encoder_at` opens it."""
    return encoder_at(resolve_base_model(settings.model.base, settings.paths.model_cache), settings.model)


def encoder_at(folder: Path, model: ModelSettings) -> Encoder:
    """The base model in `folder` split into trunk and top, on the configured device (`model.device`, `model.trunk_dtype`).

    On CUDA the trunk computes in bfloat16 (auto), or with 4-bit NF4 weights when `model.load_in_4bit`;
    int8 is a CPU path and falls back to float32 there.
    """
    device = choose_device(model.device)
    if model.load_in_4bit:
        quantisation_config(True, device)  # a clear error before loading anything: no CUDA, or no bitsandbytes
        trunk_dtype = "nf4"
    else:
        trunk_dtype = choose_trunk_dtype(model.trunk_dtype, device)
    if trunk_dtype == "int8" and device != "cpu":
        log.warning("model.trunk_dtype = int8 is a CPU path: the trunk runs in float32 on %s", device)
        trunk_dtype = "float32"
    return Encoder(folder, model.top_layers, model.max_length, trunk_dtype, device=device)
