"""One spec per task: how to train it, rank labels with it, report on it, finish, save and load it.

The pipeline, cross-validation and the benchmarks go through these specs, so every number is
measured on exactly what ships, and none of them branches on the task. A spec's `ranked()`
returns, per text, the labels best first (sentiment: by probability; FAQ: entry keys by nearest
neighbour over an index of known texts). `finish()` adds what a model needs beyond its own task's
data before it ships (the FAQ model's question/review router, fitted on both tasks' texts).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from settings import ThresholdSettings
from training.args import TrainArgs
from training.evaluation import classification_report, misclassified, most_confused, retrieval_report
from training.faq import FaqModel, FaqTrainer, new_faq_model
from training.features import FeatureCache
from training.recipe import CharNgramModel, choose_weight
from training.router import augment_questions, train_router
from training.sentiment import ReviewClassifier, SentimentTrainer
from training.snapshot import Snapshot
from vocabulary import SENTIMENT_LABELS, Task

Pairs = Sequence[tuple[str, str]]
TRAINED_ON = "trained_on.json"  # hashes of the texts an adapter was fitted on (for unseen-data comparisons)
Model = TypeVar("Model")


class TaskSpec(Protocol[Model]):
    """What every task's spec answers; `Model` is what it trains (the pipeline holds a `TaskSpec[Any]`)."""

    name: Task

    def threshold(self, thresholds: ThresholdSettings) -> float:
        """The accuracy a candidate must reach to be promoted."""

    def fit(self, train: Pairs, validation: Pairs, anchors: Pairs = ()) -> Model:
        """A model trained on `train`, early-stopped on `validation`; `anchors`: texts every model is given."""

    def base(self) -> Model | None:
        """The untrained model, scored the same way as a candidate; None where there is none."""

    def ranked(self, model: Model, texts: Sequence[str], index: Pairs = ()) -> list[list[str]]:
        """Labels per text, best first; `index`: the labelled texts a retrieval model searches."""

    def report(self, texts: Sequence[str], references: Sequence[str], ranked: Sequence[Sequence[str]],
               languages: Sequence[str] | None = None) -> dict[str, Any]:
        """The task's metrics ("accuracy" the gate's) from ranked labels."""

    def finish(self, model: Model, snapshot: Snapshot, metrics: dict[str, Any]) -> Model:
        """The model as it ships, from the whole snapshot (may add to `metrics`)."""

    def save(self, model: Model, folder: Path) -> None:
        """Write the model into an adapter folder."""

    def load(self, folder: Path) -> Model:
        """The model `save` wrote."""


class SentimentSpec:
    """Review sentiment: a classifier over the shop's labels."""

    name = Task.SENTIMENT

    def __init__(self, cache: FeatureCache, args: TrainArgs, labels: tuple[str, ...] = SENTIMENT_LABELS):
        self.cache = cache
        self.args = args
        self.labels = labels
        self.trainer = SentimentTrainer(cache.encoder, cache, args, labels)

    def threshold(self, thresholds: ThresholdSettings) -> float:
        return thresholds.sentiment_accuracy

    def fit(self, train: Pairs, validation: Pairs, anchors: Pairs = ()) -> ReviewClassifier:
        """Encoder head + n-gram model on `train`; the n-gram share chosen on `validation` (anchors: FAQ only)."""
        model = ReviewClassifier(self.trainer.train(list(train), list(validation)).model, self.cache, self.labels)
        if len({y for _, y in train}) < 2:
            return model
        model.char = CharNgramModel.fit([t for t, _ in train], [y for _, y in train], self.labels)
        if validation:
            texts = [t for t, _ in validation]
            targets = np.array([self.labels.index(y) for _, y in validation])
            model.char_weight = choose_weight(model.network_proba(texts), model.char.predict_proba(texts), targets)
        return model

    def base(self) -> None:
        """The untrained model to compare against: none (the base model has no sentiment head)."""
        return None

    def ranked(self, model: ReviewClassifier, texts: Sequence[str], index: Pairs = ()) -> list[list[str]]:
        """Labels per text, most probable first."""
        if not texts:
            return []
        probs = model.predict_proba(texts)
        return [[model.labels[j] for j in row] for row in np.argsort(-probs, axis=1, kind="stable").tolist()]

    def report(self, texts: Sequence[str], references: Sequence[str], ranked: Sequence[Sequence[str]],
               languages: Sequence[str] | None = None) -> dict[str, Any]:
        """Accuracy, macro-F1, confusion, per language, the most frequent confusions and a few mistakes."""
        predicted = [row[0] if row else "" for row in ranked]
        report = classification_report(references, predicted, languages, labels=list(self.labels))
        return report | _mistakes(texts, references, predicted)

    def finish(self, model: ReviewClassifier, snapshot: Snapshot, metrics: dict[str, Any]) -> ReviewClassifier:
        """What ships: the model as fitted."""
        return model

    def save(self, model: ReviewClassifier, folder: Path) -> None:
        model.save(folder)

    def load(self, folder: Path) -> ReviewClassifier:
        return ReviewClassifier.load(self.cache, folder)


