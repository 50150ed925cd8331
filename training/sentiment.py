"""Sentiment: LoRA on the top encoder layers + a 3-way classifier head, trained on cached trunk features."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from tqdm.auto import tqdm

from training.early_stopping import MIN_VALIDATION, EarlyStopping
from training.encoder import Encoder, SentimentModel
from training.features import FeatureCache, length_batches, pad_batch
from vocabulary import SENTIMENT_LABELS

log = logging.getLogger(__name__)

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
    """What a training run produced: the adapted model and its history."""

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


def new_sentiment_model(encoder: Encoder, args: TrainArgs, labels: tuple[str, ...] = SENTIMENT_LABELS) -> PeftModel | SentimentModel:
    """A freshly initialised LoRA-wrapped sentiment model (same seed -> same weights); unwrapped for adapter "full"."""
    torch.manual_seed(args.seed)
    base = SentimentModel(encoder.new_top(), encoder.hidden_size, len(labels)).to(encoder.device)
    if args.adapter == "full":
        for p in base.parameters():
            p.requires_grad_(True)
        return base
    return get_peft_model(base, lora_config(args, modules_to_save=["classifier"]))


class SentimentTrainer:
    """train() on (text, label) pairs with early stopping on validation accuracy; predict() for evaluation."""

    def __init__(self, encoder: Encoder, cache: FeatureCache, args: TrainArgs, labels: tuple[str, ...] = SENTIMENT_LABELS):
        self.encoder = encoder
        self.cache = cache
        self.args = args
        self.labels = labels
        self.index = {label: i for i, label in enumerate(labels)}

    def train(self, train: list[tuple[str, str]], validation: list[tuple[str, str]]) -> TrainResult:
        """Fit a new adapter; keeps the weights of the best validation epoch."""
        args = self.args
        started = time.perf_counter()
        model = new_sentiment_model(self.encoder, args, self.labels)
        feats = self.cache.get_many([t for t, _ in train], progress=args.progress)
        targets = torch.tensor([self.index[label] for _, label in train])
        counts = torch.bincount(targets, minlength=len(self.labels)).float()
        weights = (counts.sum() / (len(self.labels) * counts.clamp(min=1)))  # balance rare classes
        loss_fn = nn.CrossEntropyLoss(weight=weights.to(self.encoder.device) if args.class_balance else None)
        targets = targets.to(self.encoder.device)
        params = [p for p in model.parameters() if p.requires_grad]
        epochs = epochs_for(len(train), args)
        steps = epochs * math.ceil(len(train) / args.batch_size)
        optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=0.01)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.learning_rate, total_steps=max(steps, 1),
                                                        pct_start=0.1, anneal_strategy="linear")
        result = TrainResult(model)
        stopper = EarlyStopping(args.patience, keep=("lora_", "classifier") if args.adapter == "lora" else ("",))
        lengths = [f.shape[0] for f in feats]
        for epoch in range(epochs):
            model.train()
            bar = tqdm(list(length_batches(lengths, args.batch_size, shuffle=True, seed=args.seed + epoch)),
                       desc=f"sentiment epoch {epoch + 1}", disable=not args.progress, leave=False)
            total = 0.0
            for idx in bar:
                hidden, mask = pad_batch([feats[i] for i in idx])
                loss = loss_fn(model(hidden, mask), targets[idx])
                loss.backward()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                total += loss.item() * len(idx)
                result.examples_seen += len(idx)
                bar.set_postfix(loss=f"{loss.item():.3f}")
            val_acc = self.accuracy(model, validation) if len(validation) >= MIN_VALIDATION else None
            result.history.append({"epoch": epoch + 1, "loss": total / len(train), "val_accuracy": val_acc})
            log.info("sentiment epoch %d loss %.4f val_acc %s", epoch + 1, total / len(train), val_acc)
            if stopper.step(model, val_acc) or time.perf_counter() - started > args.max_train_seconds:
                break
        stopper.restore(model)
        model.eval()
        result.seconds = time.perf_counter() - started
        return result

    @torch.no_grad()
    def predict_proba(self, model: nn.Module, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """Class probabilities (n, labels) for texts."""
        model.eval()
        feats = self.cache.get_many(texts)
        out = torch.zeros(len(texts), len(self.labels))
        for idx in length_batches([f.shape[0] for f in feats], batch_size, shuffle=False):
            hidden, mask = pad_batch([feats[i] for i in idx])
            out[idx] = model(hidden, mask).softmax(-1).cpu()
        return out

    def predict(self, model: nn.Module, texts: list[str]) -> list[str]:
        """Most likely label for each text."""
        return [self.labels[i] for i in self.predict_proba(model, texts).argmax(-1).tolist()]

    def accuracy(self, model: nn.Module, data: list[tuple[str, str]]) -> float:
        """Share of `data` predicted right."""
        predicted = self.predict(model, [t for t, _ in data])
        return sum(p == y for p, (_, y) in zip(predicted, data)) / max(len(data), 1)


def save_sentiment(model: PeftModel, folder: Path, labels: tuple[str, ...] = SENTIMENT_LABELS) -> None:
    """Write the LoRA weights + classifier head (peft save_pretrained) and the label order."""
    model.save_pretrained(str(folder))
    (folder / "labels.json").write_text(json.dumps(list(labels)))


def load_sentiment(encoder: Encoder, folder: Path) -> tuple[nn.Module, tuple[str, ...]]:
    """Rebuild a sentiment adapter on a fresh copy of the top layers (on the encoder's device), LoRA merged in."""
    labels = tuple(json.loads((folder / "labels.json").read_text()))
    base = SentimentModel(encoder.new_top(), encoder.hidden_size, len(labels)).to(encoder.device)
    model = PeftModel.from_pretrained(base, str(folder), torch_device=str(encoder.device)).merge_and_unload()
    return model.eval(), labels
