"""Would int8 graphs serve as well as the shipped float32 ones? Agreement, accuracy and speed, in one run.

    python bench/quantization.py --datasets ../shared/datasets

Adapters trained here as the product trains them (`TrainArgs()`, `model.trunk_dtype`, one thread): a
sentiment adapter on 1,000 training reviews (500 zh, 500 en; 200 more for validation) and an FAQ
adapter on 3 phrasings per intent of the two intent sets with the demo FAQ as anchors; exported as
publish exports them (float32 graphs, `training.export_onnx`). The 2,000 mixed messages of
`bench/latency.py` (test splits) are decided by the float32 graphs (the shipped runtime) and by each
int8 variant of the same graphs (trunk and both tops):
- dynamic: `onnxruntime.quantization.quantize_dynamic`, per-channel int8 weights, per-tensor uint8 activations;
- dynamic + outliers: the same, with each MatMul input's 4 largest channels (calibrated on the demo shop's own
  texts) kept float32 (the `<s>`/`</s>` states reach 20-55 in one channel, which sets a per-tensor scale);
- nbits-B: `MatMulNBits` 8-bit weights in blocks of B, activations quantised per block of each row (accuracy level 4).
Per variant: decisions (kind, label) the same as float32 with a 95% interval, accuracy of both against the
datasets' labels (paired difference with a 95% interval), the float32 margin (top-1 minus top-2 confidence)
where they differ, and speed (one message p50/p99, batches of 32), interleaved with float32 in one loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401  (puts the repo on sys.path)
import numpy as np
from common import REPO, base_folder, read_tsv, save, wilson
from latency import MESSAGES, agreement_set, faq_items, serving_model

from training.estimate import Comparison

DYNAMIC_OUTLIERS = 4
TARGET_AGREEMENT = 0.995


def train_adapters(folder: Path, datasets: Path, work: Path, reviews, intents) -> None:
    """Sentiment and FAQ adapters trained as the product trains them, exported as publish exports them."""
    import torch

    from settings import load_settings
    from training.args import TrainArgs
    from training.encoder import Encoder, choose_trunk_dtype
    from training.export_onnx import export_adapter
    from training.features import FeatureCache
    from training.tasks import task_specs
    from vocabulary import Task

    model = load_settings(REPO / "config.toml").model
    torch.set_num_threads(model.train_threads)
    encoder = Encoder(folder, model.top_layers, model.max_length, choose_trunk_dtype(model.trunk_dtype, "cpu"))
    specs = task_specs(FeatureCache(encoder), TrainArgs())
    validation = [r for n in ("zh-reviews-sentiment", "en-product-reviews-sentiment")
                  for r in read_tsv(datasets / n / "train.tsv")[500:600]]
    fitted = {Task.SENTIMENT: specs[Task.SENTIMENT].fit(reviews, validation),
              Task.FAQ: specs[Task.FAQ].fit(intents, [], faq_items())}
    float32 = Encoder(folder, model.top_layers, model.max_length, "float32")
    for task, adapter in fitted.items():
        (work / task.value).mkdir()
        specs[task].save(adapter, work / task.value)
        export_adapter(task.value, work / task.value, float32)


def add_outlier_channels(src: Path, dst: Path, calibration: list[dict[str, np.ndarray]], k: int) -> list[str]:
    """Rewrite every weight MatMul as int8-able main part + its input's k largest channels in float32; names to quantise."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    weights = {i.name: i for i in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    by_input: dict[str, list[Any]] = {}
    for node in matmuls:
        by_input.setdefault(node.input[0], []).append(node)
    probe = onnx.load(str(src))
    for name in by_input:
        probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    peak: dict[str, np.ndarray] = {}
    for feed in calibration:
        for name, value in zip(names, session.run(None, feed)):
            if name in by_input:
                top = np.abs(value).reshape(-1, value.shape[-1]).max(0)
                peak[name] = np.maximum(peak.get(name, top), top)
    nodes = list(model.graph.node)
    for name, users in by_input.items():
        channels = np.argsort(-peak[name])[:k].astype(np.int64)
        keep = np.ones(len(peak[name]), np.float32)
        keep[channels] = 0
        model.graph.initializer.extend([numpy_helper.from_array(channels, name + "/outlier_idx"),
                                        numpy_helper.from_array(keep, name + "/outlier_keep")])
        first = min(nodes.index(n) for n in users)
        for node in users:
            weight = numpy_helper.to_array(weights[node.input[1]])
            model.graph.initializer.append(numpy_helper.from_array(weight[channels], node.input[1] + "/outlier_rows"))
            out = node.output[0]
            node.input[0], node.output[0] = name + "/main", out + "/main"
            at = nodes.index(node) + 1
            nodes[at:at] = [helper.make_node("MatMul", [name + "/outliers", node.input[1] + "/outlier_rows"], [out + "/outl"]),
                            helper.make_node("Add", [out + "/main", out + "/outl"], [out])]
        nodes[first:first] = [helper.make_node("Mul", [name, name + "/outlier_keep"], [name + "/main"]),
                              helper.make_node("Gather", [name, name + "/outlier_idx"], [name + "/outliers"], axis=-1)]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(dst))
    return [n.name for n in matmuls]


