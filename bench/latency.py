"""Serving speed of `ModelRuntime.decide` with the shipped runtime against the other one, in one run.

    python bench/latency.py [--n 300] [--compare torch|onnx|none] [--datasets ../shared/datasets]

Rows: the runtime `model.runtime` ships (auto: ONNX Runtime int8 on this CPU) and, for comparison,
the other one; each decides the same messages with the same tops: the base's FAQ top (LoRA at its
identity start) over the demo shop's FAQ index, and a sentiment head fitted here (a linear probe
on 1,000 training reviews when --datasets is given, else seeded random weights). One thread each.
Per row: one message p50/p99, batches of 32 (msg/s), building a new serving object off to the side
(both tops + the FAQ index from cached trunk features: what a swap waits for), and the bot-side RSS
with base + both tops, measured in a fresh process (VmRSS / VmHWM from /proc/self/status).
With --datasets: agreement of the two runtimes' decisions on a 2,000-message mixed zh/en set (500
zh reviews, 500 en reviews, all 371 zh intents, 629 en intents; test splits), with a 95% interval.
Every override of config.toml is printed and saved (bench/results/latency.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # puts the repo on sys.path
import numpy as np
from common import REPO, base_folder, read_tsv, save, wilson

MESSAGES = ["能做少糖吗?", "do you deliver to the university?", "珍珠太硬了，下次不来了", "not bad but pricey",
            "你们几点关门", "the brown sugar milk is amazing!!", "可以用支付宝吗", "waited 25 minutes for one drink"]
TARGETS = {"single_p50_ms": 5.0, "single_p99_ms": 20.0, "batch32_messages_per_second": 400.0, "rss_mb": 500.0,
           "agreement": 0.995}


def faq_items() -> list[tuple[str, str]]:
    """The demo shop's FAQ texts: every question and phrasing with its entry key."""
    entries = json.loads((REPO / "data" / "demo" / "faq.json").read_text(encoding="utf-8"))
    return [(text, e["key"]) for e in entries for lang, c in e.items() if lang not in ("key", "topic")
            for text in [c["question"], *c.get("phrasings", [])]]


def agreement_set(datasets: Path) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    """(2,000 mixed messages, 1,000 training reviews for the head, intent phrasings added to the FAQ index)."""
    take = {"zh-reviews-sentiment": 500, "en-product-reviews-sentiment": 500, "zh-intents-phonebot": 371,
            "en-intents-clinc150": 629}
    messages = [t for name, n in take.items() for t, _ in read_tsv(datasets / name / "test.tsv")[:n]]
    reviews = [row for name in ("zh-reviews-sentiment", "en-product-reviews-sentiment")
               for row in read_tsv(datasets / name / "train.tsv")[:500]]
    intents: list[tuple[str, str]] = []
    for name in ("zh-intents-phonebot", "en-intents-clinc150"):
        per: dict[str, int] = {}
        for text, label in read_tsv(datasets / name / "train.tsv"):
            if per.get(label, 0) < 3:
                per[label] = per.get(label, 0) + 1
                intents.append((text, f"{name}:{label}"))
    return messages, reviews, intents


def torch_tops(encoder, reviews: list[tuple[str, str]]):
    """(sentiment, FAQ) torch tops: the base FAQ top; a sentiment head probed on `reviews` (or seeded random)."""
    import torch

    from training.encoder import EmbeddingModel, SentimentModel
    from training.features import FeatureCache
    from vocabulary import SENTIMENT_LABELS

    torch.manual_seed(1)
    sentiment = SentimentModel(encoder.new_top(), encoder.hidden_size, len(SENTIMENT_LABELS)).eval()
    faq = EmbeddingModel(encoder.new_top()).eval()
    if reviews:
        pooled = torch.from_numpy(FeatureCache(encoder).outputs(sentiment.top, [t for t, _ in reviews]))
        target = torch.tensor([SENTIMENT_LABELS.index(y) for _, y in reviews])
        head = sentiment.classifier
        optimiser = torch.optim.LBFGS(head.parameters(), max_iter=200)

        def closure():
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(head(pooled), target) + 1e-3 * head.weight.pow(2).sum()
            loss.backward()
            return loss

        optimiser.step(closure)
    return sentiment, faq


