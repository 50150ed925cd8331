"""The GPU paths: training and serving on CUDA, the 4-bit (NF4) trunk, adapters that load on the CPU after.

Skipped without a CUDA device (4-bit ones also without bitsandbytes); `bash bench/gpu_check.sh` runs them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from training.args import TrainArgs
from training.encoder import Encoder
from training.faq import FaqTrainer, embed, load_faq, save_faq
from training.features import FeatureCache
from training.sentiment import ReviewClassifier, SentimentTrainer, load_sentiment, save_sentiment

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)"),
]
needs_bitsandbytes = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                                        reason="4-bit needs bitsandbytes: pip install 'shopbot[gpu]'")

ARGS = TrainArgs(epochs=2, min_steps=30, max_epochs=4, progress=False)
REVIEWS = [(f"{w} tea number {i}", label) for i in range(12)
           for w, label in (("great", "positive"), ("awful", "negative"), ("okay", "neutral"))]
FAQ = [(f"{q} {i}", key) for i in range(6)
       for q, key in (("when do you open", "hours"), ("where is the shop", "address"), ("less sugar please", "sugar"))]


def on(model: nn.Module) -> set[str]:
    return {p.device.type for p in model.parameters()}


def train_and_reload(encoder: Encoder, cpu_encoder: Encoder, tmp_path: Path) -> None:
    """Train both tasks on `encoder`, check where everything lives, then load both adapters on the CPU."""
    cache = FeatureCache(encoder, tmp_path / "features")
    trainer = SentimentTrainer(encoder, cache, ARGS)
    sentiment = trainer.train(REVIEWS, []).model
    assert on(sentiment) == {"cuda"}
    assert all(f.device.type == "cpu" for f in cache.get_many([t for t, _ in REVIEWS]))  # features cached on the CPU
    assert any(p.requires_grad and p.dtype == torch.float32 for n, p in sentiment.named_parameters() if "lora_" in n)
    gpu_probs = ReviewClassifier(sentiment, cache).predict_proba([t for t, _ in REVIEWS])  # a numpy array: on the CPU
    assert np.isfinite(gpu_probs).all()
    save_sentiment(sentiment, tmp_path / "sentiment")
    faq = FaqTrainer(encoder, cache, ARGS).train(FAQ, FAQ[:6]).model
    assert on(faq) == {"cuda"}
    gpu_vectors = embed(faq, cache, [t for t, _ in FAQ])
    save_faq(faq, tmp_path / "faq")

    # The same (CPU-cached) trunk features through the adapters loaded on the CPU: the same outputs.
    cpu_sentiment, labels = load_sentiment(cpu_encoder, tmp_path / "sentiment")
    assert on(cpu_sentiment) == {"cpu"}
    cpu_probs = ReviewClassifier(cpu_sentiment, cache, labels).predict_proba([t for t, _ in REVIEWS])
    assert np.allclose(cpu_probs, gpu_probs, atol=1e-3)
    cpu_faq, _ = load_faq(cpu_encoder, tmp_path / "faq")
    assert on(cpu_faq) == {"cpu"}
    cpu_vectors = embed(cpu_faq, cache, [t for t, _ in FAQ])
    assert np.min(np.sum(cpu_vectors * gpu_vectors, axis=1)) > 0.999

def test_training_and_serving_run_on_the_gpu_and_adapters_load_on_the_cpu(tiny_base, tmp_path):
    encoder = Encoder(tiny_base, 1, trunk_dtype="bfloat16", device="cuda")
    assert on(encoder.pristine_top) == {"cuda"} and on(encoder.trunk_layers) == {"cuda"}
    out = encoder.trunk(["你好", "hello"])
    assert out.hidden.device.type == "cpu" and out.hidden.dtype == torch.float32
    train_and_reload(encoder, Encoder(tiny_base, 1, trunk_dtype="float32", device="cpu"), tmp_path)


def test_the_bot_runtime_serves_from_the_gpu(tiny_base, make_settings, file_store):
    from serving.loading import load_runtime
    from storage.seed import load_demo
    from tests.botkit import MINI_SHOP

    settings = make_settings(model={"base": str(tiny_base), "top_layers": 1, "device": "cuda"})
    load_demo(file_store, MINI_SHOP)
    runtime = load_runtime(settings, file_store)
    assert runtime.serving.encoder.device.type == "cuda" and on(runtime.serving.faq_model) == {"cuda"}
    decision = runtime.decide("你们几点开门？")
    assert decision.kind in ("question", "review") and 0.0 <= decision.confidence <= 1.0


@needs_bitsandbytes
def test_4bit_trunk_is_nf4_and_the_adapted_layers_and_head_are_not(tiny_base, tmp_path):
    import bitsandbytes as bnb

    encoder = Encoder(tiny_base, 1, trunk_dtype="nf4", device="cuda")
    quantised = [m for m in encoder.trunk_layers.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantised and all(m.weight.quant_type == "nf4" for m in quantised)
    assert not [m for m in encoder.trunk_layers.modules() if type(m) is nn.Linear]
    top = [m for m in encoder.pristine_top.modules() if isinstance(m, nn.Linear)]
    assert top and all(type(m) is nn.Linear and m.weight.dtype == torch.float32 for m in top)
    model = SentimentTrainer(encoder, FeatureCache(encoder), ARGS).train(REVIEWS, []).model
    heads = [m for n, m in model.named_modules() if n.endswith("classifier.modules_to_save.default")]
    assert heads and all(type(m) is nn.Linear and m.weight.dtype == torch.float32 for m in heads)
    train_and_reload(encoder, Encoder(tiny_base, 1, trunk_dtype="float32", device="cpu"), tmp_path)


@needs_bitsandbytes
def test_load_in_4bit_setting_builds_the_nf4_encoder(tiny_base, make_settings):
    from training.encoder import load_encoder

    encoder = load_encoder(make_settings(model={"base": str(tiny_base), "top_layers": 1, "load_in_4bit": True}))
    assert encoder.trunk_dtype == "nf4" and encoder.device.type == "cuda"