def quantize(variant: str, src: Path, dst: Path, calibration: list[dict[str, np.ndarray]]) -> None:
    """One graph in one int8 variant."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if variant.startswith("nbits-"):
        from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

        block = int(variant.split("-")[1])
        config = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True, accuracy_level=4, bits=8)
        quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), bits=8, block_size=block, is_symmetric=True,
                                         accuracy_level=4, algo_config=config)
        quantizer.process()
        quantizer.model.save_model_to_file(str(dst))
        return
    nodes = None
    if variant == "dynamic+outliers":
        split = dst.with_suffix(".split.onnx")
        nodes = add_outlier_channels(src, split, calibration, DYNAMIC_OUTLIERS)
        src = split
    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                     nodes_to_quantize=nodes)


def calibration_feeds(base, texts: list[str]) -> tuple[list[dict], list[dict]]:
    """Inputs of the trunk graph and of the top graphs for the demo shop's own texts (one text per feed)."""
    trunk, tops = [], []
    for text in texts:
        ids, mask = base.tokenize([text])
        embeds = np.ascontiguousarray(base.words[ids], dtype=np.float32)
        trunk.append({"inputs_embeds": embeds, "attention_mask": mask})
        tops.append({"hidden": base.session.run(None, trunk[-1])[0], "attention_mask": mask})
    return trunk, tops


def runtime_for(base, work: Path, graphs: Path | None):
    """A ModelRuntime over the trained adapters, with the graphs of `graphs` (None: the float32 ones) swapped in."""
    from serving.onnx_models import OnnxTop, _session, adapter_top
    from serving.runtime import ModelRuntime
    from training.recipe import load_blend

    sentiment, faq = adapter_top(work / "sentiment", logits=True), adapter_top(work / "faq", logits=False)
    if graphs is not None:
        base = _with_trunk(base, _session(graphs / "trunk.onnx"))
        sentiment = OnnxTop(_session(graphs / "sentiment.onnx", arena=False), graphs / "sentiment.onnx")
        faq = OnnxTop(_session(graphs / "faq.onnx", arena=False), graphs / "faq.onnx")
    char, weight = load_blend(work / "sentiment")
    items = faq_items() + [tuple(i) for i in json.loads((work / "intents.json").read_text())]
    serving = dataclasses.replace(serving_model(base, sentiment, faq, items), sentiment_char=char, char_weight=weight)
    return ModelRuntime(serving, answer_threshold=0.55)


def _with_trunk(base, session):
    import copy

    other = copy.copy(base)  # shares the tokenizer and the word table
    other.session = session
    return other


def decide_all(runtime, messages: list[str]) -> list[tuple[str, str | None, float]]:
    """(kind, label, top-1 minus top-2 confidence) per message, in batches of 32 as the bot batches under load."""
    out = []
    for i in range(0, len(messages), 32):
        for d in runtime.decide_batch(messages[i:i + 32]):
            confidences = [c for _, c in d.alternatives[:2]] + [0.0, 0.0]
            out.append((d.kind.value, d.label, confidences[0] - confidences[1]))
    return out


def _difference(paired) -> dict[str, Any]:
    """A paired accuracy difference (training.estimate.Comparison: this variant minus float32) for the results file."""
    return {"difference": round(paired.candidate - paired.active, 4), "interval95": [round(paired.low, 4),
                                                                                      round(paired.high, 4)]}


