"""Training on the tiny model: snapshot, both trainers, adapter save/load, the retrain pipeline and the gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.seed import load_demo
from storage.store import Store
from training.args import TrainArgs
from training.encoder import Encoder
from training.faq import FaqTrainer, embed, load_faq, save_faq
from training.faq_index import FaqIndex
from training.features import FeatureCache, similar_lengths
from training.pipeline import retrain
from training.registry import AdapterRegistry
from training.sentiment import ReviewClassifier, SentimentTrainer, load_sentiment, save_sentiment
from training.snapshot import take_snapshot

MINI_SHOP = Path(__file__).parent / "data" / "mini_shop"
DEMO_SHOP = Path(__file__).resolve().parents[1] / "data" / "demo"

FAST = TrainArgs(epochs=1, min_steps=0, batch_size=16, progress=False)


@pytest.fixture
def shop(make_settings, tiny_base):
    """Settings on the tiny model + a file store loaded with the demo shop (enough data for every split)."""
    settings = make_settings(model={"base": str(tiny_base), "top_layers": 1},
                             thresholds={"sentiment_accuracy": 0.0, "faq_accuracy": 0.0, "max_regression": 1.0, "max_interval": 1.0})
    with Store(settings.paths.database) as store:
        load_demo(store, DEMO_SHOP)
    return settings


@pytest.fixture(scope="module")
def encoder(tiny_base):
    return Encoder(tiny_base, top_layers=1, trunk_dtype="int8")


def test_snapshot_is_stable_and_corrections_override_seed(fresh_store):
    load_demo(fresh_store, MINI_SHOP)
    first, again = take_snapshot(fresh_store), take_snapshot(fresh_store)
    assert first.id == again.id and first.rows == again.rows
    text, label = first.pairs("sentiment", "train")[0]
    new_label = "neutral" if label != "neutral" else "positive"
    fresh_store.examples.add("sentiment", text, new_label, "zh", "correction")
    corrected = take_snapshot(fresh_store)
    assert corrected.id != first.id
    assert (text, new_label) in corrected.pairs("sentiment", "train")
    assert (text, label) not in corrected.pairs("sentiment", "train")
    assert corrected.regression_set("sentiment") == [(text, new_label)]
    assert corrected.dataset("sentiment", "train").num_rows == len(corrected.pairs("sentiment", "train"))


def test_a_retired_faq_entry_leaves_the_snapshot(fresh_store):
    load_demo(fresh_store, MINI_SHOP)
    key = fresh_store.faq.keys()[0]
    before = take_snapshot(fresh_store)
    assert key in {r.label for r in before.rows["faq"]} and key in {k for _, k in before.faq_anchors}
    fresh_store.faq.retire(key, changed_by=1)
    after = take_snapshot(fresh_store)
    assert key not in {r.label for r in after.rows["faq"]} and key not in {k for _, k in after.faq_anchors}
    assert after.rows["sentiment"] == before.rows["sentiment"] and after.id != before.id


def test_sentiment_adapter_round_trip_serves_same_predictions(encoder, tmp_path):
    cache = FeatureCache(encoder, tmp_path / "features")
    data = [("好喝", "positive"), ("难喝", "negative"), ("还行", "neutral"), ("great", "positive"),
            ("awful", "negative"), ("ok", "neutral")] * 2
    trainer = SentimentTrainer(encoder, cache, FAST)
    result = trainer.train(data, data[:3])
    assert len(result.history) >= 1 and result.examples_seen > 0
    save_sentiment(result.model, tmp_path / "s")
    merged, labels = load_sentiment(encoder, tmp_path / "s")
    texts = [t for t, _ in data]
    assert np.allclose(ReviewClassifier(result.model, cache).predict_proba(texts),
                       ReviewClassifier(merged, cache, labels).predict_proba(texts), atol=1e-4)
    assert labels == trainer.labels
    assert list((tmp_path / "features").rglob("*.npy")), "trunk features are cached on disk"


def test_faq_adapter_round_trip_and_index(encoder, tmp_path):
    cache = FeatureCache(encoder)
    pairs = [("几点开门", "hours"), ("营业时间", "hours"), ("when do you open", "hours"),
             ("多少钱", "price"), ("how much", "price"), ("价格", "price")]
    result = FaqTrainer(encoder, cache, FAST).train(pairs, [])
    save_faq(result.model, tmp_path / "f")
    merged, router = load_faq(encoder, tmp_path / "f")
    assert router is None
    a, b = embed(result.model, cache, ["营业时间"]), embed(merged, cache, ["营业时间"])
    assert abs(float((a * b).sum()) - 1.0) < 1e-4
    index = FaqIndex.build(merged, cache, pairs)
    hit = index.search(embed(merged, cache, ["营业时间"]), k=2)[0]
    assert hit[0][0] == "hours" and hit[0][1] == pytest.approx(1.0, abs=1e-4)
    assert {key for key, *_ in hit} == {"hours", "price"}
    assert 0.0 <= hit[0][2] <= 1.0


@pytest.mark.parametrize("mixed", [True, False])
def test_training_steps_compute_in_bfloat16_where_native_and_the_rest_in_float32(encoder, monkeypatch, mixed):
    import torch

    import training.lora

    monkeypatch.setattr(training.lora, "native_bf16", lambda device: True)  # as on a CPU with AVX512-BF16
    linear_outputs: list[torch.dtype] = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda module, _, out: linear_outputs.append(out.dtype) if isinstance(module, torch.nn.Linear) else None)
    try:
        cache = FeatureCache(encoder)
        args = TrainArgs(epochs=1, min_steps=0, batch_size=4, progress=False, mixed_precision=mixed)
        reviews = [("好喝", "positive"), ("难喝", "negative"), ("还行", "neutral"), ("great", "positive")] * 2
        network = SentimentTrainer(encoder, cache, args).train(reviews, []).model
        faq = FaqTrainer(encoder, cache, args).train([("几点开门", "hours"), ("营业时间", "hours"),
                                                      ("多少钱", "price"), ("价格", "price")], []).model
        assert (torch.bfloat16 in linear_outputs) is mixed  # the steps' forward
        assert {p.dtype for m in (network, faq) for p in m.parameters()} == {torch.float32}  # the weights
        linear_outputs.clear()
        probabilities = ReviewClassifier(network, cache).predict_proba(["好喝"])
        embed(faq, cache, ["营业时间"])
        assert probabilities.dtype == np.float32 and set(linear_outputs) == {torch.float32}  # predictions
    finally:
        hook.remove()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 128), max_size=80), st.integers(1, 40))
def test_inference_groups_hold_every_text_once_in_similar_lengths(lengths, most):
    groups = similar_lengths(lengths, most)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    for group in groups:
        shortest, longest = min(lengths[i] for i in group), max(lengths[i] for i in group)
        assert 1 <= len(group) <= most and longest <= max(shortest * 1.25, shortest + 4)
    assert similar_lengths([12, 11, 128, 13, 10], 32) == [[4, 1, 0, 3], [2]]  # the long one alone, the rest together


def test_retrain_promotes_through_the_gate_then_refuses_a_worse_candidate(shop):
    first = retrain(shop, "cli", args=FAST)
    assert first["status"] == "promoted", first
    assert all(t["promoted"] for t in first["tasks"].values()), first["tasks"]
    with Store(shop.paths.database) as store:
        registry = AdapterRegistry(shop.paths.adapters, store)
        active = {task: registry.active(task).version for task in ("sentiment", "faq")}
        assert store.runs.last().status == "promoted"
    strict = shop.__class__(**{**shop.__dict__, "thresholds": shop.thresholds.__class__(
        **{**shop.thresholds.__dict__, "sentiment_accuracy": 1.0, "faq_accuracy": 1.0})})
    second = retrain(strict, "cli", args=FAST)
    assert second["status"] == "refused"
    assert any("< threshold" in r for r in second["tasks"]["sentiment"]["reasons"])
    with Store(shop.paths.database) as store:
        registry = AdapterRegistry(shop.paths.adapters, store)
        assert {task: registry.active(task).version for task in active} == active, "old adapters keep serving"
        rejected = [a for a in store.adapters.history("sentiment") if a.status == "rejected"]
        assert rejected and rejected[0].reasons


def test_scheduled_retrain_is_skipped_without_new_data(shop):
    assert retrain(shop, "cli", args=FAST)["status"] == "promoted"
    skipped = retrain(shop, "schedule", args=FAST)
    assert skipped["status"] == "skipped" and "fewer than" in skipped["reasons"][0]


def test_evaluate_active_scores_the_promoted_adapters(shop):
    from training.scoring import evaluate_active

    promoted = retrain(shop, "cli", args=FAST)
    report = evaluate_active(shop)
    assert report["sentiment"]["active_version"] == promoted["tasks"]["sentiment"]["version"]
    assert report["sentiment"]["active"]["n"] > 0 and 0.0 <= report["faq"]["base"]["accuracy"] <= 1.0


def test_runs_cut_off_by_a_stop_are_closed_and_their_candidates_rejected(make_settings, tmp_path):
    from training.pipeline import _reject_orphans

    settings = make_settings()
    with Store(settings.paths.database) as store:
        run_id = store.runs.start("schedule")
        store.runs.table.update(run_id, {"owner_started": "a bot that has since stopped"})
        started = store.runs.get(run_id).started_at
        registry = AdapterRegistry(settings.paths.adapters, store)
        staging = registry.staging_dir("faq")
        (staging / "adapter_model.safetensors").write_bytes(b"weights")
        version = registry.publish("faq", staging, {"metrics": {"accuracy": 0.9}, "base_model": "tiny"}).version
        _reject_orphans(settings, store, since=started, reason="exit code -9")
        assert store.adapters.get(version).status == "rejected"
        assert store.runs.close_interrupted() == 1
        assert store.runs.get(run_id).status == "failed" and store.runs.close_interrupted() == 0
