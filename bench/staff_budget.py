"""Issue 11's staff-budget comparison: the /review queue's order against arrival order, from learning-curve runs.

    python bench/learning_curve.py --data D/zh-reviews-sentiment --task sentiment --budget 20 --order queue \
        --weeks 6 --out bench/results/staff_budget.json          # and --order arrival, --budget 50 / 100, --task faq
    python bench/staff_budget.py bench/results/staff_budget.json

For each (dataset, task, budget) with both orders run, it prints the candidate's accuracy on the fixed test
subset week by week (promoted or not: with the shipped gate an unpromoted candidate still pre-selects
the review mirror's guess), the taps spent until the served accuracy reached the shipped threshold, and
the taps until the candidate first reached each accuracy level that both orders reach. The taps ratio
queue / arrival at the highest common level is the issue's measure (goal: at most 0.5). Each accuracy has
its 95% Wilson interval from the test subset's n: differences inside it are noise.

Writes bench/results/staff_budget_summary.json.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import common  # noqa: F401  (sys.path)
from common import RESULTS

LEVELS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of an accuracy p measured on n examples."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(centre - half, 3), round(centre + half, 3)


def taps_to(run: dict[str, Any], level: float, key: str = "candidate_accuracy") -> int | None:
    """Presses spent up to the first week whose `key` accuracy reached `level` (None: never)."""
    spent = 0
    for week in run["weeks"]:
        spent += week["taps"]
        if week.get(key) is not None and week[key] >= level:
            return spent
    return None


def compare(queue: dict[str, Any], arrival: dict[str, Any]) -> dict[str, Any]:
    """One budget: both orders' curves, taps to each common level, and the ratio at the highest one."""
    n = queue["config"]["test_n"]
    threshold = queue["config"]["gate_thresholds"][queue["task"]]
    levels = {}
    for level in LEVELS:
        q, a = taps_to(queue, level), taps_to(arrival, level)
        if q is not None or a is not None:
            levels[f"{level:.2f}"] = {"queue": q, "arrival": a}
    common_levels = [lv for lv, taps in levels.items() if taps["queue"] is not None and taps["arrival"] is not None]
    top = common_levels[-1] if common_levels else None
    curves = {}
    for name, run in (("queue", queue), ("arrival", arrival)):
        accs = run["candidate_accuracy_by_week"]
        curves[name] = {"candidate_accuracy_by_week": accs,
                        "final_interval": wilson(accs[-1], n) if accs and accs[-1] is not None else None,
                        "served_accuracy_by_week": run["accuracy_by_week"],
                        "taps_to_threshold": taps_to(run, threshold, "accuracy"),
                        "taps_by_week": run["taps_by_week"], "corrected_by_week": run["corrections_by_week"]}
    ratio = None
    if top is not None and levels[top]["arrival"]:
        ratio = round(levels[top]["queue"] / levels[top]["arrival"], 2)
    return {"dataset": queue["dataset"], "task": queue["task"], "budget": queue["config"]["budget"],
            "weeks": queue["config"]["weeks"], "per_week": queue["config"]["per_week"], "test_n": n,
            "threshold": threshold, **curves, "taps_to_level": levels, "highest_common_level": top,
            "taps_ratio_at_highest_common_level": ratio}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (dataset, task, budget) that has a queue run and an arrival run."""
    by_key: dict[tuple, dict[str, dict]] = {}
    for run in runs:
        config = run.get("config") or {}
        if config.get("budget") is None:
            continue
        by_key.setdefault((run["dataset"], run["task"], config["budget"]), {})[config["order"]] = run
    return [compare(pair["queue"], pair["arrival"]) for _key, pair in sorted(by_key.items())
            if "queue" in pair and "arrival" in pair]


def show(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(f"\n{row['dataset']} {row['task']}: {row['budget']} presses/week, {row['weeks']} weeks of "
              f"{row['per_week']} messages, test n={row['test_n']}, threshold {row['threshold']:.2f}")
        for name in ("queue", "arrival"):
            curve = row[name]
            accs = " ".join("  -  " if a is None else f"{a:.3f}" for a in curve["candidate_accuracy_by_week"])
            print(f"  {name:8s} candidate accuracy by week: {accs}   final 95% {curve['final_interval']}   "
                  f"taps to threshold (served): {curve['taps_to_threshold']}")
        for level, taps in row["taps_to_level"].items():
            print(f"  taps to candidate accuracy >= {level}: queue {taps['queue']}, arrival {taps['arrival']}")
        print(f"  queue / arrival taps at the highest level both reach ({row['highest_common_level']}): "
              f"{row['taps_ratio_at_highest_common_level']}")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="?", default=RESULTS / "staff_budget.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "staff_budget_summary.json")
    args = parser.parse_args(argv)
    rows = summarise(json.loads(args.results.read_text(encoding="utf-8")))
    show(rows)
    args.out.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()
