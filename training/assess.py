"""Score a model of either task on a snapshot split, the same way for candidate, active and base."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from training.evaluation import classification_report, misclassified, most_confused, retrieval_report
from training.faq import FaqIndex, embed
from training.features import FeatureCache
from training.sentiment import LABELS, SentimentTrainer, TrainArgs
from training.snapshot import Snapshot


def faq_index_for(snapshot: Snapshot, model: nn.Module, cache: FeatureCache) -> FaqIndex:
    """The index an evaluation may use: canonical questions + training phrasings (never test texts)."""
    return FaqIndex.build(model, cache, list(snapshot.faq_anchors) + snapshot.pairs("faq", "train"))


def score_faq(model: nn.Module, cache: FeatureCache, index: FaqIndex, pairs: Sequence[tuple[str, str]],
              languages: Sequence[str] | None = None) -> dict[str, Any]:
    """Top-1/top-3 accuracy of nearest-neighbour matching, per language, plus confusions."""
    if not pairs:
        return {"accuracy": float("nan"), "n": 0}
    hits = index.search(embed(model, cache, [t for t, _ in pairs]), k=3)
    ranked = [[key for key, _cos, _conf in row] for row in hits]
    references = [label for _, label in pairs]
    report = retrieval_report(references, ranked, languages)
    top1 = [row[0] if row else "" for row in ranked]
    report["confused"] = [list(c) for c in most_confused(references, top1)]
    report["mistakes"] = [list(m) for m in misclassified([t for t, _ in pairs], references, top1)]
    return report


def score_sentiment(model: nn.Module, cache: FeatureCache, pairs: Sequence[tuple[str, str]],
                    languages: Sequence[str] | None = None, labels: tuple[str, ...] = LABELS) -> dict[str, Any]:
    """Accuracy, macro-F1, confusion matrix, per language, plus the most frequent confusions."""
    if not pairs:
        return {"accuracy": float("nan"), "n": 0}
    trainer = SentimentTrainer(cache.encoder, cache, TrainArgs(progress=False), labels)
    predicted = trainer.predict(model, [t for t, _ in pairs])
    references = [label for _, label in pairs]
    report = classification_report(references, predicted, languages, labels=list(labels))
    report["confused"] = [list(c) for c in most_confused(references, predicted)]
    report["mistakes"] = [list(m) for m in misclassified([t for t, _ in pairs], references, predicted)]
    return report


def router_accuracy(router, vectors: np.ndarray, is_question: np.ndarray) -> float:
    """Share of messages routed to the right task (question vs review)."""
    if len(vectors) == 0:
        return float("nan")
    return float(((router.probability(vectors) >= 0.5) == is_question.astype(bool)).mean())
