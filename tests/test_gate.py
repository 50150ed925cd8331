"""The promotion gate: every rule, its boundaries, missing numbers, and monotonicity."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from training.gate import GateResult, gate

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def test_first_adapter_above_threshold_is_promoted_with_a_reason_per_check() -> None:
    result = gate({"accuracy": 0.912}, threshold=0.9, max_regression=0.02)
    assert result == GateResult(True, (
        "accuracy 0.912 ≥ threshold 0.900",
        "no active adapter to compare against",
        "no regression-set numbers (no past staff corrections to check)",
    ))


def test_exactly_at_threshold_passes_and_just_below_refuses() -> None:
    assert gate({"accuracy": 0.9}, 0.9, 0.02).promote
    assert gate({"accuracy": 27 / 30}, 0.9, 0.02).promote
    below = gate({"accuracy": 0.8999}, 0.9, 0.02)
    assert not below.promote
    assert below.reasons[0] == "accuracy 0.8999 < threshold 0.9000"  # enough decimals to tell them apart


def test_regression_beyond_the_allowed_drop_refuses_with_the_numbers() -> None:
    result = gate({"accuracy": 0.916}, 0.9, 0.02, comparison={"candidate": 0.916, "active": 0.95}, active_version="s-20261116-030000")
    assert not result.promote
    assert result.reasons[0] == "accuracy 0.916 ≥ threshold 0.900"
    assert result.reasons[1] == ("regresses 0.034 against active s-20261116-030000 (0.950 → 0.916), "
                                 "more than the allowed 0.020")


def test_regression_exactly_at_the_allowed_drop_passes() -> None:
    result = gate({"accuracy": 0.93}, 0.9, 0.02, comparison={"candidate": 0.93, "active": 0.95}, active_version="v1")
    assert result.promote
    assert result.reasons[1] == "regresses 0.020 against active v1 (0.950 → 0.930), within the allowed 0.020"
    assert not gate({"accuracy": 0.9299}, 0.9, 0.02, comparison={"candidate": 0.9299, "active": 0.95}).promote


def test_improvement_and_zero_allowed_regression() -> None:
    better = gate({"accuracy": 0.96}, 0.9, 0.0, comparison={"candidate": 0.96, "active": 0.95})
    assert better.promote and better.reasons[1] == "does not regress against the active adapter (0.950 → 0.960)"
    assert gate({"accuracy": 0.95}, 0.9, 0.0, comparison={"candidate": 0.95, "active": 0.95}).promote
    assert not gate({"accuracy": 0.949}, 0.9, 0.0, comparison={"candidate": 0.949, "active": 0.95}).promote


def test_regression_set_must_not_get_worse() -> None:
    same = gate({"accuracy": 0.95}, 0.9, 0.02, candidate_regression=0.8, active_regression=0.8)
    assert same.promote
    assert same.reasons[2] == "regression set (past staff corrections): candidate 0.800 ≥ active 0.800"
    worse = gate({"accuracy": 0.99}, 0.9, 0.02, comparison={"candidate": 0.99, "active": 0.9},
                 candidate_regression=0.75, active_regression=0.8)
    assert not worse.promote
    assert worse.reasons[2] == "regression set (past staff corrections): candidate 0.750 < active 0.800"
    assert worse.reasons[:2] == ("accuracy 0.990 ≥ threshold 0.900",
                                 "does not regress against the active adapter (0.900 → 0.990)")


def test_regression_set_without_an_active_number_passes() -> None:
    result = gate({"accuracy": 0.95}, 0.9, 0.02, candidate_regression=0.5)
    assert result.promote
    assert result.reasons[2] == "regression set: candidate 0.500, no active number to compare against"


@pytest.mark.parametrize("candidate", [{}, {"accuracy": math.nan}, {"accuracy": None}, {"accuracy": "0.9"},
                                       {"accuracy": math.inf}, {"top1": 0.99}])
def test_missing_or_nan_candidate_accuracy_refuses(candidate: dict[str, object]) -> None:
    result = gate(candidate, 0.9, 0.02)  # type: ignore[arg-type]
    assert not result.promote
    assert result.reasons[0].startswith("candidate accuracy is ")


@pytest.mark.parametrize("active", [{}, {"active": math.nan}, {"active": None}])
def test_missing_or_nan_active_accuracy_refuses(active: dict[str, object]) -> None:
    result = gate({"accuracy": 0.99}, 0.9, 0.02, comparison={"candidate": 0.99} | active, active_version="v1")
    assert not result.promote
    assert result.reasons[1].startswith("accuracy of active v1 is ")


@pytest.mark.parametrize(("candidate_regression", "active_regression"),
                         [(math.nan, 0.8), (0.8, math.nan), (None, 0.8), (math.nan, None), (math.nan, math.nan)])
def test_missing_or_nan_regression_numbers_refuse(candidate_regression: float | None,
                                                  active_regression: float | None) -> None:
    result = gate({"accuracy": 0.99}, 0.9, 0.02, candidate_regression=candidate_regression,
                  active_regression=active_regression)
    assert not result.promote
    assert result.reasons[2].startswith("regression-set accuracy of the ")


def test_every_failed_check_is_listed() -> None:
    result = gate({"accuracy": 0.5}, 0.9, 0.02, comparison={"candidate": 0.5, "active": 0.95}, candidate_regression=0.1,
                  active_regression=0.9)
    assert not result.promote
    assert len(result.reasons) == 3
    assert "<" in result.reasons[0] and "more than the allowed" in result.reasons[1] and "<" in result.reasons[2]


@pytest.mark.parametrize(("threshold", "max_regression"), [(math.nan, 0.02), (0.9, -0.01), (0.9, math.nan)])
def test_invalid_settings_raise(threshold: float, max_regression: float) -> None:
    with pytest.raises(ValueError):
        gate({"accuracy": 0.95}, threshold, max_regression)


def test_gate_is_pure() -> None:
    candidate, comparison = {"accuracy": 0.93}, {"candidate": 0.93, "active": 0.95}
    first = gate(candidate, 0.9, 0.02, comparison=comparison)
    assert gate(candidate, 0.9, 0.02, comparison=comparison) == first
    assert candidate == {"accuracy": 0.93} and comparison == {"candidate": 0.93, "active": 0.95}


@given(low=unit, raise_by=unit, threshold=unit, max_regression=st.floats(0.0, 0.5),
       active=st.none() | unit, regression=st.none() | st.tuples(unit, unit))
def test_raising_candidate_accuracy_never_turns_promote_into_refuse(
        low: float, raise_by: float, threshold: float, max_regression: float,
        active: float | None, regression: tuple[float, float] | None) -> None:
    high = min(1.0, low + raise_by)
    extra = {} if regression is None else {"candidate_regression": regression[0], "active_regression": regression[1]}
    def comparison(accuracy: float) -> dict[str, float] | None:
        return None if active is None else {"candidate": accuracy, "active": active}

    before = gate({"accuracy": low}, threshold, max_regression, comparison=comparison(low), **extra)
    after = gate({"accuracy": high}, threshold, max_regression, comparison=comparison(high), **extra)
    assert after.promote or not before.promote
    assert len(before.reasons) == len(after.reasons) == 3


@given(accuracy=unit, threshold=unit, max_regression=st.floats(0.0, 0.5), active=st.none() | unit)
def test_promote_matches_the_rule(accuracy: float, threshold: float, max_regression: float,
                                  active: float | None) -> None:
    result = gate({"accuracy": accuracy}, threshold, max_regression,
                  comparison=None if active is None else {"candidate": accuracy, "active": active})
    margin = 1e-6  # stay clear of the float tolerance at the exact boundary
    if accuracy < threshold - margin or (active is not None and accuracy < active - max_regression - margin):
        assert not result.promote
    if accuracy >= threshold and (active is None or accuracy >= active - max_regression):
        assert result.promote


def test_reasons_show_enough_decimals_to_tell_numbers_apart() -> None:
    result = gate({"accuracy": 0.9299}, 0.9, 0.02, comparison={"candidate": 0.9299, "active": 0.95})
    assert result.reasons[1] == ("regresses 0.0201 against the active adapter (0.950 → 0.930), "
                                 "more than the allowed 0.0200")


def test_the_interval_and_n_are_shown_and_a_wide_interval_refuses() -> None:
    tight = gate({"accuracy": 0.914, "n": 360, "low": 0.880, "high": 0.939}, 0.9, 0.02, max_interval=0.05)
    assert tight.promote
    assert tight.reasons[:2] == ("accuracy 0.914 [0.880, 0.939] (n=360) ≥ threshold 0.900",
                                 "95% interval ±0.029 from n=360 is within ±0.050")
    wide = gate({"accuracy": 0.95, "n": 38, "low": 0.827, "high": 0.986}, 0.9, 0.02, max_interval=0.05)
    assert not wide.promote
    assert wide.reasons[1] == ("95% interval ±0.080 from n=38 is wider than ±0.050: "
                               "too few labelled examples to trust the estimate")
    assert not gate({"accuracy": 0.95}, 0.9, 0.02, max_interval=0.05).promote  # no interval: cannot tell


def test_a_drop_within_the_noise_of_the_paired_comparison_is_not_a_regression() -> None:
    noisy = {"candidate": 0.90, "active": 0.95, "n": 20, "low": -0.15, "high": 0.05}
    result = gate({"accuracy": 0.92}, 0.9, 0.02, comparison=noisy, active_version="v1")
    assert result.promote
    assert result.reasons[1].startswith("regresses 0.050 against active v1 (0.950 → 0.900) on n=20, more than the "
                                        "allowed 0.020, but the 95% interval of the difference [-0.150, +0.050]")
    measured = {"candidate": 0.90, "active": 0.95, "n": 700, "low": -0.07, "high": -0.03}
    assert not gate({"accuracy": 0.92}, 0.9, 0.02, comparison=measured).promote


def test_no_examples_unseen_by_both_is_nothing_to_compare() -> None:
    result = gate({"accuracy": 0.92}, 0.9, 0.02, comparison={"candidate": math.nan, "active": math.nan, "n": 0},
                  active_version="v1")
    assert result.promote
    assert result.reasons[1] == ("no labelled examples that neither active v1 nor the candidate was trained on: "
                                 "nothing to compare")
