"""Accuracy estimates a small shop can trust: intervals, the holdout / holdout+refit / CV rule, folds, samples, paired comparisons, the pipeline."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.seed import load_demo
from storage.store import Store
from training.args import TrainArgs
from training.estimate import (
    Comparison,
    Estimate,
    Plan,
    estimate_plan,
    half_width,
    holdout_is_enough,
    rows_needed,
    stratified_folds,
    stratified_sample,
    wilson_interval,
)
from training.measure import row_key
from training.pipeline import retrain
from training.registry import AdapterRegistry
from training.snapshot import take_snapshot
from training.tasks import read_trained_on

DEMO_SHOP = Path(__file__).resolve().parents[1] / "data" / "demo"
FAST = TrainArgs(epochs=1, min_steps=0, batch_size=16, progress=False)
# The tiny random model scores ~40% on 3 balanced classes: a 0.2 threshold promotes it, and ±8 points at
# 0.2 needs more than the 38-review test split, so sentiment is cross-validated (FAQ, at 0, is not).
OPEN = {"sentiment_accuracy": 0.2, "faq_accuracy": 0.0, "max_regression": 1.0, "max_interval": 0.08}


def test_wilson_interval_matches_known_values_and_shrinks_with_n() -> None:
    low, high = wilson_interval(27, 38)  # the demo shop's old 38-review test split at 71%
    assert (round(low, 3), round(high, 3)) == (0.552, 0.830)
    assert half_width(0.9, 38) > 0.09  # ±10 points: a gate on it decides by chance
    assert half_width(0.9, 360) < 0.035  # all 360 labelled reviews, cross-validated
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(0, 10)[0] == pytest.approx(0.0)


def test_holdout_is_used_only_when_its_interval_is_narrow_enough() -> None:
    assert not holdout_is_enough(38, 0.90, 0.05)
    assert not holdout_is_enough(0, 0.90, 0.05)
    assert holdout_is_enough(300, 0.90, 0.05)
    assert holdout_is_enough(200, 0.85, 0.05) and not holdout_is_enough(150, 0.85, 0.05)


@pytest.mark.parametrize(("threshold", "max_interval", "needed"), [(0.85, 0.05, 195), (0.90, 0.05, 141), (0.0, 0.08, 21)])
def test_rows_needed_is_the_first_n_within_the_interval_and_a_holdout_needs_at_least_that(
        threshold: float, max_interval: float, needed: int) -> None:
    assert rows_needed(threshold, max_interval) == needed
    assert half_width(threshold, needed) <= max_interval < half_width(threshold, needed - 1)
    assert [n for n in range(1, 400) if holdout_is_enough(n, threshold, max_interval)] == list(range(needed, 400))
    assert rows_needed(threshold, 0.0) is None and not holdout_is_enough(10**6, threshold, 0.0)
    assert rows_needed(threshold, 1.0) == 1


def test_the_method_is_holdout_then_an_enlarged_holdout_up_to_one_folds_share_then_cv() -> None:
    assert estimate_plan(200, 1800, 0.85, 0.05, 5) == Plan("holdout", 200)  # the test split is enough
    assert estimate_plan(153, 1358, 0.85, 0.05, 5) == Plan("holdout+refit", 195)  # the 5,000-example bench's FAQ
    assert estimate_plan(150, 975, 0.85, 0.05, 5) == Plan("holdout+refit", 195)  # 195 is exactly one fold's share
    assert estimate_plan(150, 974, 0.85, 0.05, 5) == Plan("cv", 0)  # one row fewer: a fold's model would see more
    assert estimate_plan(150, 974, 0.85, 0.05, 4) == Plan("holdout+refit", 195)  # larger folds
    assert estimate_plan(55, 585, 0.85, 0.05, 5) == Plan("cv", 0)  # the demo shop's FAQ
    assert estimate_plan(38, 321, 0.90, 0.05, 5) == Plan("cv", 0)  # the demo shop's reviews
    assert estimate_plan(0, 2000, 0.85, 0.05, 5) == Plan("holdout+refit", 195)  # no test split at all
    assert estimate_plan(150, 10**6, 0.85, 0.0, 5) == Plan("cv", 0)  # no interval is narrow enough


@given(sizes=st.lists(st.integers(1, 30), min_size=1, max_size=8), k=st.integers(0, 60), seed=st.integers(0, 99))
def test_a_stratified_sample_is_proportional_nested_and_chosen_by_key_alone(sizes: list[int], k: int, seed: int) -> None:
    labels = [f"label{i}" for i, size in enumerate(sizes) for _ in range(size)]
    keys = [f"{seed}-{i:03d}" for i in range(len(labels))]
    sample = stratified_sample(labels, keys, k)
    assert len(sample) == min(k, len(labels)) and sample == sorted(set(sample))
    assert set(sample) <= set(stratified_sample(labels, keys, k + 1))  # nested: one more takes one more
    order = list(range(len(labels)))[::-1]  # the same rows in another order give the same rows
    again = stratified_sample([labels[i] for i in order], [keys[i] for i in order], k)
    assert {keys[order[i]] for i in again} == {keys[i] for i in sample}
    taken = Counter(labels[i] for i in sample)
    for label, size in zip(sorted(set(labels), key=labels.index), sizes):  # near its share (rounding per label)
        assert abs(taken[label] - size * len(sample) / len(labels)) < 1 + len(sizes) / 2
    equal = [label for label, size in zip(sorted(set(labels), key=labels.index), sizes) if size == sizes[0]]
    assert max(taken[x] for x in equal) - min(taken[x] for x in equal) <= 1  # labels of one size: evenly


def test_an_enlarged_holdout_takes_one_phrasing_of_many_intents_before_a_second_of_any() -> None:
    labels = [f"intent{i}" for i in range(150) for _ in range(8)]
    keys = [row_key(f"phrasing {i}") for i in range(len(labels))]
    sample = stratified_sample(labels, keys, 45)
    assert len({labels[i] for i in sample}) == 45


@given(labels=st.lists(st.sampled_from(["negative", "neutral", "positive"]), min_size=1, max_size=200),
       k=st.integers(2, 10))
def test_stratified_folds_spread_every_label_evenly(labels: list[str], k: int) -> None:
    folds = stratified_folds(labels, k)
    assert len(folds) == len(labels) and set(folds) <= set(range(k))
    for label in set(labels):
        counts = Counter(f for f, y in zip(folds, labels) if y == label)
        sizes = [counts.get(f, 0) for f in range(k)]
        assert max(sizes) - min(sizes) <= 1
    sizes = Counter(folds)
    assert max(sizes.values()) - min(sizes.get(f, 0) for f in range(k)) <= 1 + len(set(labels))
    assert stratified_folds(labels, k) == folds  # seeded


def test_estimate_and_paired_comparison() -> None:
    estimate = Estimate.of([True] * 9 + [False], "cv", folds=5)
    assert (estimate.accuracy, estimate.n, estimate.method, estimate.folds) == (0.9, 10, "cv", 5)
    assert estimate.low < 0.9 < estimate.high and estimate.as_dict()["n"] == 10
    same = Comparison.of([True, False, True, True], [True, False, True, True])
    assert (same.candidate, same.active, same.n, same.low, same.high) == (0.75, 0.75, 4, 0.0, 0.0)
    worse = Comparison.of([False] * 50 + [True] * 50, [True] * 100)
    assert worse.candidate == 0.5 and worse.active == 1.0 and worse.high < 0
    empty = Comparison.of([], [])
    assert empty.n == 0
    with pytest.raises(ValueError):
        Comparison.of([True], [])


@pytest.fixture
def demo_shop(make_settings, tiny_base):
    """The demo shop on the tiny model: 360 reviews, a 38-review test split."""
    settings = make_settings(model={"base": str(tiny_base), "top_layers": 1}, thresholds=OPEN)
    with Store(settings.paths.database) as store:
        load_demo(store, DEMO_SHOP)
    return settings


def test_a_tiny_test_split_is_replaced_by_cross_validation_over_all_labelled_rows(demo_shop) -> None:
    result = retrain(demo_shop, args=FAST)
    sentiment = result["tasks"]["sentiment"]
    with Store(demo_shop.paths.database) as store:
        snapshot = take_snapshot(store)
        rows = snapshot.rows["sentiment"]
        metrics = sentiment["metrics"]
        assert metrics["method"] == "cv" and metrics["folds"] == 5
        assert metrics["n"] == len(rows) >= 300  # every labelled review, not the 38 of the test split
        assert metrics["high"] - metrics["low"] <= 0.11  # ±5.5 points at most, at ~40%
        assert any("(n=360)" in reason for reason in sentiment["reasons"])
        record = store.adapters.get(sentiment["version"])
        assert record.metrics["n"] == metrics["n"]  # recorded with the adapter
        # The adapter that ships was fitted on every row except the validation split (kept for early stopping).
        trained_on = read_trained_on(AdapterRegistry(demo_shop.paths.adapters, store).verify(record))
        assert trained_on == {row_key(r.text) for r in rows}  # fitted on train + test; validation for early stopping
        assert sentiment["comparison"] is None  # no active adapter yet


def test_the_next_candidate_is_compared_with_the_active_on_rows_neither_saw(demo_shop) -> None:
    retrain(demo_shop, args=FAST)
    again = retrain(demo_shop, args=FAST, force=True)
    comparison = again["tasks"]["sentiment"]["comparison"]
    assert comparison["n"] == 0  # nothing new: the active was fitted on every row
    assert any("nothing to compare" in r for r in again["tasks"]["sentiment"]["reasons"])
    new = [("芋圆太少了，下次不点了", "negative"), ("the mango slush was perfect", "positive"),
           ("还可以吧，没什么特别", "neutral"), ("staff forgot my order twice", "negative")]
    with Store(demo_shop.paths.database) as store:
        for text, label in new:
            store.examples.add("sentiment", text, label, "zh" if text[0] > "~" else "en", "correction")
    third = retrain(demo_shop, args=FAST, force=True)
    comparison = third["tasks"]["sentiment"]["comparison"]
    assert comparison["n"] == len(new)  # exactly the rows the active adapter never saw
    assert third["tasks"]["sentiment"]["active_metrics"]["n"] == len(new)


def test_a_large_enough_test_split_is_used_as_it_is(make_settings, tiny_base) -> None:
    settings = make_settings(model={"base": str(tiny_base), "top_layers": 1},
                             thresholds=OPEN | {"max_interval": 0.2})
    with Store(settings.paths.database) as store:
        load_demo(store, DEMO_SHOP)
        test_size = take_snapshot(store).counts["sentiment"]["test"]
    metrics = retrain(settings, args=FAST)["tasks"]["sentiment"]["metrics"]
    assert metrics["method"] == "holdout" and metrics["n"] == test_size


def test_a_test_split_too_small_is_enlarged_from_train_and_the_refit_on_all_rows_ships(make_settings,
                                                                                       tiny_base) -> None:
    loose = OPEN | {"max_interval": 0.11}  # 50 reviews at 0.2: more than the 38 of the test split, ≤ 321 / 5 (train + test)
    settings = make_settings(model={"base": str(tiny_base), "top_layers": 1}, thresholds=loose)
    with Store(settings.paths.database) as store:
        load_demo(store, DEMO_SHOP)
    sentiment = retrain(settings, args=FAST)["tasks"]["sentiment"]
    with Store(settings.paths.database) as store:
        snapshot = take_snapshot(store)
        metrics = sentiment["metrics"]
        assert metrics["method"] == "holdout+refit" and metrics["folds"] == 0
        assert metrics["n"] == rows_needed(0.2, 0.11) == 50 > snapshot.counts["sentiment"]["test"]
        assert any("(n=50)" in r for r in sentiment["reasons"])  # the gate reads the held-out estimate
        record = store.adapters.get(sentiment["version"])
        trained_on = read_trained_on(AdapterRegistry(settings.paths.adapters, store).verify(record))
        assert trained_on == {row_key(r.text) for r in snapshot.rows["sentiment"]}  # shipped: refitted on all rows


def test_cross_validation_predicts_every_row_once_by_a_model_that_never_saw_it() -> None:
    from training.measure import cross_validate
    from training.snapshot import Row

    rows = [Row(f"text {i}", ("negative", "neutral", "positive")[i % 3], "en",
                ("train", "validation", "test", "train", "train")[i % 5], "seed") for i in range(40)]
    fitted: list[set[str]] = []

    class Spec:
        name = "fake"

        def fit(self, train, validation, anchors):
            assert not {t for t, _ in train} & {t for t, _ in validation}  # validation rows early-stop only
            fitted.append({t for t, _ in train} | {t for t, _ in validation})
            return len(fitted) - 1

        def ranked(self, model, texts, index):
            assert not set(texts) & fitted[model]  # never predicts a row its model was fitted on
            return [[{r.text: r.label for r in rows}[t]] for t in texts]

    ranked = cross_validate(Spec(), rows, (), folds=5)  # type: ignore[arg-type]
    assert len(fitted) == 5 and all(labels == [r.label] for labels, r in zip(ranked, rows))
    assert all(len(seen) == 32 for seen in fitted)  # each fold model saw the other 4/5 of the rows
