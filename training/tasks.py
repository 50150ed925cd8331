"""One spec per task: how to train it, rank labels with it, report on it, save and load it.

The pipeline, cross-validation and the benchmarks go through these specs, so every number is
measured on exactly what ships. A spec's `ranked()` returns, per text, the labels best first
(sentiment: by probability; FAQ: entry keys by nearest neighbour over an index of known texts).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from settings import ThresholdSettings
from training.evaluation import classification_report, misclassified, most_confused, retrieval_report
from training.faq import FaqIndex, FaqTrainer, embed, load_faq, new_faq_model, save_faq
from training.features import FeatureCache
from training.recipe import CharNgramModel, blend, choose_weight, load_blend, save_blend
from training.sentiment import SentimentTrainer, TrainArgs, load_sentiment, save_sentiment
from vocabulary import SENTIMENT_LABELS

Pairs = Sequence[tuple[str, str]]
TRAINED_ON = "trained_on.json"  # hashes of the texts an adapter was fitted on (for unseen-data comparisons)


@dataclass
class ReviewClassifier:
    """What a sentiment adapter is: the encoder head, plus character n-grams blended in at `char_weight`."""

    network: Any
    char: CharNgramModel | None = None
    char_weight: float = 0.0


class SentimentSpec:
    """Review sentiment: a classifier over the shop's labels."""

    name = "sentiment"

    def __init__(self, cache: FeatureCache, args: TrainArgs, labels: tuple[str, ...] = SENTIMENT_LABELS):
        self.cache = cache
        self.args = args
        self.labels = labels
        self.trainer = SentimentTrainer(cache.encoder, cache, args, labels)

    def threshold(self, thresholds: ThresholdSettings) -> float:
        return thresholds.sentiment_accuracy

    def fit(self, train: Pairs, validation: Pairs, anchors: Pairs = ()) -> ReviewClassifier:
        """Encoder head + n-gram model on `train`; the n-gram share chosen on `validation` (anchors: FAQ only)."""
        network = self.trainer.train(list(train), list(validation)).model
        if len({y for _, y in train}) < 2:
            return ReviewClassifier(network)
        char = CharNgramModel.fit([t for t, _ in train], [y for _, y in train], self.labels)
        weight = 0.0
        if validation:
            texts = [t for t, _ in validation]
            targets = np.array([self.labels.index(y) for _, y in validation])
            weight = choose_weight(self.trainer.predict_proba(network, texts).numpy(), char.predict_proba(texts), targets)
        return ReviewClassifier(network, char, weight)

    def probabilities(self, model: ReviewClassifier, texts: Sequence[str]) -> np.ndarray:
        """(n, labels) class probabilities."""
        network = self.trainer.predict_proba(model.network, list(texts)).numpy()
        char = model.char.predict_proba(texts) if model.char is not None and model.char_weight > 0 else None
        return blend(network, char, model.char_weight)

    def base(self) -> Any | None:
        """The untrained model to compare against: none (the base model has no sentiment head)."""
        return None

    def ranked(self, model: Any, texts: Sequence[str], index: Pairs = ()) -> list[list[str]]:
        """Labels per text, most probable first."""
        if not texts:
            return []
        probs = self.probabilities(model, texts)
        return [[self.labels[j] for j in row] for row in np.argsort(-probs, axis=1, kind="stable").tolist()]

    def report(self, texts: Sequence[str], references: Sequence[str], ranked: Sequence[Sequence[str]],
               languages: Sequence[str] | None = None) -> dict[str, Any]:
        """Accuracy, macro-F1, confusion, per language, the most frequent confusions and a few mistakes."""
        predicted = [row[0] if row else "" for row in ranked]
        report = classification_report(references, predicted, languages, labels=list(self.labels))
        return report | _mistakes(texts, references, predicted)

    def save(self, model: ReviewClassifier, folder: Path) -> None:
        save_sentiment(model.network, folder, self.labels)
        save_blend(folder, model.char, model.char_weight)

    def load(self, folder: Path) -> ReviewClassifier:
        return ReviewClassifier(load_sentiment(self.cache.encoder, folder)[0], *load_blend(folder))


class FaqSpec:
    """FAQ retrieval: an embedding adapter; answers are found by nearest neighbour over the shop's texts."""

    name = "faq"

    def __init__(self, cache: FeatureCache, args: TrainArgs):
        self.cache = cache
        self.args = args
        self.trainer = FaqTrainer(cache.encoder, cache, args)

    def threshold(self, thresholds: ThresholdSettings) -> float:
        return thresholds.faq_accuracy

    def fit(self, train: Pairs, validation: Pairs, anchors: Pairs = ()) -> Any:
        """A trained embedding model; `anchors` (canonical questions) are always part of training."""
        return self.trainer.train(list(train), list(validation), anchors).model

    def base(self) -> Any:
        """The base model: LoRA starts as the identity."""
        return new_faq_model(self.cache.encoder, self.args)

    def ranked(self, model: Any, texts: Sequence[str], index: Pairs = ()) -> list[list[str]]:
        """Top-3 entry keys per text, nearest neighbour over `index` (text, key) pairs."""
        if not texts:
            return []
        hits = FaqIndex.build(model, self.cache, list(index)).search(embed(model, self.cache, list(texts)), k=3)
        return [[key for key, _cos, _conf in row] for row in hits]

    def report(self, texts: Sequence[str], references: Sequence[str], ranked: Sequence[Sequence[str]],
               languages: Sequence[str] | None = None) -> dict[str, Any]:
        """Top-1 ("accuracy") and top-3, per language, the most frequent confusions and a few mistakes."""
        report = retrieval_report(references, ranked, languages)
        return report | _mistakes(texts, references, [row[0] if row else "" for row in ranked])

    def save(self, model: Any, folder: Path, router: Any = None) -> None:
        save_faq(model, folder, router)

    def load(self, folder: Path) -> Any:
        return load_faq(self.cache.encoder, folder)[0]


TaskSpec = SentimentSpec | FaqSpec


def task_specs(cache: FeatureCache, args: TrainArgs) -> dict[str, TaskSpec]:
    """Every task, in training order."""
    return {"sentiment": SentimentSpec(cache, args), "faq": FaqSpec(cache, args)}


def _mistakes(texts: Sequence[str], references: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    return {"confused": [list(c) for c in most_confused(references, predicted)],
            "mistakes": [list(m) for m in misclassified(list(texts), references, predicted)]}


def write_trained_on(folder: Path, keys: Sequence[str]) -> None:
    """Record which texts (by key) an adapter was fitted on."""
    (folder / TRAINED_ON).write_text(json.dumps(sorted(set(keys))))


def read_trained_on(folder: Path) -> frozenset[str] | None:
    """The keys `write_trained_on` recorded, or None for an adapter made before they were recorded."""
    path = folder / TRAINED_ON
    return frozenset(json.loads(path.read_text())) if path.exists() else None
