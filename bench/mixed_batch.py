"""The trunk on batches of mixed lengths: one call padded to the longest text, against similar-length groups.

    python bench/mixed_batch.py --datasets ../shared/datasets [--batches 5] [--repeats 5]

Batches of 32 test-set messages (16 zh-reviews-sentiment reviews, 16 en-intents-clinc150
questions, shuffled with seed 0), run through the shipped runtime's base (`[model] runtime`: the
ONNX trunk on a CPU) with one BLAS thread, as the bot runs it: once padded to the batch's longest
text (how batches ran before `training.features.similar_lengths`) and once as `trunk_features`
runs them now. Per batch the median of `--repeats` timings, and the largest difference between
the two results' states. Saves bench/results/mixed_batch.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (sys.path)
import numpy as np
from common import product_settings, read_tsv, save
from threadpoolctl import threadpool_limits

from serving.loading import load_base
from training.features import similar_lengths


def one_call(base, texts: list[str]) -> list[np.ndarray]:
    """The states of every text from one trunk call padded to the longest (the way before)."""
    ids, mask = base.tokenize(texts)
    hidden = base._run_trunk(ids, mask)
    return [hidden[i, :n] for i, n in enumerate(mask.sum(1).tolist())]


def median_ms(run, texts: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(texts)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, required=True)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    threadpool_limits(limits=1, user_api="blas")
    reviews = read_tsv(args.datasets / "zh-reviews-sentiment" / "test.tsv")
    questions = read_tsv(args.datasets / "en-intents-clinc150" / "test.tsv")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = load_base(product_settings(Path(tmp)))
        for b in range(args.batches):
            texts = [t for t, _ in reviews[16 * b:16 * (b + 1)] + questions[16 * b:16 * (b + 1)]]
            random.Random(b).shuffle(texts)
            lengths = base.tokenize(texts)[1].sum(1).tolist()
            before, after = one_call(base, texts), base.trunk_features(texts)
            rows.append({"tokens": sorted(lengths), "groups": len(similar_lengths(lengths, len(texts))),
                         "one_call_ms": median_ms(lambda batch: one_call(base, batch), texts, args.repeats),
                         "grouped_ms": median_ms(base.trunk_features, texts, args.repeats),
                         "max_state_difference": float(max(np.abs(x - y).max() for x, y in zip(before, after)))})
            print(rows[-1], flush=True)
    one, grouped = sum(r["one_call_ms"] for r in rows), sum(r["grouped_ms"] for r in rows)
    save("mixed_batch", {"batches": rows, "one_call_ms_total": round(one, 1), "grouped_ms_total": round(grouped, 1),
                         "speedup": round(one / grouped, 2), "overrides": {}})


if __name__ == "__main__":
    main()
