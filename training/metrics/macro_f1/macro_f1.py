"""Macro-averaged F1 over string labels (unweighted mean of per-label F1)."""

from __future__ import annotations

import numpy as np

from training.metrics.label_metric import LabelMetric


def _f1(true_positives: int, predicted: int, actual: int) -> float:
    """F1 from counts; 0 when undefined."""
    denominator = predicted + actual
    return 0.0 if denominator == 0 else 2.0 * true_positives / denominator


class MacroF1(LabelMetric):
    """Macro-averaged F1 for string labels."""

    about = "Macro F1: the unweighted mean over labels of 2·precision·recall / (precision + recall)."
    usage = """
    Args:
        predictions (list of str): predicted labels.
        references (list of str): true labels.
        labels (list of str, optional): labels to average over; default is every label seen in
            references or predictions. A label never predicted nor present scores F1 = 0 (as sklearn does).
    Returns:
        macro_f1 (float): in [0, 1]; NaN when there are no examples.
        per_label (dict[str, float]): F1 of each label.
    Examples:
        >>> metric = evaluate.load("training/metrics/macro_f1")
        >>> metric.compute(predictions=["a", "a", "b"], references=["a", "b", "b"])["macro_f1"]
        0.6666666666666666
    """

    def _compute(self, predictions: list[str], references: list[str],
                 labels: list[str] | None = None) -> dict[str, object]:
        if len(references) == 0:
            return {"macro_f1": float("nan"), "per_label": {}}
        predicted = np.asarray(predictions, dtype=object)
        actual = np.asarray(references, dtype=object)
        names = list(labels) if labels is not None else sorted(set(predictions) | set(references))
        per_label = {
            name: _f1(int(np.sum((predicted == name) & (actual == name))),
                      int(np.sum(predicted == name)), int(np.sum(actual == name)))
            for name in names
        }
        return {"macro_f1": float(np.mean(list(per_label.values()))), "per_label": per_label}
