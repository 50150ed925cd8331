"""Train and evaluate one task on any TSV pair (text<TAB>label) with the project's own training code.

    python bench/accuracy.py --train ../shared/datasets/zh-reviews-sentiment/train.tsv \
        --test ../shared/datasets/zh-reviews-sentiment/test.tsv --task sentiment

Prints one JSON object as its last line and saves it under bench/results/.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from collections import defaultdict
from pathlib import Path

import torch

from common import REPO, RESULTS  # noqa: E402  (puts the repo on sys.path)
from storage.text import detect_language, stable_split  # noqa: E402
from training.assess import score_faq, score_sentiment  # noqa: E402
from training.base_model import ensure_bundled  # noqa: E402
from training.encoder import Encoder  # noqa: E402
from training.faq import FaqIndex, FaqTrainer  # noqa: E402
from training.features import FeatureCache  # noqa: E402
from training.sentiment import SentimentTrainer, TrainArgs  # noqa: E402


def read_tsv(path: Path) -> list[tuple[str, str]]:
    """(text, label) rows of a text<TAB>label file with a header."""
    csv.field_size_limit(1 << 24)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader)
        return [(row[0], row[1]) for row in reader if len(row) >= 2 and row[0].strip()]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--task", choices=("sentiment", "faq"), required=True)
    parser.add_argument("--shots", type=int, default=None, help="faq: examples per entry used as the FAQ and for training")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many training rows (random, seeded)")
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--base", default=None, help="base model folder (default: the bundled multilingual-e5-small)")
    parser.add_argument("--top-layers", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the training child uses 1)")
    parser.add_argument("--fp32", action="store_true", help="full-precision trunk instead of int8")
    parser.add_argument("--name", default=None, help="result file name (default: dataset folder + task)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = random.Random(13)

    train_rows, test_rows = read_tsv(args.train), read_tsv(args.test)
    rng.shuffle(train_rows)
    if args.limit:
        train_rows = train_rows[: args.limit]
    if args.test_limit:
        rng.shuffle(test_rows)
        test_rows = test_rows[: args.test_limit]
    base = Path(args.base) if args.base else ensure_bundled(REPO / ".cache" / "models")
    started = time.perf_counter()
    encoder = Encoder(base, args.top_layers, args.max_length, quantize=not args.fp32)
    cache = FeatureCache(encoder)
    targs = TrainArgs(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, progress=False)
    languages = [detect_language(t) for t, _ in test_rows]

    if args.task == "sentiment":
        train = [r for r in train_rows if stable_split(r[0]) != "validation"]
        validation = [r for r in train_rows if stable_split(r[0]) == "validation"]
        labels = tuple(sorted({label for _, label in train_rows}))
        t0 = time.perf_counter()
        cache.get_many([t for t, _ in train + validation])
        trunk_seconds = time.perf_counter() - t0
        result = SentimentTrainer(encoder, cache, targs, labels).train(train, validation)
        report = score_sentiment(result.model, cache, test_rows, languages, labels)
    else:
        per_label: dict[str, list[str]] = defaultdict(list)
        for text, label in train_rows:
            if args.shots is None or len(per_label[label]) < args.shots:
                per_label[label].append(text)
        train = [(t, label) for label, texts in per_label.items() for t in texts]
        validation = []
        t0 = time.perf_counter()
        cache.get_many([t for t, _ in train])
        trunk_seconds = time.perf_counter() - t0
        result = FaqTrainer(encoder, cache, targs).train(train, validation)
        index = FaqIndex.build(result.model, cache, train)
        report = score_faq(result.model, cache, index, test_rows, languages)

    train_seconds = trunk_seconds + result.seconds
    out = {
        "dataset": args.name or args.train.parent.name, "task": args.task,
        "accuracy": report["accuracy"], "macro_f1": report.get("macro_f1"),
        "top3": report.get("top3"), "by_language": report.get("by_language"),
        "n_train": len(train), "n_test": len(test_rows), "shots": args.shots,
        "train_seconds": round(train_seconds, 1), "trunk_seconds": round(trunk_seconds, 1),
        "adapter_seconds": round(result.seconds, 1),
        "examples_per_second": round(result.examples_seen / max(result.seconds, 1e-9), 1),
        "epochs_run": len(result.history), "history": result.history,
        "config": {"top_layers": args.top_layers, "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
                   "max_length": args.max_length, "threads": args.threads, "int8_trunk": not args.fp32},
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"accuracy-{out['dataset']}-{args.task}" + (f"-{args.shots}shot" if args.shots else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2, ensure_ascii=False))
    print(json.dumps(out, ensure_ascii=False))
    return out


if __name__ == "__main__":
    main()
