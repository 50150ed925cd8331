"""Serving runtime: atomic swaps under concurrent requests, the correction memory, the device switch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from swapkit import assert_swaps_never_mix

from serving.memory import CorrectionMemory
from serving.runtime import ModelRuntime, ServingModel
from training.device import SKIP_QUANTISATION, DeviceError, choose_device, quantisation_config
from training.encoder import EmbeddingModel, Encoder, SentimentModel
from training.faq_index import FaqIndex
from training.features import FeatureCache
from training.router import RouterWeights

TEXTS = ["珍珠太硬了", "能做少糖吗?", "do you deliver?", "great tea", "还行吧", "the pearls were stale"]
FAQ = [("几点开门", "hours"), ("when do you open", "hours"), ("可以外卖吗", "delivery"), ("do you deliver", "delivery")]


@pytest.fixture(scope="module")
def encoder(tiny_base):
    return Encoder(tiny_base, top_layers=1)


def serving(encoder: Encoder, seed: int, version: str, route_to_reviews: bool = True) -> ServingModel:
    """A serving model with its own random sentiment head (distinguishable outputs per seed)."""
    torch.manual_seed(seed)
    sentiment = SentimentModel(encoder.new_top(), encoder.hidden_size, 3).eval()
    faq = EmbeddingModel(encoder.new_top()).eval()
    index = FaqIndex.build(faq, FeatureCache(encoder), FAQ)
    bias = -10.0 if route_to_reviews else 10.0
    router = RouterWeights(np.zeros(encoder.hidden_size, dtype=np.float32), bias)
    return ServingModel(encoder, faq, index, sentiment, router=router, versions={"sentiment": version})


def test_swap_under_concurrent_requests_never_mixes_models(encoder):
    models = [serving(encoder, 1, "a"), serving(encoder, 2, "b")]
    assert_swaps_never_mix(models, TEXTS, swaps=80)


def test_correction_takes_effect_at_once_for_the_same_text(encoder):
    runtime = ModelRuntime(serving(encoder, 1, "a"), answer_threshold=0.5)
    before = runtime.decide("珍珠太硬了")
    assert before.source == "model" and before.kind == "review"
    runtime.remember("珍珠太硬了", "review", "negative")
    after = runtime.decide("  珍珠太硬了 ")  # normalised: spacing does not matter
    assert (after.kind, after.label, after.source, after.confidence) == ("review", "negative", "memory", 1.0)
    runtime.remember("do you deliver?", "question", "delivery")
    answer = runtime.decide("Do you deliver?")
    assert (answer.kind, answer.label, answer.answerable) == ("question", "delivery", True)
    runtime.remember("珍珠太硬了", "review", "neutral")  # a later correction wins
    assert runtime.decide("珍珠太硬了").label == "neutral"


class ModelStandIn:
    """Where a serving model goes (weak-referenceable, as ServingModel is)."""


def test_memory_matches_near_identical_messages_by_embedding():
    memory = CorrectionMemory(near_threshold=0.95)
    memory.add("珍珠太硬了", "review", "negative")
    vectors = {"珍珠太硬了": np.array([1.0, 0.0]), "珍珠太硬了!!": np.array([0.99, 0.141]), "好喝": np.array([0.0, 1.0])}

    def embed(texts):
        return np.stack([vectors[t] / np.linalg.norm(vectors[t]) for t in texts])

    model = ModelStandIn()
    near = memory.near(model, embed(["珍珠太硬了!!"])[0], embed)
    assert near is not None and near[0].label == "negative" and near[1] >= 0.95
    assert memory.near(model, embed(["好喝"])[0], embed) is None
    assert memory.exact("珍珠太硬了") is not None and memory.exact("好喝") is None


def test_reviews_wait_for_staff_when_no_sentiment_adapter_passed_yet(encoder):
    model = serving(encoder, 1, "a")
    from dataclasses import replace

    runtime = ModelRuntime(replace(model, sentiment_model=None), answer_threshold=0.5)
    decision = runtime.decide("珍珠太硬了")
    assert (decision.kind, decision.label, decision.confidence) == ("review", None, 0.0)


def test_blank_text_is_decided_without_error(encoder):
    runtime = ModelRuntime(serving(encoder, 1, "a", route_to_reviews=False), answer_threshold=0.99)
    decision = runtime.decide("   ")
    assert decision.kind == "question" and not decision.answerable


def test_device_switch_logic():
    assert choose_device("auto", cuda_available=False) == "cpu"
    assert choose_device("auto", cuda_available=True) == "cuda"
    assert choose_device("cpu", cuda_available=True) == "cpu"
    with pytest.raises(DeviceError, match="no CUDA"):
        choose_device("cuda", cuda_available=False)
    assert quantisation_config(False, "cpu") is None
    with pytest.raises(DeviceError, match="needs CUDA"):
        quantisation_config(True, "cpu")
    assert SKIP_QUANTISATION == ["classifier"]
