"""The hyper-parameters both trainers share (setfit's `TrainingArguments` shape), as plain values: no torch here.

The bot's side of a retrain resolves and records them (`training.pipeline`) without importing torch;
what the trainers share in torch (LoRA, the optimiser, the result) is `training.lora`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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
    mixed_precision: bool = True  # training steps' forward in bfloat16 autocast where the device has native bf16
    # (weights, optimiser and every prediction stay float32; `training.lora.step_autocast`)


def epochs_for(examples: int, args: TrainArgs) -> int:
    """`args.epochs`, raised so that a small dataset still gets `min_steps` steps (capped at max_epochs)."""
    steps_per_epoch = max(1, math.ceil(examples / args.batch_size))
    return max(args.epochs, min(args.max_epochs, math.ceil(args.min_steps / steps_per_epoch)))
