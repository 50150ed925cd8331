"""Simulate weeks of shop traffic on public data and measure how the bot learns from staff corrections.

One script on purpose (over 300 lines): a benchmark is read top to bottom, set-up, run and report together.

    python bench/learning_curve.py --data ../shared/datasets/zh-reviews-sentiment --task sentiment
    python bench/learning_curve.py --data ../shared/datasets/en-intents-clinc150 --task faq

Everything goes through the bot's own code: messages, decisions and corrections are written with
the storage repositories (as the handlers do), the weekly retrain is `training.pipeline.retrain`
(snapshot -> train -> evaluate -> gate -> publish/promote; `--child` runs it in the child process
exactly as the bot does), and a promotion is swapped in with `serving.loading.load_active` +
`ModelRuntime.swap` (what `Services.reload_adapters` does). The FAQ index is rebuilt after each
week, as the bot does after every FAQ correction.

The shop starts with a few labelled examples (`--seed-per-class` reviews per sentiment class; one
phrasing per FAQ entry, which also becomes the entry's canonical question). Each week
`--per-week` messages arrive; the served model decides each one with its task head (the
correction memory is left out: it would only repeat staff answers); an oracle playing staff
corrects every wrong decision with the true label (and confirms a right one with probability
`--confirm-rate`). After each week's retrain the served model is scored on a fixed test subset
(`--test-limit` rows of the dataset's test file) and on the week-1 messages (forgetting).

The gate is the shipped one by default (`--threshold config`): until a sentiment candidate passes
it, reviews wait for staff and the served sentiment accuracy is null; `candidate_accuracy_by_week`
shows what each week's candidate scored on the same fixed test subset, promoted or not.

Staff budget (`--budget N`, issue 11): staff press at most N times a week. Each press is a look at one
decision (✅ if it was right, the label if it was wrong); the N are chosen `--order queue` (the bot's
/review queue, `shop.review_queue.ReviewQueue` over every pending decision: lowest margin first, the
unpromoted candidate's guess standing in while no sentiment adapter serves) or `--order arrival` (the
week's first N messages). The run then reports taps by week and `taps_to_target`: the presses spent
until the served accuracy first reached the task's threshold (None: not within the weeks).

Appends/replaces one run per (dataset, task) in bench/results/learning_curve.json and redraws
bench/results/learning_curve.png from all runs there.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import common  # noqa: F401  (sys.path)
import numpy as np
import torch
from common import RESULTS, base_folder

from serving.loading import build_serving, load_active, rebuild_index
from serving.runtime import ModelRuntime, ServingModel
from settings import Settings, settings_from_dict
from shop.review_queue import ReviewQueue
from storage.store import Store
from storage.text import detect_language
from training.args import TrainArgs
from training.encoder import load_encoder
from training.features import FeatureCache
from training.registry import AdapterRegistry

STAFF_ID = 9000


def read_tsv(path: Path) -> list[tuple[str, str]]:
    """(text, label) rows of a text<TAB>label file with a header."""
    csv.field_size_limit(1 << 24)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        next(reader)
        return [(row[0].strip(), row[1].strip()) for row in reader if len(row) >= 2 and row[0].strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="dataset folder with train.tsv and test.tsv")
    parser.add_argument("--task", choices=("sentiment", "faq"), required=True)
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--per-week", type=int, default=None, help="messages per week (default 300 sentiment, 600 faq)")
    parser.add_argument("--test-limit", type=int, default=500, help="fixed test subset size (random, seeded)")
    parser.add_argument("--seed-per-class", type=int, default=2, help="sentiment: labelled reviews per class at start")
    parser.add_argument("--confirm-rate", type=float, default=0.0,
                        help="share of right decisions the oracle also confirms (confirmations are training data too)")
    parser.add_argument("--budget", type=int, default=None,
                        help="staff presses per week (default: unlimited, every mistake corrected)")
    parser.add_argument("--order", choices=("queue", "arrival"), default="queue",
                        help="with --budget: which decisions the presses go to")
    parser.add_argument("--threshold", default="config",
                        help='gate accuracy threshold: "config" = the shipped ones (sentiment 0.90, FAQ 0.85), or a '
                             "number for both tasks (e.g. 0 to promote any candidate that does not regress); the "
                             "gate's no-regression checks apply either way")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: TrainArgs default)")
    parser.add_argument("--top-layers", type=int, default=None, help="default: the settings default")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--child", action="store_true", help="retrain in a child process, as the bot does")
    parser.add_argument("--base", default=None, help="base model folder (default: the bundled e5-small)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the simulated shop here (default: temp)")
    parser.add_argument("--out", type=Path, default=RESULTS / "learning_curve.json")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    args.per_week = args.per_week or (300 if args.task == "sentiment" else 600)
    return args


def make_settings(args: argparse.Namespace, workdir: Path, base: Path) -> Settings:
    model: dict[str, Any] = {"base": str(base), "max_length": args.max_length, "train_threads": args.threads}
    if args.top_layers:
        model["top_layers"] = args.top_layers
    thresholds: dict[str, Any] = {"min_new_examples": 0}
    if args.threshold != "config":
        thresholds |= {"sentiment_accuracy": float(args.threshold), "faq_accuracy": float(args.threshold)}
        if float(args.threshold) == 0:  # the curve shows the recipe: no absolute bar, neither accuracy nor precision
            thresholds["max_interval"] = 1.0
    return settings_from_dict({"model": model, "thresholds": thresholds, "shop": {"languages": ["zh", "en"]}},
                              workdir, env={})


def seed_shop(store: Store, task: str, pool: list[tuple[str, str]], per_class: int) -> list[tuple[str, str]]:
    """Store the starting examples (and FAQ entries); returns the pool without them."""
    taken: dict[str, int] = defaultdict(int)
    seeds, rest = [], []
    limit = per_class if task == "sentiment" else 1
    for text, label in pool:
        if taken[label] < limit:
            taken[label] += 1
            seeds.append((text, label, detect_language(text)))
        else:
            rest.append((text, label))
    if task == "faq":
        for text, label, language in seeds:
            store.faq.upsert(label, language, text, f"[{label}]", topic="bench", source="seed")
    store.examples.add_many(task, seeds, "seed")
    return rest


def predict(serving: ServingModel, cache: FeatureCache, task: str, texts: list[str]) -> list[tuple[str | None, float]]:
    """(label, confidence) per text from the serving model's head for `task` (None: no model for it)."""
    if not texts:
        return []
    features = cache.get_many(texts)
    if task == "sentiment":
        probs = serving.sentiment_network(features)
        if probs is None:
            return [(None, 0.0)] * len(texts)
        return [(serving.labels[int(i)], float(p.max())) for i, p in zip(probs.argmax(1), probs)]
    hits = serving.index.search(serving.faq_vectors(features), k=1)
    return [(row[0][0], float(row[0][2])) if row else (None, 0.0) for row in hits]


