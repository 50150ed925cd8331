"""Containment with and without "did you mean…?": questions answered right without staff, on the demo shop.

    python bench/containment.py [--questions bench/data/containment_questions.tsv] [--retrain --tag retrain] [--workdir DIR]

Loads the demo shop (data/demo) into a fresh database under config.toml as shipped (paths moved to a
temporary folder, the bundled base from its build in .cache/models: see bench/routing.py), and serves
it as the product does on first run (the base FAQ model, no adapter; --retrain first runs the
production `training.pipeline.retrain`). Every question of the TSV (text<TAB>expected<TAB>language;
expected is an FAQ key, or "none" when the shop's FAQ has no answer) goes through the bot's
`ModelRuntime`, then:

* before: the bot answers only above thresholds.answer_confidence; anything else is handed off;
* after: below it, the entries `shop.conversation.suggestions_for` offers are shown, and a simulated
  customer picks the expected entry when it is offered, else presses "none of these" (a handoff).

Containment = questions answered with the expected entry, over all n and over the n with an answer in
the FAQ; wrong = answered with another entry (or answered when the FAQ has none). The simulated
customer never picks a wrong entry, so "after" cannot add wrong answers; a real customer might, which
is why their pick is stored as a weak example only (see shop/conversation.py). Also: how often
suggestions are shown, and a sweep of thresholds.suggest_confidence. 95% Wilson intervals. Saves
bench/results/containment[-TAG].json. The questions are a test set: never tune on them.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401  (sys.path)
import torch
from common import REPO, base_folder, peak_rss_mb, save, wilson
from routing import DEMO, shipped_settings

from serving.loading import load_runtime
from serving.prediction import Prediction
from settings import Settings
from shop.conversation import suggestions_for
from storage.seed import load_demo
from storage.store import Store
from training.pipeline import retrain

QUESTIONS = REPO / "bench" / "data" / "containment_questions.tsv"
SWEEP = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


def read_questions(path: Path) -> list[dict[str, str]]:
    """Rows of a text<TAB>expected<TAB>language file with a header."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [dict(r) for r in csv.DictReader(handle, delimiter="\t")]


def share(k: int, n: int) -> dict[str, Any]:
    return {"n": n, "k": k, "rate": round(k / max(n, 1), 4), "ci95": wilson(k, n)}


def outcomes(settings: Settings, store: Store, rows: list[dict[str, str]], decisions: list[Prediction]) -> dict[str, Any]:
    """Before / after containment and wrong answers under these settings."""
    counts = {"answered_right": 0, "answered_wrong": 0, "offered": 0, "offered_on_none": 0, "picked": 0,
              "offered_not_listed": 0}
    for row, decision in zip(rows, decisions):
        expected = row["expected"]
        if decision.kind == "question" and decision.answerable:
            counts["answered_right" if decision.label == expected else "answered_wrong"] += 1
            continue
        offered = [s.key for s in suggestions_for(settings, store, decision, row["language"])]
        if offered:
            counts["offered"] += 1
            counts["offered_on_none"] += expected == "none"
            counts["picked"] += expected in offered
            counts["offered_not_listed"] += expected != "none" and expected not in offered
    n, in_faq = len(rows), sum(r["expected"] != "none" for r in rows)
    right_after = counts["answered_right"] + counts["picked"]
    return {
        "counts": counts,
        "containment_before": share(counts["answered_right"], n),
        "containment_after": share(right_after, n),
        "containment_before_in_faq": share(counts["answered_right"], in_faq),
        "containment_after_in_faq": share(right_after, in_faq),
        "wrong_before": share(counts["answered_wrong"], n),
        "wrong_after": share(counts["answered_wrong"], n),  # the simulated customer never picks a wrong entry
        "suggestions_shown": share(counts["offered"], n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--retrain", action="store_true", help="run training.pipeline.retrain first")
    parser.add_argument("--tag", default="", help="saved as bench/results/containment-TAG.json")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the shop here (default: temp)")
    parser.add_argument("--base", default=None, help="base model folder (default: the bundled e5-small)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = read_questions(args.questions)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        settings, overrides = shipped_settings(workdir, base_folder(args.base))
        print("overrides of config.toml:", overrides, flush=True)
        with Store(settings.paths.database) as store:
            load_demo(store, DEMO)
        trained = retrain(settings, "cli")["status"] if args.retrain else None
        started = time.perf_counter()
        with Store(settings.paths.database) as store:
            runtime = load_runtime(settings, store)
            decisions = runtime.decide_batch([r["text"] for r in rows])
            shipped = outcomes(settings, store, rows, decisions)
            by_language = {}
            for language in sorted({r["language"] for r in rows}):
                subset = [(r, d) for r, d in zip(rows, decisions) if r["language"] == language]
                by_language[language] = outcomes(settings, store, [r for r, _ in subset], [d for _, d in subset])
            sweep = {}
            for value in SWEEP:
                swept = dataclasses.replace(settings, thresholds=dataclasses.replace(
                    settings.thresholds, suggest_confidence=value))
                result = outcomes(swept, store, rows, decisions)
                sweep[str(value)] = {"containment_after": result["containment_after"]["rate"],
                                     "suggestions_shown": result["suggestions_shown"]["rate"],
                                     "shown_on_none": result["counts"]["offered_on_none"]}
        seconds = time.perf_counter() - started
    result = {
        "questions": str(args.questions.relative_to(REPO) if args.questions.is_relative_to(REPO) else args.questions),
        "n": len(rows), "n_in_faq": sum(r["expected"] != "none" for r in rows), "by_language": by_language,
        "served": runtime.serving.version, "retrain": trained, "overrides": overrides,
        "thresholds": {"answer_confidence": settings.thresholds.answer_confidence,
                       "suggest_confidence": settings.thresholds.suggest_confidence,
                       "suggestions": settings.thresholds.suggestions},
        "shipped": shipped, "suggest_confidence_sweep": sweep,
        "decide_seconds": round(seconds, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    for name in ("containment_before", "containment_after", "wrong_before", "wrong_after", "suggestions_shown"):
        print(f"{name}: {shipped[name]}", flush=True)
    print("sweep:", sweep, flush=True)
    save("containment" + (f"-{args.tag}" if args.tag else ""), result)


if __name__ == "__main__":
    main()
