"""Train and evaluate one task on any TSV pair (text<TAB>label) exactly as the product trains it.

    python bench/accuracy.py --train ../shared/datasets/zh-reviews-sentiment/train.tsv \
        --test ../shared/datasets/zh-reviews-sentiment/test.tsv --task sentiment --limit 3000 --test-limit 1500

Defaults are the product's: `[model]` from config.toml (or --config), the shipped `TrainArgs()`,
`model.trunk_dtype` (auto: bfloat16 where the CPU has it), one torch thread (`model.train_threads`). Every flag that changes one of
them is printed and saved in the result under "overrides". Data flags (--limit, --shots) only
choose the rows. The score has n and a 95% Wilson interval. Prints one JSON object as its last
line and saves it under bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import common  # noqa: F401  (puts the repo on sys.path)
import torch
from common import REPO, base_folder, read_tsv, save

from settings import load_settings
from storage.text import detect_language, stable_split
from training.args import TrainArgs
from training.encoder import Encoder, choose_trunk_dtype
from training.estimate import Estimate
from training.features import FeatureCache
from training.tasks import FaqSpec, SentimentSpec, TaskSpec
from vocabulary import TASKS, Task


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--shots", type=int, default=None, help="faq: examples per entry used as the FAQ and for training")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many training rows (random, seed 13)")
    parser.add_argument("--test-limit", type=int, default=None, help="use at most this many test rows (random, seed 13)")
    parser.add_argument("--config", type=Path, default=REPO / "config.toml", help="the product configuration read")
    parser.add_argument("--base", default=None, help="override: base model folder")
    parser.add_argument("--top-layers", type=int, default=None, help="override: model.top_layers")
    parser.add_argument("--max-length", type=int, default=None, help="override: model.max_length")
    parser.add_argument("--threads", type=int, default=None, help="override: model.train_threads")
    parser.add_argument("--trunk-dtype", default=None, help="override: model.trunk_dtype (float32 | bfloat16 | int8)")
    parser.add_argument("--epochs", type=int, default=None, help="override: TrainArgs.epochs")
    parser.add_argument("--min-steps", type=int, default=None, help="override: TrainArgs.min_steps")
    parser.add_argument("--lr", type=float, default=None, help="override: TrainArgs.learning_rate")
    parser.add_argument("--mixed-precision", choices=("on", "off"), default=None,
                        help="override: TrainArgs.mixed_precision (bfloat16 autocast of training steps)")
    parser.add_argument("--name", default=None, help="result file name (default: dataset folder + task)")
    args = parser.parse_args(argv)
    model = load_settings(args.config).model
    overrides = {key: value for key, value in (
        ("base", args.base), ("top_layers", args.top_layers), ("max_length", args.max_length),
        ("train_threads", args.threads), ("trunk_dtype", args.trunk_dtype)) if value is not None}
    train_overrides = {key: value for key, value in (("epochs", args.epochs), ("min_steps", args.min_steps),
                                                     ("learning_rate", args.lr),
                                                     ("mixed_precision", None if args.mixed_precision is None
                                                      else args.mixed_precision == "on")) if value is not None}
    top_layers = args.top_layers or model.top_layers
    max_length = args.max_length or model.max_length
    threads = args.threads or model.train_threads
    targs = dataclasses.replace(TrainArgs(progress=False), **train_overrides)
    if overrides or train_overrides:
        print(f"overrides of the product configuration: {overrides | train_overrides}", flush=True)
    torch.set_num_threads(threads)
    rng = random.Random(13)

    train_rows, test_rows = read_tsv(args.train), read_tsv(args.test)
    rng.shuffle(train_rows)
    if args.limit:
        train_rows = train_rows[: args.limit]
    if args.test_limit:
        rng.shuffle(test_rows)
        test_rows = test_rows[: args.test_limit]
    base = Path(args.base) if args.base else base_folder(None)
    started = time.perf_counter()
    trunk_dtype = choose_trunk_dtype(args.trunk_dtype or model.trunk_dtype, "cpu")
    encoder = Encoder(base, top_layers, max_length, trunk_dtype)
    cache = FeatureCache(encoder)
    languages = [detect_language(t) for t, _ in test_rows]

    if args.task == Task.SENTIMENT:
        train = [r for r in train_rows if stable_split(r[0]) != "validation"]
        validation = [r for r in train_rows if stable_split(r[0]) == "validation"]
        spec: TaskSpec[Any] = SentimentSpec(cache, targs, tuple(sorted({y for _, y in train_rows})))
    else:
        per_label: dict[str, list[str]] = defaultdict(list)
        for text, label in train_rows:
            if args.shots is None or len(per_label[label]) < args.shots:
                per_label[label].append(text)
        train = [(t, label) for label, texts in per_label.items() for t in texts]
        validation = []
        spec = FaqSpec(cache, targs)
    t0 = time.perf_counter()
    cache.get_many([t for t, _ in train + validation])
    trunk_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    fitted = spec.fit(train, validation)
    adapter_seconds = time.perf_counter() - t0
    texts, references = [t for t, _ in test_rows], [y for _, y in test_rows]
    ranked = spec.ranked(fitted, texts, train)  # the texts a retrieval model searches (a classifier ignores them)
    report = spec.report(texts, references, ranked, languages)
    estimate = Estimate.of([bool(r) and r[0] == y for r, y in zip(ranked, references)], "holdout")

    out = {
        "dataset": args.name or args.train.parent.name, "task": args.task,
        "accuracy": report["accuracy"], "interval": [round(estimate.low, 4), round(estimate.high, 4)],
        "macro_f1": report.get("macro_f1"), "top3": report.get("top3"), "by_language": report.get("by_language"),
        "n_train": len(train), "n_validation": len(validation), "n_test": len(test_rows), "shots": args.shots,
        "train_seconds": round(trunk_seconds + adapter_seconds, 1), "trunk_seconds": round(trunk_seconds, 1),
        "adapter_seconds": round(adapter_seconds, 1),
        "config": {"top_layers": top_layers, "max_length": max_length, "threads": threads,
                   "trunk_dtype": trunk_dtype, "train_args": {k: v for k, v in dataclasses.asdict(targs).items()
                                                               if k != "max_train_seconds"}},
        "overrides": overrides | train_overrides,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    name = args.name or f"accuracy-{out['dataset']}-{args.task}" + (f"-{args.shots}shot" if args.shots else "")
    save(name, out)
    return out


if __name__ == "__main__":
    main()
