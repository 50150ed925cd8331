"""What both trainers share (setfit's `TrainingArguments` shape): hyper-parameters, the result, LoRA and the optimiser."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from peft import LoraConfig, PeftModel
from torch import nn

LORA_TARGETS = ["query", "key", "value", "dense"]


@dataclass(frozen=True)
class TrainArgs:
    """Hyper-parameters shared by both tasks (setfit-style)."""

    epochs: int = 4  # at least this many epochs; small datasets get more (see min_steps)
    min_steps: int = 300  # optimiser steps a run gets at least (small shops have few examples)
    max_epochs: int = 15
    batch_size: int = 16
    learning_rate: float = 1e-3
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0  # dropout on LoRA inputs halves CPU training speed (measured 19 vs 37 ex/s)
    patience: int = 2
    seed: int = 13
    progress: bool = True
    max_train_seconds: float = math.inf
    adapter: str = "lora"  # "lora" | "full" (every weight of the top layers; an ablation row: save_sentiment stores LoRA only)
    class_balance: bool = True  # weight the loss by inverse class frequency


@dataclass
class TrainResult:
    """What a training run produced: the adapted network and its history."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    examples_seen: int = 0


def epochs_for(examples: int, args: TrainArgs) -> int:
    """`args.epochs`, raised so that a small dataset still gets `min_steps` steps (capped at max_epochs)."""
    steps_per_epoch = max(1, math.ceil(examples / args.batch_size))
    return max(args.epochs, min(args.max_epochs, math.ceil(args.min_steps / steps_per_epoch)))


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
