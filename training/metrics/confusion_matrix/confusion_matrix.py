"""Confusion matrix over string labels: rows are true labels, columns predicted labels."""

from __future__ import annotations

import numpy as np

from training.metrics.label_metric import LabelMetric


class ConfusionMatrix(LabelMetric):
    """Confusion matrix for string labels."""

    about = "Counts of (true label, predicted label) pairs; matrix[i][j] = true labels[i] predicted as labels[j]."
    usage = """
    Args:
        predictions (list of str): predicted labels.
        references (list of str): true labels.
        labels (list of str, optional): row/column order; default is every label seen, sorted.
            Pairs whose labels are not listed are left out.
    Returns:
        labels (list of str): the row and column labels.
        matrix (list of list of int): matrix[i][j] = how often true labels[i] was predicted as labels[j].
    Examples:
        >>> metric = evaluate.load("training/metrics/confusion_matrix")
        >>> metric.compute(predictions=["a", "b"], references=["a", "a"])
        {'labels': ['a', 'b'], 'matrix': [[1, 1], [0, 0]]}
    """

    def _compute(self, predictions: list[str], references: list[str],
                 labels: list[str] | None = None) -> dict[str, object]:
        names = list(labels) if labels is not None else sorted(set(predictions) | set(references))
        index = {name: position for position, name in enumerate(names)}
        matrix = np.zeros((len(names), len(names)), dtype=np.int64)
        for true, predicted in zip(references, predictions):
            if true in index and predicted in index:
                matrix[index[true], index[predicted]] += 1
        return {"labels": names, "matrix": matrix.tolist()}
