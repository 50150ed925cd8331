"""Local `evaluate` metric modules (accuracy, macro_f1, confusion_matrix, topk_accuracy), loaded by path; their shared base is `label_metric`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import evaluate

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("accuracy", "macro_f1", "confusion_matrix", "topk_accuracy")


def metric_path(name: str) -> Path:
    """The folder of a local metric module; ValueError for an unknown name."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRIC_NAMES)}")
    return METRICS_DIR / name


@functools.cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """Load a local metric module by path (offline-safe), once per process; compute from one thread at a time."""
    import evaluate  # deferred: importing evaluate pulls in transformers.pipelines (~1.5-10 s)

    return evaluate.load(str(metric_path(name)), keep_in_memory=True)
