"""What both trainers share in torch: the LoRA configuration and adapter, the optimiser and its schedule, the result.

Imported by the trainers only (`training.sentiment`, `training.faq`), so in the training child or
worker; the hyper-parameters themselves are plain values in `training.args`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from peft import LoraConfig, PeftModel
from torch import nn

from training.args import TrainArgs
from training.encoder import native_bf16

LORA_TARGETS = ["query", "key", "value", "dense"]


@dataclass
class TrainResult:
    """What a training run produced: the adapted network and its history."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    examples_seen: int = 0


def lora_config(args: TrainArgs, modules_to_save: list[str] | None = None) -> LoraConfig:
    """The LoRA configuration used for every adapter of this project."""
    return LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        target_modules=LORA_TARGETS, modules_to_save=modules_to_save,
    )


def lora_adapter(model: nn.Module) -> PeftModel:
    """`model` as the LoRA adapter to save; TypeError for a model without one (a loaded model has its LoRA merged in)."""
    if not isinstance(model, PeftModel):
        raise TypeError(f"only a LoRA adapter is saved, not a {type(model).__name__} "
                        "(a loaded adapter has its LoRA merged in; adapter 'full' is an ablation row)")
    return model


def step_autocast(args: TrainArgs, device: torch.device) -> torch.autocast:
    """The context a training step's forward runs in: bfloat16 autocast when `args.mixed_precision` and `device`
    computes bf16 natively (1.5-1.9x faster steps on an AVX512-BF16 CPU, measured), else a disabled one.

    Only the forward of a training step: the weights, AdamW's state and the loss stay float32, and every
    prediction (validation, scoring, serving) runs in float32 outside it.
    """
    enabled = args.mixed_precision and native_bf16(device.type)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


class OneCycle:
    """AdamW (weight decay 0.01) over a model's trainable weights, under a one-cycle schedule (10% warm-up, linear)."""

    def __init__(self, model: nn.Module, args: TrainArgs, steps: int):
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=0.01)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=args.learning_rate, total_steps=max(steps, 1),
            pct_start=0.1, anneal_strategy="linear")

    def step(self, loss: torch.Tensor) -> None:
        """Back-propagate `loss`, update the weights, advance the schedule."""
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
