"""Sentiment: LoRA on the top encoder layers + a 3-way classifier head, trained on cached trunk features.

`SentimentTrainer.train()` fits the head; a `ReviewClassifier` (that head plus the character n-gram
model blended in, `training.recipe`) is the trained model: it predicts, saves and loads itself.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel, get_peft_model
from torch import nn
from tqdm.auto import tqdm

from training.args import TrainArgs, epochs_for
from training.early_stopping import MIN_VALIDATION, EarlyStopping
from training.encoder import Encoder, SentimentModel
from training.features import FeatureCache, length_batches, pad_batch, similar_lengths
from training.lora import OneCycle, TrainResult, lora_adapter, lora_config, step_autocast
from training.recipe import LABELS, CharNgramModel, blend, load_blend, read_labels, save_blend
from vocabulary import SENTIMENT_LABELS

log = logging.getLogger(__name__)


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
    """train() on (text, label) pairs with early stopping on validation accuracy: the network of a `ReviewClassifier`."""

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
        epochs = epochs_for(len(train), args)
        optimiser = OneCycle(model, args, epochs * math.ceil(len(train) / args.batch_size))
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
                with step_autocast(args, self.encoder.device):
                    logits = model(hidden, mask)
                loss = loss_fn(logits.float(), targets[idx])
                optimiser.step(loss)
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

    def accuracy(self, model: nn.Module, data: list[tuple[str, str]]) -> float:
        """Share of `data` the network predicts right."""
        predicted = ReviewClassifier(model, self.cache, self.labels).predict([t for t, _ in data])
        return sum(p == y for p, (_, y) in zip(predicted, data)) / max(len(data), 1)


class ReviewClassifier:
    """A trained sentiment model: the encoder head over cached trunk features, plus character n-grams blended in.

    setfit's `SetFitModel` shape: `predict_proba(texts)` and `predict(texts)` on the model itself;
    `save(folder)` / `load(cache, folder)` write and read an adapter folder.
    """

    def __init__(self, network: nn.Module, cache: FeatureCache, labels: tuple[str, ...] = SENTIMENT_LABELS,
                 char: CharNgramModel | None = None, char_weight: float = 0.0):
        self.network = network
        self.cache = cache
        self.labels = labels
        self.char = char  # the n-gram model, weighted `char_weight` in the blend (chosen on validation data)
        self.char_weight = char_weight

    @torch.no_grad()
    def network_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(n, labels) class probabilities of the encoder head alone."""
        self.network.eval()
        feats = self.cache.get_many(list(texts))
        out = torch.zeros(len(texts), len(self.labels))
        for idx in similar_lengths([f.shape[0] for f in feats], batch_size):
            hidden, mask = pad_batch([feats[i] for i in idx])
            out[idx] = self.network(hidden, mask).softmax(-1).cpu()
        return out.numpy()

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n, labels) class probabilities: the encoder head's, blended with the n-grams' at `char_weight`."""
        char = self.char.predict_proba(texts) if self.char is not None and self.char_weight > 0 else None
        return blend(self.network_proba(texts), char, self.char_weight)

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most likely label of each text."""
        return [self.labels[i] for i in self.predict_proba(texts).argmax(-1).tolist()]

    def save(self, folder: Path) -> None:
        """The LoRA weights + head, the label order, and the n-gram model with its share."""
        save_sentiment(self.network, folder, self.labels)
        save_blend(folder, self.char, self.char_weight)

    @classmethod
    def load(cls, cache: FeatureCache, folder: Path) -> ReviewClassifier:
        """The model `save` wrote, on `cache`'s encoder."""
        network, labels = load_sentiment(cache.encoder, folder)
        return cls(network, cache, labels, *load_blend(folder))


def save_sentiment(model: nn.Module, folder: Path, labels: tuple[str, ...] = SENTIMENT_LABELS) -> None:
    """Write the LoRA weights + classifier head (peft save_pretrained) and the label order."""
    lora_adapter(model).save_pretrained(str(folder))
    (folder / LABELS).write_text(json.dumps(list(labels)))


def load_sentiment(encoder: Encoder, folder: Path) -> tuple[nn.Module, tuple[str, ...]]:
    """Rebuild a sentiment adapter on a fresh copy of the top layers (on the encoder's device), LoRA merged in."""
    labels = read_labels(folder)
    base = SentimentModel(encoder.new_top(), encoder.hidden_size, len(labels)).to(encoder.device)
    model = PeftModel.from_pretrained(base, str(folder), torch_device=str(encoder.device)).merge_and_unload()
    return model.eval(), labels
