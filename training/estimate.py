"""How good is a candidate, and how sure are we: accuracy estimates with n and a 95% interval.

A small shop's held-out test split is a few dozen examples (±15 points at n = 38), so a gate
reading it decides by chance. The rule here (`estimate_plan`), with n = `rows_needed`, the fewest
examples whose interval at the task's threshold is within `thresholds.max_interval`:

- the test split holds n or more: the candidate trained on the train split is scored on it and
  ships as trained ("holdout");
- n is at most one cross-validation fold's share of the rows a model is fitted on (everything but
  the validation split, / `thresholds.cv_folds`): the test split is enlarged to exactly n with
  train rows (`stratified_sample`: stratified by label, by stable hash), one model is fitted on the
  rest and scored on those n, and the adapter that ships is refitted on all of them
  ("holdout+refit": 2 fits instead of k + 1; the scored model sees no fewer rows than a fold's does on average);
- otherwise (small shops) the recipe is scored by stratified k-fold cross-validation over *all*
  labelled examples (every example predicted once by a model that never saw it, so n is
  everything the shop has), and the adapter that ships is then trained on all of them ("cv").

The comparison with the active adapter is paired: both predict the examples neither was trained on.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

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


HOLDOUT, HOLDOUT_REFIT, CV = "holdout", "holdout+refit", "cv"  # how an estimate was measured (Estimate.method)
METHODS = (HOLDOUT, HOLDOUT_REFIT, CV)


def rows_needed(threshold: float, max_interval: float) -> int | None:
    """The fewest examples whose 95% interval at accuracy `threshold` is within ±max_interval (None: no number is).

    Wilson's half-width bounds z/(2√n)·√(1 + z²/n) at every accuracy, so the search ends by
    z²/(2·max_interval²) + z²; rounding makes the half-width wobble around the limit (at 0.85 and
    ±0.05: n = 195 is within, 197 is not), so this is the first n, and `holdout_is_enough` is "at least it".
    """
    if max_interval <= 0:
        return None
    bound = math.ceil(Z95 * Z95 / (2 * max_interval * max_interval) + Z95 * Z95) + 1
    return next(n for n in range(1, bound + 1) if half_width(threshold, n) <= max_interval)


def holdout_is_enough(n_test: int, threshold: float, max_interval: float) -> bool:
    """Whether a test split of n_test examples gives an interval within ±max_interval at the threshold."""
    needed = rows_needed(threshold, max_interval)
    return needed is not None and n_test > 0 and n_test >= needed


class Plan(NamedTuple):
    """How a candidate is estimated: the method, and how many rows are held out (0 for CV: every row is)."""

    method: str
    held_out: int


def estimate_plan(n_test: int, n_fit: int, threshold: float, max_interval: float, folds: int) -> Plan:
    """Holdout, holdout+refit or CV (module docstring) for a test split of n_test among n_fit non-validation rows."""
    needed = rows_needed(threshold, max_interval)
    if holdout_is_enough(n_test, threshold, max_interval):
        return Plan(HOLDOUT, n_test)
    if needed is not None and needed * folds <= n_fit:  # needed ≤ one fold's share of the rows models are fitted on
        return Plan(HOLDOUT_REFIT, needed)
    return Plan(CV, 0)


@dataclass(frozen=True)
class Estimate:
    """An accuracy with how it was measured: method (HOLDOUT | HOLDOUT_REFIT | CV), n, 95% interval, folds (cv)."""

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


def stratified_sample(labels: Sequence[str], keys: Sequence[str], k: int) -> list[int]:
    """The indices of k examples, each label in proportion to its share, in index order; chosen by key, no randomness.

    Each label's members are ordered by key (a stable hash of the text) and the j-th of c members
    stands at (j + ½)/c; the k lowest are taken (ties by key), so a label's first member goes
    before any label's second (of labels of equal size), and a label with one member is taken only
    once half of every other label is. The same keys give the same sample in every run and process.
    """
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    order = []
    for members in by_label.values():
        members.sort(key=lambda i: (keys[i], i))
        order += [((j + 0.5) / len(members), keys[i], i) for j, i in enumerate(members)]
    return sorted(i for _, _, i in sorted(order)[:max(k, 0)])