def speeds(runtimes: dict[str, Any], n: int) -> dict[str, dict[str, float]]:
    """One message p50/p99 and batch-of-32 msg/s, the runtimes interleaved so that load hits them alike."""
    single: dict[str, list[float]] = {k: [] for k in runtimes}
    rates: dict[str, list[float]] = {k: [] for k in runtimes}
    for runtime in runtimes.values():
        for m in MESSAGES * 3:
            runtime.decide(m)
    for i in range(n):
        for name, runtime in runtimes.items():
            t = time.perf_counter()
            runtime.decide(MESSAGES[i % len(MESSAGES)])
            single[name].append((time.perf_counter() - t) * 1000)
    batch = [MESSAGES[i % len(MESSAGES)] for i in range(32)]
    for _ in range(5):
        for name, runtime in runtimes.items():
            t = time.perf_counter()
            for _ in range(4):
                runtime.decide_batch(batch)
            rates[name].append(4 * len(batch) / (time.perf_counter() - t))
    return {k: {"single_p50_ms": round(statistics.median(single[k]), 2),
                "single_p99_ms": round(float(np.percentile(single[k], 99)), 2),
                "batch32_messages_per_second": round(statistics.median(rates[k]), 1)} for k in runtimes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, required=True)
    parser.add_argument("--variants", default="dynamic,dynamic+outliers,nbits-32,nbits-16")
    parser.add_argument("--n", type=int, default=300, help="single-message requests timed per variant")
    parser.add_argument("--base", default=None)
    args = parser.parse_args()
    from serving.onnx_models import OnnxBase
    from settings import load_settings
    from training.export_onnx import export_base

    overrides = {k: v for k, v in (("base", args.base), ("n", args.n if args.n != 300 else None)) if v is not None}
    if overrides:
        print(f"overrides of the product configuration: {overrides}", flush=True)
    model = load_settings(REPO / "config.toml").model
    folder = base_folder(args.base)
    messages, reviews, intents = agreement_set(args.datasets)
    gold = [y if "reviews" in name else f"{name}:{y}" for name, n in
            {"zh-reviews-sentiment": 500, "en-product-reviews-sentiment": 500, "zh-intents-phonebot": 371,
             "en-intents-clinc150": 629}.items() for _, y in read_tsv(args.datasets / name / "test.tsv")[:n]]
    work = Path(tempfile.mkdtemp(prefix="quantization-bench-"))
    try:
        started = time.perf_counter()
        (work / "intents.json").write_text(json.dumps(intents))
        train_adapters(folder, args.datasets, work, reviews, intents)
        export_base(folder, model.top_layers, model.max_length, work / "base")
        print(f"adapters trained and exported in {time.perf_counter() - started:.0f} s", flush=True)
        base = OnnxBase(work / "base", folder, model.top_layers)
        demo = [text for text, _ in faq_items()] + [r[0] for r in read_tsv(REPO / "data" / "demo" / "reviews.tsv")]
        trunk_feeds, top_feeds = calibration_feeds(base, demo)
        runtimes = {"float32": runtime_for(base, work, None)}
        for variant in args.variants.split(","):
            graphs = work / variant
            graphs.mkdir()
            quantize(variant, work / "base" / "trunk.onnx", graphs / "trunk.onnx", trunk_feeds)
            for task in ("sentiment", "faq"):
                quantize(variant, work / task / "top.onnx", graphs / f"{task}.onnx", top_feeds)
            runtimes[variant] = runtime_for(base, work, graphs)
        decided = {name: decide_all(runtime, messages) for name, runtime in runtimes.items()}
        reference = decided["float32"]
        ref_hits = [label == y for (_, label, _), y in zip(reference, gold)]
        rows = []
        for name, got in decided.items():
            same = sum((a[0], a[1]) == (b[0], b[1]) for a, b in zip(reference, got))
            hits = [label == y for (_, label, _), y in zip(got, gold)]
            margins = [a[2] for a, b in zip(reference, got) if (a[0], a[1]) != (b[0], b[1])]
            rows.append({"variant": name, "same_decision": same, "share": round(same / len(messages), 4),
                         "interval95": wilson(same, len(messages)), "accuracy": round(sum(hits) / len(hits), 4),
                         "accuracy_minus_float32": _difference(Comparison.of(hits, ref_hits)),
                         "float32_margin_where_different": {"median": round(float(np.median(margins)), 4) if margins else None,
                                                            "max": round(max(margins), 4) if margins else None}})
        timing = speeds(runtimes, args.n)
        for row in rows:
            row.update(timing[row["variant"]])
            print(json.dumps(row), flush=True)
        with open("/proc/loadavg") as fh:
            load = fh.read().split()[:3]
        save("quantization", {"n": len(messages), "what": "(kind, label) of decide_batch vs the float32 graphs; "
                              "trained adapters", "target_agreement": TARGET_AGREEMENT, "overrides": overrides,
                              "rows": rows, "load_average": load})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