def onnx_side(encoder, sentiment, faq, folder: Path, top_layers: int, max_length: int):
    """(OnnxBase, sentiment graph, FAQ graph) exported from the same tops, as publish does."""
    from serving.onnx_models import OnnxBase, adapter_top
    from training.export_onnx import export_base, export_top

    graphs = folder / "base"
    export_base(Path(encoder.folder), top_layers, max_length, graphs)
    for name, top in (("sentiment", sentiment), ("faq", faq)):
        (folder / name).mkdir(exist_ok=True)
        export_top(top, encoder, folder / name)
    base = OnnxBase(graphs, Path(encoder.folder), top_layers)
    return base, adapter_top(folder / "sentiment", logits=True), adapter_top(folder / "faq", logits=False)


def serving_model(base, sentiment, faq, items, cache=None):
    from serving.runtime import ServingModel
    from training.faq_index import FaqIndex
    from training.features import FeatureCache

    cache = cache or FeatureCache(base)
    return ServingModel(base, faq, FaqIndex.build(faq, cache, items), sentiment, versions={"sentiment": "bench"},
                        cache=cache)


def time_row(runtime_name: str, base, sentiment, faq, items, n: int) -> dict[str, Any]:
    from serving.runtime import ModelRuntime

    runtime = ModelRuntime(serving_model(base, sentiment, faq, items), answer_threshold=0.55)
    for m in MESSAGES * 3:
        runtime.decide(m)
    single = []
    for i in range(n):
        t = time.perf_counter()
        runtime.decide(MESSAGES[i % len(MESSAGES)])
        single.append((time.perf_counter() - t) * 1000)
    batch = [MESSAGES[i % len(MESSAGES)] for i in range(32)]
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(4):
            runtime.decide_batch(batch)
        rates.append(4 * len(batch) / (time.perf_counter() - t))
    t = time.perf_counter()
    runtime.swap(serving_model(base, sentiment, faq, items, runtime.serving.cache))  # new tops' index, cached trunk
    build = time.perf_counter() - t
    return {"runtime": runtime_name, "single_p50_ms": round(statistics.median(single), 2),
            "single_p99_ms": round(float(np.percentile(single, 99)), 2),
            "batch32_messages_per_second": round(statistics.median(rates), 1),
            "swap_build_seconds": round(build, 3), "n_single": n}


