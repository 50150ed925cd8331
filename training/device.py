"""Where the model runs: CPU (plain LoRA, int8 serving) or CUDA (optionally a 4-bit QLoRA base)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

# The classifier head is trained in full precision: it must never be quantised.
SKIP_QUANTISATION = ["classifier"]


class DeviceError(RuntimeError):
    """The configured device cannot be used here."""


def choose_device(preference: str, cuda_available: bool | None = None) -> str:
    """"cuda" or "cpu" for model.device = auto | cpu | cuda."""
    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if preference == "cuda" and not available:
        raise DeviceError('model.device = "cuda" but no CUDA device is available; use "auto" or "cpu"')
    if preference == "cpu":
        return "cpu"
    return "cuda" if available else "cpu"


def top_layer_names(n_layers: int, top_layers: int) -> list[str]:
    """Module names of the top `top_layers` encoder layers (the ones LoRA adapts) in a BertModel."""
    return [f"encoder.layer.{i}" for i in range(n_layers - top_layers, n_layers)]


def quantisation_config(load_in_4bit: bool, device: str, keep: Sequence[str] = ()) -> Any | None:
    """A bitsandbytes 4-bit (NF4, QLoRA) config for the base on CUDA; None on CPU or when not asked for.

    `keep` names modules left unquantised (the adapted top layers); the classifier head always is.
    """
    if not load_in_4bit:
        return None
    if device != "cuda":
        raise DeviceError("model.load_in_4bit needs CUDA (bitsandbytes 4-bit is a CUDA-only path here); "
                          f"the model would run on {device}")
    try:
        import bitsandbytes  # noqa: F401  (the optional `gpu` extra)
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise DeviceError("model.load_in_4bit needs the gpu extra: pip install 'shopbot[gpu]'") from exc
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
        llm_int8_skip_modules=SKIP_QUANTISATION + list(keep),
    )
