"""What the local metric modules share: an `evaluate.Metric` over string labels, its info from two class attributes.

Each module (accuracy/, macro_f1/, ...) subclasses `LabelMetric` with its `about` and `usage`
texts and its `_compute`. `LabelMetric` is abstract, so `evaluate.load(path)`, which takes the
first concrete Metric class in a module, finds the module's own class and not this one.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any

import datasets
import evaluate

LABEL = datasets.Value("string")


class LabelMetric(evaluate.Metric, metaclass=ABCMeta):
    """Predictions and references are string labels (or, with `ranked`, lists of labels, best first)."""

    about: str = ""  # the metric's one-line description
    usage: str = ""  # its arguments, returns and an example
    ranked: bool = False

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=self.about,
            citation="",
            inputs_description=self.usage,
            features=datasets.Features({"predictions": datasets.Sequence(LABEL) if self.ranked else LABEL,
                                        "references": LABEL}),
        )

    @abstractmethod
    def _compute(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The scores of predictions against references."""