class FaqSpec:
    """FAQ retrieval: an embedding adapter; answers are found by nearest neighbour over the shop's texts."""

    name = Task.FAQ

    def __init__(self, cache: FeatureCache, args: TrainArgs):
        self.cache = cache
        self.args = args
        self.trainer = FaqTrainer(cache.encoder, cache, args)

    def threshold(self, thresholds: ThresholdSettings) -> float:
        return thresholds.faq_accuracy

    def fit(self, train: Pairs, validation: Pairs, anchors: Pairs = ()) -> FaqModel:
        """A trained embedding model; `anchors` (canonical questions) are always part of training."""
        return FaqModel(self.trainer.train(list(train), list(validation), anchors).model, self.cache)

    def base(self) -> FaqModel:
        """The base model: LoRA starts as the identity."""
        return FaqModel(new_faq_model(self.cache.encoder, self.args), self.cache)

    def ranked(self, model: FaqModel, texts: Sequence[str], index: Pairs = ()) -> list[list[str]]:
        """Top-3 entry keys per text, nearest neighbour over `index` (text, key) pairs."""
        if not texts:
            return []
        hits = model.index(list(index)).search(model.embed(list(texts)), k=3)
        return [[key for key, _cos, _conf in row] for row in hits]

    def report(self, texts: Sequence[str], references: Sequence[str], ranked: Sequence[Sequence[str]],
               languages: Sequence[str] | None = None) -> dict[str, Any]:
        """Top-1 ("accuracy") and top-3, per language, the most frequent confusions and a few mistakes."""
        report = retrieval_report(references, ranked, languages)
        return report | _mistakes(texts, references, [row[0] if row else "" for row in ranked])

    def finish(self, model: FaqModel, snapshot: Snapshot, metrics: dict[str, Any]) -> FaqModel:
        """What ships: the model with its question-vs-review router, on the FAQ embedding and the question cues.

        Questions = FAQ texts plus asked-style variants of them (training.router.augment_questions),
        reviews = sentiment texts. metrics["router_accuracy"] is on the test splits of both tasks.
        """
        questions = [t for t, _ in snapshot.pairs(Task.FAQ, "train")] + [q for q, _ in snapshot.faq_anchors]
        reviews = [t for t, _ in snapshot.pairs(Task.SENTIMENT, "train")]
        if not questions or not reviews:
            return model
        questions = list(dict.fromkeys(questions))
        questions += augment_questions(questions)
        texts = questions + reviews
        labels = np.array([1] * len(questions) + [0] * len(reviews))
        router = train_router(model.embed(texts), labels, texts=texts)
        test_q = [t for t, _ in snapshot.pairs(Task.FAQ, "test")]
        test_r = [t for t, _ in snapshot.pairs(Task.SENTIMENT, "test")]
        if test_q and test_r:
            test = test_q + test_r
            routed = router.probability(model.embed(test), test) >= 0.5
            metrics["router_accuracy"] = float((routed == np.array([True] * len(test_q) + [False] * len(test_r))).mean())
        return FaqModel(model.network, model.cache, router)

    def save(self, model: FaqModel, folder: Path) -> None:
        model.save(folder)

    def load(self, folder: Path) -> FaqModel:
        return FaqModel.load(self.cache, folder)


def task_specs(cache: FeatureCache, args: TrainArgs) -> dict[Task, TaskSpec[Any]]:
    """Every task's spec, in training order (vocabulary.TASKS)."""
    specs: tuple[TaskSpec[Any], ...] = (SentimentSpec(cache, args), FaqSpec(cache, args))
    return {spec.name: spec for spec in specs}


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