def rss_child(runtime_name: str, folder: Path, config: Path) -> None:
    """In a fresh process: the bot's serving objects of one runtime with both tops, then VmRSS / VmHWM."""
    from serving.runtime import ModelRuntime
    from settings import load_settings

    model = load_settings(config).model
    items = faq_items()
    if runtime_name == "onnx":
        from serving.onnx_models import OnnxBase, adapter_top

        base: Any = OnnxBase(folder / "base", Path(json.loads((folder / "meta.json").read_text())["base"]),
                             model.top_layers)
        sentiment, faq = adapter_top(folder / "sentiment", True), adapter_top(folder / "faq", False)
    else:
        import torch

        from training.encoder import Encoder, choose_trunk_dtype

        torch.set_num_threads(1)
        base = Encoder(Path(json.loads((folder / "meta.json").read_text())["base"]), model.top_layers,
                       model.max_length, choose_trunk_dtype(model.trunk_dtype, "cpu"))
        sentiment, faq = torch_tops(base, [])
    runtime = ModelRuntime(serving_model(base, sentiment, faq, items), 0.55)
    for i in range(200):
        runtime.decide_batch([MESSAGES[i % len(MESSAGES)], items[i % len(items)][0]])
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    print(json.dumps({"rss_mb": round(int(status["VmRSS"].split()[0]) / 1024, 1),
                      "hwm_mb": round(int(status["VmHWM"].split()[0]) / 1024, 1), "torch_imported": "torch" in sys.modules}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="single-message requests to time")
    parser.add_argument("--config", type=Path, default=common.REPO / "config.toml")
    parser.add_argument("--runtime", choices=("torch", "onnx"), default=None, help="override: model.runtime")
    parser.add_argument("--compare", choices=("torch", "onnx", "none"), default=None,
                        help="a second row in the same run (default: the other runtime)")
    parser.add_argument("--datasets", type=Path, default=None, help="../shared/datasets: the agreement check")
    parser.add_argument("--base", default=None)
    parser.add_argument("--rss-child", nargs=2, metavar=("RUNTIME", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child[0], Path(args.rss_child[1]), args.config)
        return
    import torch

    from serving.loading import choose_runtime
    from serving.runtime import ModelRuntime
    from settings import load_settings
    from training.encoder import Encoder, choose_trunk_dtype

    torch.set_num_threads(1)
    settings = load_settings(args.config)
    model = settings.model
    shipped = args.runtime or choose_runtime(settings)
    other = args.compare or ("torch" if shipped == "onnx" else "onnx")
    overrides = {k: v for k, v in (("runtime", args.runtime), ("compare", args.compare), ("base", args.base),
                                   ("n", args.n if args.n != 300 else None)) if v is not None}
    if overrides:
        print(f"overrides of the product configuration: {overrides}", flush=True)
    trunk_dtype = choose_trunk_dtype(model.trunk_dtype, "cpu")
    folder = base_folder(args.base)
    encoder = Encoder(folder, model.top_layers, model.max_length, trunk_dtype)
    messages, reviews, intents = agreement_set(args.datasets) if args.datasets else ([], [], [])
    items = faq_items() + intents
    sentiment, faq = torch_tops(encoder, reviews)
    work = Path(tempfile.mkdtemp(prefix="latency-bench-"))  # the base's graphs + the two tops, exported here
    (work / "meta.json").write_text(json.dumps({"base": str(folder)}))
    onnx_base, onnx_sentiment, onnx_faq = onnx_side(encoder, sentiment, faq, work, model.top_layers, model.max_length)
    sides = {"torch": (encoder, sentiment, faq), "onnx": (onnx_base, onnx_sentiment, onnx_faq)}
    rows = []
    for name in [shipped] + ([other] if other not in ("none", shipped) else []):
        print(f"timing {name} ...", flush=True)
        row = time_row(name, *sides[name], items, args.n)
        out = subprocess.run([sys.executable, __file__, "--config", str(args.config), "--rss-child", name, str(work)],
                             capture_output=True, text=True, check=True)
        row |= json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    result: dict[str, Any] = {"shipped_runtime": shipped, "trunk_dtype_torch": trunk_dtype, "top_layers": model.top_layers,
                              "overrides": overrides, "rows": rows, "targets": TARGETS}
    if len(rows) == 2:
        result["ratios_other_over_shipped"] = {k: round(rows[1][k] / rows[0][k], 2) for k in
                                               ("single_p50_ms", "single_p99_ms", "batch32_messages_per_second", "rss_mb")}
    if messages:
        decided = {}
        for name in ("torch", "onnx"):
            runtime = ModelRuntime(serving_model(*sides[name], items), answer_threshold=0.55)
            decided[name] = [d for i in range(0, len(messages), 32) for d in runtime.decide_batch(messages[i:i + 32])]
        same = sum((a.kind, a.label) == (b.kind, b.label) for a, b in zip(decided["torch"], decided["onnx"]))
        result["agreement"] = {"n": len(messages), "same_decision": same, "share": round(same / len(messages), 4),
                               "interval95": wilson(same, len(messages)), "what": "(kind, label) of decide_batch, torch vs onnx",
                               "datasets": str(args.datasets), "faq_index_texts": len(items)}
    shipped_row = rows[0]
    result["meets"] = {"single_p50_ms": shipped_row["single_p50_ms"] <= TARGETS["single_p50_ms"],
                       "single_p99_ms": shipped_row["single_p99_ms"] <= TARGETS["single_p99_ms"],
                       "batch32": shipped_row["batch32_messages_per_second"] >= TARGETS["batch32_messages_per_second"],
                       "rss": shipped_row["rss_mb"] <= TARGETS["rss_mb"]}
    if "agreement" in result:
        result["meets"]["agreement"] = result["agreement"]["share"] >= TARGETS["agreement"]
    with open("/proc/loadavg") as fh:
        result["load_average"] = fh.read().split()[:3]
    shutil.rmtree(work, ignore_errors=True)
    save("latency", result)


if __name__ == "__main__":
    main()
