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
    shown = f"{first:.3f}", f"{second:.3f}"
    for decimals in range(4, 7):
        if shown[0] != shown[1] or abs(first - second) <= TOLERANCE:
            break
        shown = f"{first:.{decimals}f}", f"{second:.{decimals}f}"
    return shown


def _interval(metrics: Mapping[str, object]) -> str:
    """" [0.880, 0.939] (n=360)" when the metrics carry an interval, else ""."""
    low, high, n = (_number(metrics.get(k)) for k in ("low", "high", "n"))
    if low is None or high is None:
        return f" (n={int(n)})" if n is not None else ""
    return f" [{low:.3f}, {high:.3f}]" + (f" (n={int(n)})" if n is not None else "")


def _check_threshold(accuracy: float, threshold: float, candidate: Mapping[str, object]) -> tuple[bool, str]:
    shown, limit = _pair(accuracy, threshold)
    if accuracy >= threshold - TOLERANCE:
        return True, f"{METRIC} {shown}{_interval(candidate)} ≥ threshold {limit}"
    return False, f"{METRIC} {shown}{_interval(candidate)} < threshold {limit}"


def _check_precision(candidate: Mapping[str, object], max_interval: float) -> tuple[bool, str]:
    low, high, n = (_number(candidate.get(k)) for k in ("low", "high", "n"))
    if low is None or high is None:
        return False, "the estimate has no 95% interval; cannot tell how sure it is"
    half = (high - low) / 2
    counted = f" from n={int(n)}" if n is not None else ""
    if half <= max_interval + TOLERANCE:
        return True, f"95% interval ±{half:.3f}{counted} is within ±{max_interval:.3f}"
    return False, (f"95% interval ±{half:.3f}{counted} is wider than ±{max_interval:.3f}: "
                   f"too few labelled examples to trust the estimate")


def _check_active(comparison: Mapping[str, object] | None, max_regression: float,
                  active_version: str | None) -> tuple[bool, str]:
    if comparison is None:
        return True, "no active adapter to compare against"
    name = f"active {active_version}" if active_version else "the active adapter"
    n = _number(comparison.get("n"))
    if n is not None and n == 0:
        return True, f"no labelled examples that neither {name} nor the candidate was trained on: nothing to compare"
    candidate, active = _number(comparison.get("candidate")), _number(comparison.get("active"))
    if candidate is None or active is None:
        which, value = ("candidate", comparison.get("candidate")) if candidate is None else (name, comparison.get("active"))
        return False, f"{METRIC} of {which} is {_describe(value)}; cannot compare"
    drop = active - candidate
    change = "({} → {})".format(*_pair(active, candidate)) + (f" on n={int(n)}" if n is not None else "")
    if drop <= 0:
        return True, f"does not regress against {name} {change}"
    shown, allowed = _pair(drop, max_regression)
    if drop <= max_regression + TOLERANCE:
        return True, f"regresses {shown} against {name} {change}, within the allowed {allowed}"
    high, low = _number(comparison.get("high")), _number(comparison.get("low"))
    if high is not None and low is not None and high >= 0:
        return True, (f"regresses {shown} against {name} {change}, more than the allowed {allowed}, but the "
                      f"95% interval of the difference [{low:+.3f}, {high:+.3f}] includes 0: not a measurable regression")
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


def gate(candidate: Mapping[str, object], threshold: float, max_regression: float,
         comparison: Mapping[str, object] | None = None,
         candidate_regression: float | None = None, active_regression: float | None = None,
         active_version: str | None = None, max_interval: float | None = None) -> GateResult:
    """Promote iff accuracy ≥ threshold, its interval is tight enough, no regression against the active, none on past corrections.

    `candidate` is the candidate's estimate ("accuracy", and "n", "low", "high" for its 95%
    interval). `max_interval` (None: not checked) is the widest half-interval trusted.
    `comparison` is candidate vs active on the same examples that neither was trained on:
    "candidate", "active", "n" and, optionally, "low"/"high" of the paired difference's 95%
    interval; a drop beyond `max_regression` refuses unless that interval includes 0. The
    regression numbers are accuracies on the past staff corrections; pass None (not NaN) for both
    when there are none. Missing or NaN metrics refuse.
    """
    if _number(threshold) is None or _number(max_regression) is None or max_regression < 0:
        raise ValueError(f"threshold and max_regression must be finite, max_regression ≥ 0; "
                         f"got {threshold!r}, {max_regression!r}")
    accuracy = _number(candidate.get(METRIC))
    if accuracy is None:
        checks = [(False, f"candidate {METRIC} is {_describe(candidate.get(METRIC))}; refusing")]
    else:
        checks = [_check_threshold(accuracy, threshold, candidate)]
        if max_interval is not None:
            checks.append(_check_precision(candidate, max_interval))
        checks.append(_check_active(comparison, max_regression, active_version))
    checks.append(_check_regression_set(candidate_regression, active_regression))
    return GateResult(promote=all(passed for passed, _ in checks), reasons=tuple(reason for _, reason in checks))
