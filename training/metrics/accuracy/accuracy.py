"""Accuracy over string labels: the fraction of predictions equal to their reference."""

from __future__ import annotations

import numpy as np

from training.metrics.label_metric import LabelMetric


class Accuracy(LabelMetric):
    """Accuracy for string labels."""

    about = "Accuracy = correct predictions / all predictions, for string class labels."
    usage = """
    Args:
        predictions (list of str): predicted labels.
        references (list of str): true labels.
    Returns:
        accuracy (float): in [0, 1]; NaN when there are no examples.
    Examples:
        >>> metric = evaluate.load("training/metrics/accuracy")
        >>> metric.compute(predictions=["a", "b"], references=["a", "a"])
        {'accuracy': 0.5}
    """

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        if len(references) == 0:
            return {"accuracy": float("nan")}
        hits = np.asarray(predictions, dtype=object) == np.asarray(references, dtype=object)
        return {"accuracy": float(np.mean(hits))}