def alternatives(serving: ServingModel, cache: FeatureCache, task: str,
                 texts: list[str]) -> list[tuple[tuple[str, float], ...]]:
    """What the bot stores as a decision's alternatives (best first): FAQ top 3, sentiment probabilities (before any
    sentiment adapter serves: the unpromoted candidate's, as serving's shadow has them, else none)."""
    if not texts:
        return []
    features = cache.get_many(texts)
    if task == "faq":
        vectors = serving.faq_vectors(features)
        return [tuple((key, float(conf)) for key, _cos, conf in row) for row in serving.index.search(vectors, k=3)]
    probs, labels = serving.sentiment_network(features), serving.labels
    if probs is None:
        probs, labels = serving.shadow_probabilities(features), serving.shadow_labels
    if probs is None:
        return [()] * len(texts)
    return [tuple((labels[j], float(p[j])) for j in np.argsort(-p)) for p in probs]


def accuracy(serving: ServingModel, cache: FeatureCache, task: str, pairs: list[tuple[str, str]]) -> float | None:
    """Share of pairs the serving model gets right (None: it has no model for the task yet)."""
    if task == "sentiment" and serving.sentiment_model is None:
        return None
    predictions = predict(serving, cache, task, [t for t, _ in pairs])
    return float(np.mean([p == label for (p, _), (_, label) in zip(predictions, pairs)]))


