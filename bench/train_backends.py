"""The same snapshot retrained through training.backend = "local" and "ray": same adapter, same promotion?

    python bench/train_backends.py [--reviews ../shared/datasets/en-product-reviews-sentiment/train.tsv --limit 500]
                                   [--epochs N --min-steps N] [--ray-address ADDR] [--tag T]

Two fresh shops get the same data (the demo shop, plus the first --limit labelled reviews of a
text<TAB>label file if given) and are retrained once each by the production `retrain()` with
config.toml as shipped (paths moved to a temporary folder): one through the local backend (a
spawned child), one through the Ray backend (a local Ray instance with `model.train_threads` CPUs,
on 127.0.0.1, unless --ray-address names a cluster). Prints and saves per backend: each task's
test accuracy (method, n, 95% interval), whether it was promoted and why, the seconds, and whether
the two runs published the very same adapter files (promoted or refused). Needs the cluster extra (ray).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (sys.path)
from common import REPO, product_settings, read_tsv, save

from storage.seed import load_demo
from storage.store import Store
from storage.text import detect_language
from training.args import TrainArgs
from training.backends import SCRATCH_ENV, LocalChild, RayCluster
from training.pipeline import retrain
from training.registry import ADAPTER_MANIFEST, AdapterRegistry


def shop(folder: Path, reviews: list[tuple[str, str]], overrides: dict):
    settings = product_settings(folder, **overrides)
    with Store(settings.paths.database) as store:
        load_demo(store, REPO / "data" / "demo")
        if reviews:
            store.examples.add_many("sentiment", [(t, y, detect_language(t)) for t, y in reviews], "seed")
    return settings


def published_files(settings) -> dict[str, dict[str, str]]:
    """{task: the files (name -> sha256) of the adapter this run published, promoted or not}, checked against its manifest."""
    with Store(settings.paths.database) as store:
        registry = AdapterRegistry(settings.paths.adapters, store)
        return {task: json.loads((registry.verify(history[0]) / ADAPTER_MANIFEST).read_text())["files"]
                for task in ("sentiment", "faq") if (history := store.adapters.history(task))}


def summary(result: dict, seconds: float) -> dict:
    tasks = {}
    for task, outcome in result.get("tasks", {}).items():
        m = outcome["metrics"]
        tasks[task] = {"accuracy": m.get("accuracy"), "n": m.get("n"), "interval": [m.get("low"), m.get("high")],
                       "method": m.get("method"), "promoted": outcome["promoted"], "reasons": outcome["reasons"],
                       "train_seconds": outcome["train_seconds"]}
    return {"status": result["status"], "reasons": result.get("reasons"), "seconds": round(seconds, 1), "tasks": tasks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=Path, help="a text<TAB>label file whose first --limit rows are added")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--epochs", type=int, help="TrainArgs.epochs (default: the shipped TrainArgs)")
    parser.add_argument("--min-steps", type=int, help="TrainArgs.min_steps (default: the shipped TrainArgs)")
    parser.add_argument("--ray-address", default="", help='a running cluster ("auto", host:port); default: a new local instance')
    parser.add_argument("--tag", default="", help="suffix of the result file")
    args = parser.parse_args()
    reviews = read_tsv(args.reviews)[: args.limit] if args.reviews else []
    train_args = {k: v for k, v in (("epochs", args.epochs), ("min_steps", args.min_steps)) if v is not None}
    if train_args:
        print(f"overrides of TrainArgs: {train_args}", flush=True)
    recipe = TrainArgs(progress=False, **train_args)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not args.ray_address:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the local instance on 127.0.0.1 only
    import ray

    results, files, load_before = {}, {}, os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        settings = {name: shop(Path(tmp) / name, reviews, {}) for name in ("local", "ray")}
        threads, limit = settings["local"].model.train_threads, settings["local"].schedule.retrain_timeout_minutes
        if args.ray_address:
            ray.init(address=args.ray_address, logging_level="WARNING")
        else:  # its workers keep the base copy and feature cache in this run's folder, deleted after
            os.environ[SCRATCH_ENV] = str(Path(tmp) / "ray-worker")
            ray.init(num_cpus=threads, include_dashboard=False, logging_level="WARNING")
        backends = {"local": LocalChild(limit), "ray": RayCluster(args.ray_address, limit)}
        for name, backend in backends.items():
            started = time.perf_counter()
            result = retrain(settings[name], "manual", args=recipe, backend=backend)
            results[name] = summary(result, time.perf_counter() - started)
            files[name] = published_files(settings[name])
            print(name, json.dumps(results[name], ensure_ascii=False), flush=True)
        ray.shutdown()
    same_accuracy = all(abs((results["local"]["tasks"][t]["accuracy"] or 0) - (results["ray"]["tasks"][t]["accuracy"] or 0)) <= 0.005
                        for t in results["local"]["tasks"])
    same_promotion = ({t: o["promoted"] for t, o in results["local"]["tasks"].items()}
                      == {t: o["promoted"] for t, o in results["ray"]["tasks"].items()})
    save("train_backends" + (f"-{args.tag}" if args.tag else ""), {
        "data": "demo shop" + (f" + {len(reviews)} reviews of {args.reviews}" if reviews else ""),
        "overrides": {"train_args": train_args, "ray_address": args.ray_address or "(a new local instance)"},
        "threads": threads, "load_before": load_before, "load_after": os.getloadavg(), "backends": results,
        "same_accuracy_within_0.5_point": same_accuracy, "same_promotion": same_promotion,
        "same_adapter_files": bool(files["local"]) and files["local"] == files["ray"],  # the published candidates
        "ray_over_local_seconds": round(results["ray"]["seconds"] / max(results["local"]["seconds"], 1e-9), 2),
    })


if __name__ == "__main__":
    main()
