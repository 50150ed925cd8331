"""The promotion gate: a pure decision whether a candidate adapter may replace the active one."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

METRIC = "accuracy"  # the key the gate reads for both tasks (top-1 for FAQ retrieval)
TOLERANCE = 1e-9  # float slack so that "exactly at the limit" passes despite rounding (e.g. 0.95 - 0.02)


@dataclass(frozen=True)
class GateResult:
    """Whether to promote, and one human-readable line per check, passed or failed."""

    promote: bool
    reasons: tuple[str, ...]


def _number(value: object) -> float | None:
    """The value as a finite float, or None if missing, NaN, infinite or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _describe(value: object) -> str:
    return "missing" if value is None else f"not a usable number ({value!r})"


def _pair(first: float, second: float) -> tuple[str, str]:
    """Both numbers to 3 decimals, or more (up to 6) where 3 would make different numbers look equal."""
    for decimals in range(3, 7):
        shown = f"{first:.{decimals}f}", f"{second:.{decimals}f}"
        if shown[0] != shown[1] or abs(first - second) <= TOLERANCE:
            break
    return shown


def _check_threshold(accuracy: float, threshold: float) -> tuple[bool, str]:
    shown, limit = _pair(accuracy, threshold)
    if accuracy >= threshold - TOLERANCE:
        return True, f"{METRIC} {shown} ≥ threshold {limit}"
    return False, f"{METRIC} {shown} < threshold {limit}"


def _check_active(accuracy: float, active: Mapping[str, float] | None, max_regression: float,
                  active_version: str | None) -> tuple[bool, str]:
    if active is None:
        return True, "no active adapter to compare against"
    name = f"active {active_version}" if active_version else "the active adapter"
    active_accuracy = _number(active.get(METRIC))
    if active_accuracy is None:
        return False, f"{METRIC} of {name} is {_describe(active.get(METRIC))}; cannot compare on the test split"
    drop = active_accuracy - accuracy
    change = "({} → {})".format(*_pair(active_accuracy, accuracy))
    if drop <= 0:
        return True, f"does not regress against {name} {change}"
    shown, allowed = _pair(drop, max_regression)
    if drop <= max_regression + TOLERANCE:
        return True, f"regresses {shown} against {name} {change}, within the allowed {allowed}"
    return False, f"regresses {shown} against {name} {change}, more than the allowed {allowed}"


def _check_regression_set(candidate_regression: float | None,
                          active_regression: float | None) -> tuple[bool, str]:
    if candidate_regression is None and active_regression is None:
        return True, "no regression-set numbers (no past staff corrections to check)"
    candidate = _number(candidate_regression)
    if candidate is None:
        return False, f"regression-set {METRIC} of the candidate is {_describe(candidate_regression)}"
    if active_regression is None:
        return True, f"regression set: candidate {candidate:.3f}, no active number to compare against"
    active = _number(active_regression)
    if active is None:
        return False, f"regression-set {METRIC} of the active adapter is {_describe(active_regression)}"
    shown, reference = _pair(candidate, active)
    passed = candidate >= active - TOLERANCE
    relation = "≥" if passed else "<"
    return passed, f"regression set (past staff corrections): candidate {shown} {relation} active {reference}"


def gate(candidate: Mapping[str, float], threshold: float, max_regression: float,
         active: Mapping[str, float] | None = None,
         candidate_regression: float | None = None, active_regression: float | None = None,
         active_version: str | None = None) -> GateResult:
    """Promote iff accuracy ≥ threshold, no test-split drop beyond max_regression, no regression-set drop.

    `candidate` and `active` are metrics measured on the same held-out test split. The regression
    numbers are accuracies on the fixed set of past staff corrections; pass None (not NaN) for both
    when that set is empty. Missing or NaN metrics refuse.
    """
    if _number(threshold) is None or _number(max_regression) is None or max_regression < 0:
        raise ValueError(f"threshold and max_regression must be finite, max_regression ≥ 0; "
                         f"got {threshold!r}, {max_regression!r}")
    accuracy = _number(candidate.get(METRIC))
    if accuracy is None:
        checks = [(False, f"candidate {METRIC} is {_describe(candidate.get(METRIC))}; refusing")]
    else:
        checks = [_check_threshold(accuracy, threshold),
                  _check_active(accuracy, active, max_regression, active_version)]
    checks.append(_check_regression_set(candidate_regression, active_regression))
    return GateResult(promote=all(passed for passed, _ in checks), reasons=tuple(reason for _, reason in checks))
