"""Question-vs-review routing of fresh customer messages, with the demo shop's adapters trained as shipped.

    python bench/routing.py [--messages bench/data/routing_messages.tsv] [--tag before] [--workdir DIR]

Loads the demo shop (data/demo) into a fresh database, retrains both adapters with the production
`training.pipeline.retrain` under the settings of config.toml (only the paths are moved into a
temporary folder and the bundled base is taken from its build in .cache/models instead of being
rebuilt there; both overrides are printed and saved), then routes every message of the TSV
(text<TAB>kind<TAB>language, kind = question|review) through the bot's `ModelRuntime`
(`serving.loading.load_runtime`).

Reports, overall and per language: n, the share of questions taken for reviews (they never reach
the FAQ) and of reviews taken for questions, plus every misrouted message with its p(question),
twice: "served" is what the bot serves after this retrain (the active adapters; with no FAQ adapter
promoted that is the cue heuristic), "faq_candidate" serves this retrain's FAQ candidate and its
learned router whether or not the gate promoted it (the FAQ gate on the demo's 55 test phrasings
is close to its 0.85 threshold, so promotion alone would hide the router). Saves
bench/results/routing[-TAG].json. The messages are a test set: never tune on them.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import common  # noqa: F401  (sys.path)
import torch
from common import REPO, base_folder, peak_rss_mb, save

from serving.loading import build_serving, load_runtime
from serving.runtime import ModelRuntime
from settings import settings_from_dict
from storage.seed import load_demo
from storage.store import Store
from training.pipeline import retrain
from training.registry import AdapterRegistry

DEMO = REPO / "data" / "demo"
MESSAGES = REPO / "bench" / "data" / "routing_messages.tsv"


def read_messages(path: Path) -> list[dict[str, str]]:
    """Rows of a text<TAB>kind<TAB>language file with a header."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [dict(r) for r in csv.DictReader(handle, delimiter="\t")]
    bad = [r for r in rows if r["kind"] not in ("question", "review") or not r["text"].strip()]
    if bad:
        raise ValueError(f"{path}: bad rows {bad[:3]}")
    return rows


def shipped_settings(workdir: Path, base: Path) -> tuple[Any, dict[str, str]]:
    """config.toml as shipped, with paths under workdir and the prebuilt bundled base; plus the overrides."""
    config = tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))
    overrides = {
        "model.base": f"{base} (config: {config['model']['base']!r}; the same bundled model, built once)",
        "paths.*": f"relative to {workdir} (config: relative to the repo)",
        "shop.demo_data": str(DEMO),
    }
    config["model"]["base"] = str(base)
    config["shop"]["demo_data"] = str(DEMO)
    return settings_from_dict(config, workdir, env={}), overrides


def rates(rows: list[dict[str, str]], routed: list[str]) -> dict[str, Any]:
    """n and misrouting shares of a subset."""
    questions = [r for r, got in zip(rows, routed) if r["kind"] == "question"]
    reviews = [r for r, got in zip(rows, routed) if r["kind"] == "review"]
    q_wrong = sum(got == "review" for r, got in zip(rows, routed) if r["kind"] == "question")
    r_wrong = sum(got == "question" for r, got in zip(rows, routed) if r["kind"] == "review")
    return {
        "n": len(rows), "questions": len(questions), "reviews": len(reviews),
        "questions_as_reviews": round(q_wrong / max(len(questions), 1), 4), "questions_as_reviews_n": q_wrong,
        "reviews_as_questions": round(r_wrong / max(len(reviews), 1), 4), "reviews_as_questions_n": r_wrong,
        "accuracy": round(sum(r["kind"] == got for r, got in zip(rows, routed)) / max(len(rows), 1), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=Path, default=MESSAGES)
    parser.add_argument("--tag", default="", help="saved as bench/results/routing-TAG.json")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the trained shop here (default: temp)")
    parser.add_argument("--base", default=None, help="base model folder (default: the bundled e5-small)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = read_messages(args.messages)
    base = base_folder(args.base)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        settings, overrides = shipped_settings(workdir, base)
        print("overrides of config.toml:", overrides, flush=True)
        with Store(settings.paths.database) as store:
            load_demo(store, DEMO)
        started = time.perf_counter()
        trained = retrain(settings, "cli")
        train_seconds = time.perf_counter() - started
        tasks = {task: {"version": o["version"], "promoted": o["promoted"],
                        "router_accuracy": o["metrics"].get("router_accuracy")}
                 for task, o in trained.get("tasks", {}).items()}
        print("retrain:", trained["status"], tasks, flush=True)
        with Store(settings.paths.database) as store:
            runtime = load_runtime(settings, store)
            served = route(runtime, rows)
            candidate = None
            if "faq" in tasks:
                folder = AdapterRegistry(settings.paths.adapters, store).verify(tasks["faq"]["version"])
                serving = build_serving(runtime.serving.encoder, store, None, folder, {"faq": tasks["faq"]["version"]})
                candidate = route(ModelRuntime(serving, settings.thresholds.answer_confidence), rows)
    save("routing" + (f"-{args.tag}" if args.tag else ""), {
        "messages": str(args.messages.relative_to(REPO) if args.messages.is_relative_to(REPO) else args.messages),
        "overrides": overrides, "retrain_status": trained["status"], "tasks": tasks,
        "train_seconds": round(train_seconds, 1), "target": {"questions_as_reviews_max": 0.02},
        "served": served, "faq_candidate": candidate, "peak_rss_mb": round(peak_rss_mb(), 1),
    })


def route(runtime: ModelRuntime, rows: list[dict[str, str]]) -> dict[str, Any]:
    """Route every message; rates overall and per language, and the misrouted messages."""
    decisions = []
    for start in range(0, len(rows), 32):
        decisions += runtime.decide_batch([r["text"] for r in rows[start:start + 32]])
    routed = [d.kind for d in decisions]
    by_language = {lang: rates([r for r in rows if r["language"] == lang],
                               [g for r, g in zip(rows, routed) if r["language"] == lang])
                   for lang in sorted({r["language"] for r in rows})}
    misrouted = [{"text": r["text"], "kind": r["kind"], "language": r["language"],
                  "p_question": round(d.question_probability, 3)}
                 for r, d in zip(rows, decisions) if d.kind != r["kind"]]
    router = ("learned router (FAQ adapter " + runtime.serving.versions.get("faq", "?") + ")"
              if runtime.serving.router is not None else "cue heuristic (no FAQ adapter)")
    result = {"router": router, "overall": rates(rows, routed), "by_language": by_language, "misrouted": misrouted}
    print(router, result["overall"], flush=True)
    return result


if __name__ == "__main__":
    main()
