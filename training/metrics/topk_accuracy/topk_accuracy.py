"""Top-k accuracy: the fraction of references found among the first k ranked predictions."""

from __future__ import annotations

import numpy as np

from training.metrics.label_metric import LabelMetric


class TopkAccuracy(LabelMetric):
    """Top-k accuracy over ranked string labels."""

    about = "Top-k accuracy for ranked string predictions (e.g. FAQ keys, best first)."
    usage = """
    Args:
        predictions (list of list of str): ranked candidate labels per example, best first.
        references (list of str): the true label per example.
        k (int, default 1): how many of the top-ranked candidates count.
    Returns:
        topk_accuracy (float): in [0, 1]; NaN when there are no examples.
        k (int): the k used.
    Examples:
        >>> metric = evaluate.load("training/metrics/topk_accuracy")
        >>> metric.compute(predictions=[["a", "b"], ["a", "b"]], references=["b", "c"], k=2)
        {'topk_accuracy': 0.5, 'k': 2}
    """
    ranked = True

    def _compute(self, predictions: list[list[str]], references: list[str], k: int = 1) -> dict[str, object]:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if len(references) == 0:
            return {"topk_accuracy": float("nan"), "k": k}
        hits = np.array([reference in list(ranked)[:k] for ranked, reference in zip(predictions, references)])
        return {"topk_accuracy": float(np.mean(hits)), "k": k}