def stream_week(store: Store, runtime: ModelRuntime, cache: FeatureCache, task: str, rows: list[tuple[str, str]],
                week: int, rng: random.Random, confirm_rate: float, budget: int | None = None,
                order: str = "queue", truths: dict[int, str] | None = None) -> dict[str, int]:
    """Messages arrive, the bot decides, the oracle corrects every wrong decision (with a budget: looks at
    `budget` decisions, chosen in `order`, and corrects or confirms each); returns counts."""
    counts = {"messages": len(rows), "corrected": 0, "confirmed": 0, "taps": 0}
    texts = [t for t, _ in rows]
    decisions = predict(runtime.serving, cache, task, texts)
    shown = alternatives(runtime.serving, cache, task, texts) if budget is not None else [()] * len(rows)
    truths = {} if truths is None else truths  # decision id -> true label, kept across weeks (the queue's leftovers)
    arrived = []
    for number, ((text, truth), (label, confidence), alts) in enumerate(zip(rows, decisions, shown)):
        customer = 100_000 + week * 10_000 + number
        store.customers.touch(customer, detect_language(text))
        message = store.messages.add(customer, customer, 1, text)
        if task == "sentiment":
            decision = store.decisions.add(message.id, "review", label, confidence, "acknowledged",
                                           adapter_version=runtime.serving.version, alternatives=alts)
            kind = "label"
        else:
            action = "answered" if label is not None and confidence >= runtime.answer_threshold else "handoff"
            decision = store.decisions.add(message.id, "question", label, confidence, action,
                                           adapter_version=runtime.serving.version, alternatives=alts)
            kind = "faq"
        if budget is not None:
            truths[decision.id] = truth
            arrived.append(decision.id)
            continue
        if label != truth:
            store.corrections.add(decision.id, STAFF_ID, kind, new_label=truth)
            counts["corrected"] += 1
        elif rng.random() < confirm_rate:
            store.corrections.add(decision.id, STAFF_ID, "confirm")
            counts["confirmed"] += 1
    if budget is not None:
        spend_budget(store, task, truths, arrived, budget, order, counts)
    else:
        counts["taps"] = counts["corrected"] + counts["confirmed"]
    return counts


def spend_budget(store: Store, task: str, truths: dict[int, str], arrived: list[int], budget: int, order: str,
                 counts: dict[str, int]) -> None:
    """The oracle's `budget` presses this week: on the queue's first decisions (any week's, still pending) or on
    this week's first arrivals; a right decision is confirmed, a wrong one corrected."""
    if order == "queue":
        picked = [item.decision for item in ReviewQueue(store).next(budget)]
    else:
        picked = [store.decisions.get(decision_id) for decision_id in arrived[:budget]]
    for decision in picked:
        truth = truths[decision.id]
        counts["taps"] += 1
        if decision.label != truth:
            store.corrections.add(decision.id, STAFF_ID, "label" if task == "sentiment" else "faq", new_label=truth)
            counts["corrected"] += 1
        else:
            store.corrections.add(decision.id, STAFF_ID, "confirm")
            counts["confirmed"] += 1


def candidate_accuracy(result: dict, store: Store, encoder, settings: Settings, cache: FeatureCache,
                       task: str, test: list[tuple[str, str]]) -> float | None:
    """Accuracy of this week's candidate on the fixed test subset (promoted or not)."""
    outcome = (result.get("tasks") or {}).get(task)
    if not outcome:
        return None
    path = AdapterRegistry(settings.paths.adapters, store).folder(store.adapters.get(outcome["version"]))
    serving = build_serving(encoder, store, path if task == "sentiment" else None, path if task == "faq" else None,
                            {task: outcome["version"]})
    return accuracy(serving, cache, task, test)


