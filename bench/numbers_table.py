"""Print the README's numbers and ablation tables (Markdown) from the JSON the benchmarks saved in bench/results/.

    python bench/numbers_table.py

Nothing is typed in by hand: a row whose result file is missing says so.
"""

from __future__ import annotations

import json

from common import RESULTS

from shop.formatting import percent

TARGETS = {"zh-reviews-sentiment": "≥ 90% (goal 93%)", "en-product-reviews-sentiment": "≥ 78% (goal 80%)",
           "en-intents-clinc150": "≥ 90%", "zh-intents-phonebot": "≥ 75%"}


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _ci(interval) -> str:
    return f"[{percent(interval[0], 1)}, {percent(interval[1], 1)}]" if interval and None not in interval else ""


def accuracy_rows() -> list[str]:
    rows = ["| benchmark (product configuration) | n train / test | result, 95% interval | train s | target |",
            "|---|---|---|---|---|"]
    for name, label in (("accuracy-zh-reviews-sentiment-sentiment", "zh-reviews-sentiment"),
                        ("accuracy-en-product-reviews-sentiment-sentiment", "en-product-reviews-sentiment, 3-class"),
                        ("accuracy-en-intents-clinc150-faq-5shot", "en-intents-clinc150, 5 shots"),
                        ("accuracy-zh-intents-phonebot-faq", "zh-intents-phonebot")):
        r = _load(name)
        if r is None:
            rows.append(f"| {label} | – | not run | – | |")
            continue
        extra = f", top-3 {percent(r['top3'], 1)}" if r.get("top3") is not None else f", macro-F1 {r['macro_f1']:.3f}"
        over = f" (overrides: {r['overrides']})" if r.get("overrides") else ""
        rows.append(f"| {label}{over} | {r['n_train']} / {r['n_test']} | **{percent(r['accuracy'], 1)}** {_ci(r.get('interval'))}"
                    f"{extra} | {r['train_seconds']} | {TARGETS.get(r['dataset'], '')} |")
    return rows


def product_rows() -> list[str]:
    rows = []
    demo = _load("demo_first_train")
    if demo:
        for task, t in demo["tasks"].items():
            how = "5-fold CV over all labelled data" if t["method"] == "cv" else "held-out test split"
            rows.append(f"| demo shop, first `shopbot train`: {task} | {t['n']} ({how}) | **{percent(t['accuracy'], 1)}** "
                        f"{_ci(t['interval'])} → {'promoted' if t['promoted'] else 'refused'} | {t['seconds']} | "
                        f"{'≥ 90%' if task == 'sentiment' else '≥ 85%'} |")
    routing = _load("routing")
    if routing:
        for which, label in (("served", "as served"), ("faq_candidate", "the FAQ candidate's learned router")):
            o = routing[which]["overall"]
            rows.append(f"| routing {label}: new customer messages (`bench/data/routing_messages.tsv`) | "
                        f"{o['questions']} questions / {o['reviews']} reviews | questions taken for reviews "
                        f"**{percent(o['questions_as_reviews'], 1)}** ({o['questions_as_reviews_n']}), reviews taken for "
                        f"questions {percent(o['reviews_as_questions'], 1)} ({o['reviews_as_questions_n']}) | – | ≤ 2% |")
    for speed in filter(None, (_load("train_speed"), _load("train_speed-cold"))):
        tasks = speed["runs"][0]["tasks"]
        estimates = ", ".join(f"{task} {o['method']} n={o['n']}" for task, o in tasks.items() if "method" in o)
        per_task = ", ".join(f"{task} {o['train_seconds']} s" for task, o in tasks.items())
        load = f"; load {speed['loadavg_1_5_15'][0]}" if speed.get("loadavg_1_5_15") else ""
        if speed["warm_seconds"] is None:
            rows.append(f"| weekly retrain, {speed['examples']} examples, both tasks | cold cache ({estimates}) | "
                        f"**{speed['cold_seconds']} s** ({per_task}{load}) | – | ≤ 300 s |")
        else:
            rows.append(f"| weekly retrain, {speed['examples']} examples, both tasks | cold / warm cache | "
                        f"**{speed['cold_seconds']} s** / {speed['warm_seconds']} s | – | ≤ 300 s |")
    latency = _load("latency")
    if latency:
        shipped = latency["rows"][0]
        rows.append(f"| `decide()` one message, 1 thread, runtime {shipped['runtime']} | – | "
                    f"p50 **{shipped['single_p50_ms']} ms**, p99 {shipped['single_p99_ms']} ms; batch of 32: "
                    f"{shipped['batch32_messages_per_second']} msg/s | – | p50 ≤ 5 ms, p99 ≤ 20 ms, ≥ 400 msg/s |")
    curves = _load("learning_curve") or []
    for run in curves:
        config = run.get("config", {})
        staff = "also ✅" if config.get("confirm_rate") else "correct mistakes only"
        weeks = " → ".join(percent(a, 1) for a in run["accuracy_by_week"])
        promoted = "".join("✓" if p else "✗" for p in run.get("promoted_by_week", []))
        rows.append(f"| learning curve, {run['dataset']} ({run['task']}), staff {staff}, {config.get('per_week')} "
                    f"msgs/week | fixed test n={config.get('test_n')} | {weeks}; promoted {promoted}; forgetting "
                    f"{100 * run['forgetting']:.1f} pt | {run['seconds']} | "
                    f"{'≥ 90%' if run['task'] == 'sentiment' else '≥ 85%'}, forgetting ≤ 1 pt |")
    if not rows:
        return []
    return ["| product benchmark | n | result | s | target |", "|---|---|---|---|---|", *rows]


def ablation_rows(dataset: str) -> list[str]:
    r = _load(f"ablation-{dataset}")
    if r is None:
        return [f"(ablation-{dataset}: not run)"]
    lines = [(f"**{dataset}**: train {r['n_train']} (+{r['n_validation']} validation), test {r['n_test']}, seed 13. "
              "Δ = paired bootstrap 95% interval of the difference to the old shipped row."), "",
             "| row | accuracy [95% interval] | Δ vs old shipped | train s | what |", "|---|---|---|---|---|"]
    for name, row in sorted(r["rows"].items(), key=lambda kv: -kv[1]["accuracy"]):
        delta = row.get("vs_shipped")
        shown = f"[{100 * delta[0]:+.1f}, {100 * delta[1]:+.1f}]" if delta else "–"
        lines.append(f"| {name} | {percent(row['accuracy'], 1)} {_ci(row['interval'])} | {shown} | {row['train_seconds']} | "
                     f"{row['what']} |")
    return lines


def main() -> None:
    print("\n".join(accuracy_rows()), end="\n\n")
    print("\n".join(product_rows()), end="\n\n")
    for dataset in ("zh-reviews-sentiment", "en-product-reviews-sentiment"):
        print("\n".join(ablation_rows(dataset)), end="\n\n")


if __name__ == "__main__":
    main()
