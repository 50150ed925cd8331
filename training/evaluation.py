"""Evaluation reports for both tasks, built on the local metric modules; "accuracy" is the gate's key for each."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

from training.metrics import load_metric


class Confusion(NamedTuple):
    """How often (`times`) the true label was predicted as another label."""

    true: str
    predicted: str
    times: int  # not `count`, which would hide tuple.count


class Mistake(NamedTuple):
    """One misclassified example for the owner's report."""

    text: str
    true: str
    predicted: str


def _check_lengths(**columns: Sequence[Any] | None) -> int:
    """The shared length of the given columns (None ones skipped); ValueError if they differ."""
    lengths = {name: len(column) for name, column in columns.items() if column is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError("columns differ in length: " + ", ".join(f"{name}={n}" for name, n in lengths.items()))
    return next(iter(lengths.values()), 0)


def _by_language(languages: Sequence[str]) -> dict[str, list[int]]:
    """Example indices grouped by language, languages sorted."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, language in enumerate(languages):
        groups[language].append(index)
    return {language: groups[language] for language in sorted(groups)}


def _classification_scores(references: Sequence[str], predictions: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and n (NaN scores when there are no examples)."""
    refs, preds = list(references), list(predictions)
    return {
        "accuracy": load_metric("accuracy").compute(predictions=preds, references=refs)["accuracy"],
        "macro_f1": load_metric("macro_f1").compute(predictions=preds, references=refs)["macro_f1"],
        "n": len(refs),
    }


def classification_report(references: Sequence[str], predictions: Sequence[str],
                          languages: Sequence[str] | None = None, *,
                          labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy, macro F1, n, confusion matrix ({"labels", "matrix"}) and the same scores per language."""
    _check_lengths(references=references, predictions=predictions, languages=languages)
    report = _classification_scores(references, predictions)
    report["confusion"] = load_metric("confusion_matrix").compute(
        predictions=list(predictions), references=list(references),
        labels=None if labels is None else list(labels))
    report["by_language"] = {
        language: _classification_scores([references[i] for i in rows], [predictions[i] for i in rows])
        for language, rows in _by_language(languages or []).items()
    }
    return report


def _retrieval_scores(references: Sequence[str], ranked: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Top-1 (also as "accuracy"), top-3 and n."""
    refs, candidates = list(references), [list(row) for row in ranked]
    metric = load_metric("topk_accuracy")
    top1 = metric.compute(predictions=candidates, references=refs, k=1)["topk_accuracy"]
    top3 = metric.compute(predictions=candidates, references=refs, k=3)["topk_accuracy"]
    return {"accuracy": top1, "top1": top1, "top3": top3, "n": len(refs)}


def retrieval_report(references: Sequence[str], ranked: Sequence[Sequence[str]],
                     languages: Sequence[str] | None = None) -> dict[str, Any]:
    """Top-1 ("accuracy" too), top-3, n and the same per language, for ranked FAQ keys (best first)."""
    _check_lengths(references=references, ranked=ranked, languages=languages)
    report = _retrieval_scores(references, ranked)
    report["by_language"] = {
        language: _retrieval_scores([references[i] for i in rows], [ranked[i] for i in rows])
        for language, rows in _by_language(languages or []).items()
    }
    return report


def most_confused(references: Sequence[str], predictions: Sequence[str], top: int = 5) -> list[Confusion]:
    """The most frequent (true, predicted, count) mistakes, most frequent first, ties by label."""
    _check_lengths(references=references, predictions=predictions)
    counts = Counter((true, predicted) for true, predicted in zip(references, predictions) if true != predicted)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [Confusion(true, predicted, count) for (true, predicted), count in ordered[:max(top, 0)]]


def misclassified(texts: Sequence[str], references: Sequence[str], predictions: Sequence[str],
                  limit: int = 5) -> list[Mistake]:
    """The first `limit` examples whose prediction differs from the reference, in input order."""
    _check_lengths(texts=texts, references=references, predictions=predictions)
    mistakes = (Mistake(text, true, predicted)
                for text, true, predicted in zip(texts, references, predictions) if true != predicted)
    return [mistake for _, mistake in zip(range(max(limit, 0)), mistakes)]
