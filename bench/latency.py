"""Serving speed of `ModelRuntime.decide`: p50/p99 for one message, batch throughput, peak RSS, swap time.

    python bench/latency.py [--threads 1] [--n 300]

Uses the real base model with freshly initialised adapters on both tasks (same shapes and cost as
trained ones) and a 37-entry FAQ index; `[model]` from config.toml (every override printed and saved).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import common  # puts the repo on sys.path
import numpy as np
import torch
from common import base_folder, peak_rss_mb, save

from serving.runtime import ModelRuntime, ServingModel
from settings import load_settings
from training.args import TrainArgs
from training.encoder import Encoder, choose_trunk_dtype
from training.faq import new_faq_model
from training.faq_index import FaqIndex
from training.features import FeatureCache
from training.router import RouterWeights
from training.sentiment import new_sentiment_model

MESSAGES = ["能做少糖吗?", "do you deliver to the university?", "珍珠太硬了，下次不来了", "not bad but pricey",
            "你们几点关门", "the brown sugar milk is amazing!!", "可以用支付宝吗", "waited 25 minutes for one drink"]


def build(encoder: Encoder, seed: int) -> ServingModel:
    torch.manual_seed(seed)
    args = TrainArgs(seed=seed)
    sentiment = new_sentiment_model(encoder, args).merge_and_unload().eval()
    faq = new_faq_model(encoder, args).merge_and_unload().eval()
    if encoder.quantized:
        sentiment = torch.ao.quantization.quantize_dynamic(sentiment, {torch.nn.Linear}, dtype=torch.qint8)
        faq = torch.ao.quantization.quantize_dynamic(faq, {torch.nn.Linear}, dtype=torch.qint8)
    items = [(f"question {i} {w}", f"entry-{i % 37}") for i, w in enumerate(MESSAGES * 40)]
    index = FaqIndex.build(faq, FeatureCache(encoder), items)
    router = RouterWeights(np.zeros(encoder.hidden_size, dtype=np.float32), 0.0)
    return ServingModel(encoder, faq, index, sentiment, router=router, versions={"sentiment": f"s{seed}", "faq": f"f{seed}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (production serves with 1)")
    parser.add_argument("--n", type=int, default=300, help="single-message requests to time")
    parser.add_argument("--config", type=Path, default=common.REPO / "config.toml")
    parser.add_argument("--top-layers", type=int, default=None, help="override: model.top_layers")
    parser.add_argument("--trunk-dtype", default=None, help="override: model.trunk_dtype")
    parser.add_argument("--base", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_settings(args.config).model
    overrides = {k: v for k, v in (("top_layers", args.top_layers), ("trunk_dtype", args.trunk_dtype)) if v is not None}
    if overrides:
        print(f"overrides of the product configuration: {overrides}", flush=True)
    trunk_dtype = choose_trunk_dtype(args.trunk_dtype or model.trunk_dtype, "cpu")
    top_layers = args.top_layers or model.top_layers
    encoder = Encoder(base_folder(args.base), top_layers, model.max_length, trunk_dtype)
    runtime = ModelRuntime(build(encoder, 1), answer_threshold=0.55)
    for m in MESSAGES * 3:
        runtime.decide(m)
    single = []
    for i in range(args.n):
        t = time.perf_counter()
        runtime.decide(MESSAGES[i % len(MESSAGES)])
        single.append((time.perf_counter() - t) * 1000)
    batch = [MESSAGES[i % len(MESSAGES)] for i in range(32)]
    t = time.perf_counter()
    rounds = 10
    for _ in range(rounds):
        runtime.decide_batch(batch)
    batch_rate = rounds * len(batch) / (time.perf_counter() - t)
    swaps = []
    for seed in range(2, 7):
        t = time.perf_counter()
        new = build(encoder, seed)  # built off to the side, as the bot does after a promotion
        built = time.perf_counter() - t
        t = time.perf_counter()
        runtime.swap(new)
        swaps.append((built, (time.perf_counter() - t) * 1000))
    save("latency", {
        "threads": args.threads, "trunk_dtype": trunk_dtype, "top_layers": top_layers, "overrides": overrides,
        "single_p50_ms": round(statistics.median(single), 2),
        "single_p99_ms": round(float(np.percentile(single, 99)), 2),
        "batch32_messages_per_second": round(batch_rate, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "swap_build_seconds": round(statistics.median(s[0] for s in swaps), 3),
        "swap_reference_ms": round(max(s[1] for s in swaps), 4),
    })


if __name__ == "__main__":
    main()
