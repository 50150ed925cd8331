"""A weekly retrain of both tasks on 5,000 labelled examples, through the production `retrain()` path.

    python bench/train_speed.py --datasets ../shared/datasets [--threads 1] [--weeks 1|2] [--device cuda [--load-in-4bit]]

Examples: 3,500 reviews (half zh-reviews-sentiment, half en-product-reviews-sentiment) and 1,500
FAQ phrasings (10 per CLINC150 intent), loaded into a fresh shop database. Run 1 is cold (no
trunk features cached); run 2 is the next week's retrain with 50 new staff corrections, with the
trunk-feature cache of run 1, as in production (`--weeks 1`: the cold run only). Both include
snapshot, training, evaluation of candidate/active/base, gate and publish; per task the saved
result has its seconds and its estimate (method, n, interval). --device / --load-in-4bit override
model.device / model.load_in_4bit (printed, and saved as "overrides" in train_speed-<device>.json).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import common  # noqa: F401
import torch
from common import base_folder, peak_rss_mb, read_tsv, save

from settings import settings_from_dict
from storage.store import Store
from storage.text import detect_language
from training.pipeline import retrain


def load(store: Store, datasets: Path, reviews: int, faq_per_intent: int) -> int:
    zh = read_tsv(datasets / "zh-reviews-sentiment" / "train.tsv")[: reviews // 2]
    en = read_tsv(datasets / "en-product-reviews-sentiment" / "train.tsv")[: reviews - reviews // 2]
    store.examples.add_many("sentiment", [(t, y, detect_language(t)) for t, y in zh + en], "seed")
    per_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in read_tsv(datasets / "en-intents-clinc150" / "train.tsv"):
        if len(per_intent[intent]) < faq_per_intent + 1:
            per_intent[intent].append(text)
    rows = []
    for intent, texts in per_intent.items():
        store.faq.upsert(intent, "en", texts[0], f"(answer for {intent})", intent, "seed")
        rows += [(t, intent, "en") for t in texts[1:]]
    store.examples.add_many("faq", rows, "seed")
    return len(zh) + len(en) + len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the training child uses 1)")
    parser.add_argument("--reviews", type=int, default=3500)
    parser.add_argument("--faq-per-intent", type=int, default=10)
    parser.add_argument("--weeks", type=int, choices=(1, 2), default=2, help="1: only the cold retrain")
    parser.add_argument("--base", default=None)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="model.device (default: config's auto)")
    parser.add_argument("--load-in-4bit", action="store_true", help="model.load_in_4bit (CUDA, bitsandbytes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = base_folder(args.base)
    overrides = ({"device": args.device} if args.device else {}) | ({"load_in_4bit": True} if args.load_in_4bit else {})
    if overrides:
        print(f"overrides of [model]: {overrides}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_from_dict({"model": {"base": str(base)} | overrides, "thresholds": {"min_new_examples": 1}},
                                      Path(tmp), env={})
        with Store(settings.paths.database) as store:
            n = load(store, args.datasets, args.reviews, args.faq_per_intent)
        runs = []
        for week in range(1, args.weeks + 1):
            if week == 2:
                with Store(settings.paths.database) as store:  # a week of staff corrections
                    extra = read_tsv(args.datasets / "zh-reviews-sentiment" / "test.tsv")[:50]
                    store.examples.add_many("sentiment", [(t, y, "zh") for t, y in extra], "correction")
            t = time.perf_counter()
            result = retrain(settings, "cli")
            seconds = time.perf_counter() - t
            runs.append({
                "week": week, "cache": "cold" if week == 1 else "warm", "seconds": round(seconds, 1),
                "status": result["status"], **({"reasons": result["reasons"]} if result["status"] == "failed" else {}),
                "tasks": {task: {"train_seconds": o["train_seconds"], "accuracy": round(o["metrics"]["accuracy"], 4)}
                          | {k: o["metrics"][k] for k in ("method", "n", "low", "high") if k in o["metrics"]}
                          for task, o in result.get("tasks", {}).items()},
            })
            print(runs[-1], flush=True)
    name = ("train_speed" + (f"-{args.device}" if args.device else "") + ("-4bit" if args.load_in_4bit else "")
            + ("-cold" if args.weeks == 1 else ""))
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    gpu_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1) if gpu else None
    save(name, {"examples": n, "threads": args.threads, "overrides": overrides, "gpu": gpu, "torch": torch.__version__,
                "runs": runs, "cold_seconds": runs[0]["seconds"],
                "warm_seconds": runs[1]["seconds"] if len(runs) > 1 else None,
                "target_seconds": 300, "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()], "peak_rss_mb": round(peak_rss_mb(), 1), "peak_gpu_mb": gpu_mb})


if __name__ == "__main__":
    main()
