"""The demo shop's first `shopbot train`, as `make run` does it on a fresh clone: what each task scored and why.

    python bench/demo_first_train.py

config.toml as shipped (only its paths move to a temporary folder); the production `retrain()`.
Prints and saves each task's estimate (method, n, 95% interval), the gate's decision and reasons,
and the seconds it took.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (sys.path)
import torch
from common import REPO, peak_rss_mb, product_settings, save

from storage.seed import load_demo
from storage.store import Store
from training.pipeline import retrain


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = product_settings(Path(tmp))
        torch.set_num_threads(settings.model.train_threads)
        with Store(settings.paths.database) as store:
            load_demo(store, REPO / "data" / "demo")
        started = time.perf_counter()
        result = retrain(settings, "cli")
        seconds = time.perf_counter() - started
    tasks = {}
    for task, outcome in result.get("tasks", {}).items():
        m = outcome["metrics"]
        tasks[task] = {"promoted": outcome["promoted"], "accuracy": m.get("accuracy"), "n": m.get("n"),
                       "interval": [m.get("low"), m.get("high")], "method": m.get("method"), "folds": m.get("folds"),
                       "by_language": {k: v.get("accuracy") for k, v in (m.get("by_language") or {}).items()},
                       "base_accuracy": (outcome.get("base_metrics") or {}).get("accuracy"),
                       "router_accuracy": m.get("router_accuracy"), "reasons": outcome["reasons"],
                       "seconds": outcome["train_seconds"]}
        print(f"{task}: {'promoted' if outcome['promoted'] else 'refused'}; " + "; ".join(outcome["reasons"]), flush=True)
    save("demo_first_train", {"status": result["status"], "seconds": round(seconds, 1), "tasks": tasks,
                              "threads": settings.model.train_threads, "peak_rss_mb": round(peak_rss_mb(), 1)})


if __name__ == "__main__":
    main()
