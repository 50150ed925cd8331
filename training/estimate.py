"""How good is a candidate, and how sure are we: accuracy estimates with n and a 95% interval.

A small shop's held-out test split is a few dozen examples (±15 points at n = 38), so a gate
reading it decides by chance. The rule here: when the test split is large enough for the
configured interval (`thresholds.max_interval`, judged at the task's threshold), the candidate
trained on the train split is scored on it ("holdout"). Otherwise the recipe is scored by
stratified k-fold cross-validation over *all* labelled examples (every example predicted once
by a model that never saw it, so n is everything the shop has), and the adapter that ships is
then trained on all of them ("cv"). The comparison with the active adapter is paired: both
predict the examples neither was trained on.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

Z95 = 1.959964


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of the proportion correct / n ((0, 1) when n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def half_width(p: float, n: int) -> float:
    """Half the width of the Wilson interval of an accuracy p measured on n examples."""
    low, high = wilson_interval(round(p * n), n)
    return (high - low) / 2


def holdout_is_enough(n_test: int, threshold: float, max_interval: float) -> bool:
    """Whether a test split of n_test examples gives an interval within ±max_interval at the threshold."""
    return n_test > 0 and half_width(threshold, n_test) <= max_interval


@dataclass(frozen=True)
class Estimate:
    """An accuracy with how it was measured: method ("holdout" | "cv"), n, 95% interval, folds (cv)."""

    accuracy: float
    n: int
    low: float
    high: float
    method: str
    folds: int = 0

    @classmethod
    def of(cls, correct: Sequence[bool], method: str, folds: int = 0) -> Estimate:
        """The estimate from per-example hits."""
        n, hits = len(correct), int(sum(bool(c) for c in correct))
        low, high = wilson_interval(hits, n)
        return cls(hits / n if n else float("nan"), n, low, high, method, folds)

    def as_dict(self) -> dict:
        """JSON-ready, rounded."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Comparison:
    """Candidate vs active on the same examples, none of which either was trained on."""

    candidate: float
    active: float
    n: int
    low: float  # 95% interval of candidate - active
    high: float

    @classmethod
    def of(cls, candidate_correct: Sequence[bool], active_correct: Sequence[bool]) -> Comparison:
        """Paired difference of two models' hits on the same examples (normal approximation)."""
        n = len(candidate_correct)
        if n != len(active_correct):
            raise ValueError("paired hits differ in length")
        if n == 0:
            return cls(float("nan"), float("nan"), 0, -1.0, 1.0)
        diffs = [float(c) - float(a) for c, a in zip(candidate_correct, active_correct)]
        mean = sum(diffs) / n
        var = sum((d - mean) ** 2 for d in diffs) / max(n - 1, 1)
        half = Z95 * math.sqrt(var / n) if n > 1 else 1.0
        return cls(sum(map(bool, candidate_correct)) / n, sum(map(bool, active_correct)) / n, n,
                   mean - half, mean + half)

    def as_dict(self) -> dict:
        """JSON-ready, rounded."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def stratified_folds(labels: Sequence[str], k: int, seed: int = 13) -> list[int]:
    """A fold number (0..k-1) per example; each label spread evenly over the folds, order seeded."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    folds = [0] * len(labels)
    offset = 0
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        for j, i in enumerate(members):
            folds[i] = (offset + j) % k
        offset += len(members)  # the next label starts where this one stopped: fold sizes stay even
    return folds