def forgetting(scores: list[float | None]) -> float:
    """The largest drop from an earlier score to a later one (0 if it never drops)."""
    worst, best = 0.0, None
    for score in scores:
        if score is None:
            continue
        if best is not None:
            worst = max(worst, best - score)
        best = score if best is None else max(best, score)
    return round(worst, 4)


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    pool, test = read_tsv(args.data / "train.tsv"), read_tsv(args.data / "test.tsv")
    rng.shuffle(pool)
    rng.shuffle(test)
    test = test[: args.test_limit]
    if args.task == "sentiment":
        labels = {label for _, label in pool}
        if not labels <= {"positive", "neutral", "negative"}:
            raise SystemExit(f"sentiment labels must be positive/neutral/negative, got {sorted(labels)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="learning-curve-"))
    if args.workdir and workdir.exists():
        shutil.rmtree(workdir)
    base = base_folder(args.base)
    settings = make_settings(args, workdir, base)
    started = time.perf_counter()
    store = Store(settings.paths.database)
    pool = seed_shop(store, args.task, pool, args.seed_per_class)
    needed = args.weeks * args.per_week
    if len(pool) < needed:
        raise SystemExit(f"{args.data}: {len(pool)} training rows, {needed} needed for {args.weeks} weeks")
    encoder = load_encoder(settings)
    cache = FeatureCache(encoder, settings.paths.model_cache / "features")  # the disk cache retrain() reads too
    runtime = ModelRuntime(load_active(encoder, settings, store), settings.thresholds.answer_confidence)
    cache.get_many([t for t, _ in test])
    start_accuracy = accuracy(runtime.serving, cache, args.task, test)
    print(f"start: {len(store.examples.all(task=args.task))} labelled examples, test accuracy "
          f"{start_accuracy if start_accuracy is None else round(start_accuracy, 4)}", flush=True)

    if args.child:
        from training.pipeline import run_retrain

        def retrain_week() -> dict:
            return run_retrain(settings, "schedule")
    else:
        from training.pipeline import retrain

        train_args = TrainArgs(progress=False, **({"epochs": args.epochs} if args.epochs else {}))

        def retrain_week() -> dict:
            return retrain(settings, "schedule", args=train_args)

    weeks, week1 = [], []
    truths: dict[int, str] = {}
    for week in range(1, args.weeks + 1):
        rows = pool[(week - 1) * args.per_week: week * args.per_week]
        if week == 1:
            week1 = rows
        t0 = time.perf_counter()
        counts = stream_week(store, runtime, cache, args.task, rows, week, rng, args.confirm_rate, args.budget,
                             args.order, truths)
        stream_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = retrain_week()
        train_seconds = time.perf_counter() - t0
        outcome = (result.get("tasks") or {}).get(args.task) or {}
        t0 = time.perf_counter()
        if outcome.get("promoted"):
            runtime.swap(load_active(encoder, settings, store))  # what Services.reload_adapters does
        elif args.budget is not None and args.task == "sentiment":  # the refused candidate's guesses, as the bot
            runtime.swap(load_active(encoder, settings, store))  # shows them (serving.loading.with_shadow)
        else:
            runtime.swap(rebuild_index(runtime.serving, store))  # new phrasings, as after FAQ corrections
        swap_seconds = time.perf_counter() - t0
        record = {
            "week": week, **counts, "status": result.get("status"), "promoted": bool(outcome.get("promoted")),
            "gate_reasons": outcome.get("reasons") or result.get("reasons"),
            "gate_accuracy": (outcome.get("metrics") or {}).get("accuracy"),
            "gate_test_n": (outcome.get("metrics") or {}).get("n"),
            "accuracy": accuracy(runtime.serving, cache, args.task, test),
            "week1_accuracy": accuracy(runtime.serving, cache, args.task, week1),
            "serving": runtime.serving.version, "labelled_examples": len(store.examples.all(task=args.task)),
            "stream_seconds": round(stream_seconds, 1), "retrain_seconds": round(train_seconds, 1),
            "swap_seconds": round(swap_seconds, 2),
        }
        record["candidate_accuracy"] = record["accuracy"] if record["promoted"] else candidate_accuracy(
            result, store, encoder, settings, cache, args.task, test)
        weeks.append(record)
        print(json.dumps({k: record[k] for k in ("week", "corrected", "status", "accuracy", "candidate_accuracy",
                                                 "week1_accuracy", "retrain_seconds")}), flush=True)
    store.close()
    out = {
        "dataset": args.data.resolve().name, "task": args.task,
        "accuracy_by_week": [w["accuracy"] for w in weeks],
        "forgetting": forgetting([w["week1_accuracy"] for w in weeks]),
        "start_accuracy": start_accuracy,
        "week1_accuracy_by_week": [w["week1_accuracy"] for w in weeks],
        "candidate_accuracy_by_week": [w["candidate_accuracy"] for w in weeks],
        "corrections_by_week": [w["corrected"] for w in weeks],
        "taps_by_week": [w["taps"] for w in weeks],
        "taps_to_target": taps_to_target(weeks, TARGETS[args.task] / 100),
        "promoted_by_week": [w["promoted"] for w in weeks],
        "weeks": weeks,
        "config": {"weeks": args.weeks, "per_week": args.per_week, "test_n": len(test),
                   "seed_per_class": args.seed_per_class if args.task == "sentiment" else None,
                   "faq_seed_phrasings": 1 if args.task == "faq" else None, "confirm_rate": args.confirm_rate,
                   "budget": args.budget, "order": args.order if args.budget is not None else None,
                   "gate_thresholds": {"sentiment": settings.thresholds.sentiment_accuracy,
                                       "faq": settings.thresholds.faq_accuracy,
                                       "max_regression": settings.thresholds.max_regression},
                   "top_layers": settings.model.top_layers, "max_length": settings.model.max_length,
                   "epochs": args.epochs, "threads": args.threads, "child_process": args.child,
                   "base_model": str(base), "seed": args.seed},
        "seconds": round(time.perf_counter() - started, 1),
    }
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def taps_to_target(weeks: list[dict[str, Any]], target: float) -> int | None:
    """Presses (corrections + confirmations) spent up to the first week whose served accuracy reached `target`."""
    spent = 0
    for week in weeks:
        spent += week["corrected"] + week["confirmed"]
        if week["accuracy"] is not None and week["accuracy"] >= target:
            return spent
    return None


def run_key(run: dict[str, Any]) -> tuple:
    """Runs that differ only in when they ran replace each other: same data, task and staff behaviour."""
    config = run.get("config") or {}
    return (run.get("dataset"), run.get("task"), config.get("confirm_rate", 0.0), config.get("budget"),
            config.get("order"))


def save(out: dict[str, Any], path: Path) -> None:
    """Replace this (dataset, task, confirm rate) run in the results list, keep the others; redraw the PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    runs = [r for r in runs if run_key(r) != run_key(out)] + [out]
    path.write_text(json.dumps(runs, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    plot(runs, path.with_suffix(".png"))


TARGETS = {"sentiment": 90, "faq": 85}  # issue 5: reached within 4 simulated weeks


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """One panel per task: accuracy by week (solid), on week-1 data (dotted), the target (dashed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = [task for task in TARGETS if any(run["task"] == task for run in runs)]
    figure = Figure(figsize=(5 * max(len(tasks), 1), 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, max(len(tasks), 1), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        for number, run in enumerate(r for r in runs if r["task"] == task):
            color = f"C{number}"
            start = [] if run.get("start_accuracy") is None else [run["start_accuracy"]]
            xs = list(range(1 - len(start), len(run["accuracy_by_week"]) + 1))
            ys = [100 * v if v is not None else float("nan") for v in start + run["accuracy_by_week"]]
            rate = (run.get("config") or {}).get("confirm_rate", 0.0)
            staff = f"... and confirm {rate:.0%} of the rest" if rate else "staff correct mistakes"
            if (run.get("config") or {}).get("budget") is not None:
                staff = f"{run['config']['budget']} presses/week, {run['config']['order']} order"
            ax.plot(xs, ys, "-o", color=color, label=f"{staff}: test set")
            w1 = [100 * v if v is not None else float("nan") for v in run.get("week1_accuracy_by_week", [])]
            ax.plot(range(1, len(w1) + 1), w1, ":", color=color, label=f"{staff}: week-1 data")
        ax.axhline(TARGETS[task], color="grey", linestyle="--", linewidth=1, label=f"target {TARGETS[task]}%")
        dataset = next(r["dataset"] for r in runs if r["task"] == task)
        ax.set_title(f"{task}: {dataset}", fontsize=10)
        ax.set_xlabel("simulated week (0 = before any retrain)")
        ax.set_xticks(range(max(len(r["accuracy_by_week"]) for r in runs if r["task"] == task) + 1))
        ax.set_ylim(45, 101)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("accuracy (%)")
    figure.suptitle("Learning from staff feedback, week by week")
    figure.tight_layout()
    figure.savefig(path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = run(args)
    save(out, args.out)
    print(json.dumps({k: out[k] for k in ("dataset", "task", "accuracy_by_week", "forgetting", "seconds")}))
    return out


if __name__ == "__main__":
    main()
