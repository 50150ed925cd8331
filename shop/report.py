"""The owners' report and status texts, built from storage only.

`build_weekly_report` is what the weekly job, /report and `shopbot report` use: the plain-text
summary (`build_report_text`) plus how the models learnt, from the training runs: accuracy per
week, base vs active vs candidate on the same test split, confusions, misclassified examples and
what was promoted or refused and why, with a trend chart rendered as a PNG (matplotlib, Agg).
"""

from __future__ import annotations

import functools
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.limits import MAX_TEXT, utf16_cut
from settings import WEEKDAYS, ScheduleSettings, Settings
from shop.report_chart import render_chart
from shop.texts import owner_text, shop_name
from storage.corrections import CORRECTING_KINDS
from storage.records import TrainingRun
from storage.store import Store
from vocabulary import TASKS

log = logging.getLogger(__name__)

_METRIC_ORDER = ("accuracy", "macro_f1", "top3", "router_accuracy")


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"


def format_estimate(metrics: Mapping[str, Any], language: str) -> str:
    """"91.4% [88.0–93.9%], n=360, 5-fold CV" from an adapter's metrics ("–" without an accuracy)."""
    accuracy = _number(metrics.get("accuracy"))
    if accuracy is None:
        return "–"
    low, high, n = _number(metrics.get("low")), _number(metrics.get("high")), metrics.get("n")
    words = _ESTIMATE_WORDS.get(language, _ESTIMATE_WORDS["en"])
    parts = [f"{accuracy:.1%}" + (f" [{low:.1%}–{high:.1%}]" if low is not None and high is not None else "")]
    if isinstance(n, int):
        parts.append(f"n={n}")
    if metrics.get("method") == "cv":
        parts.append(words["cv"].format(folds=metrics.get("folds")))
    elif metrics.get("method") == "holdout":
        parts.append(words["holdout"])
    return words["sep"].join(parts)


_ESTIMATE_WORDS = {"zh": {"cv": "{folds} 折交叉验证（全部已标注数据）", "holdout": "留出测试集", "sep": "，"},
                   "en": {"cv": "{folds}-fold CV over all labelled data", "holdout": "held-out test split", "sep": ", "}}


def format_metrics(metrics: Mapping[str, Any], language: str = "en") -> str:
    """" (accuracy 91.4% [88.0–93.9%], n=360, 5-fold CV; macro_f1 90%)" from an adapter's metrics."""
    if _number(metrics.get("accuracy")) is None:
        return ""
    shown = [f"accuracy {format_estimate(metrics, language)}"]
    shown += [f"{k} {metrics[k]:.0%}" for k in _METRIC_ORDER[1:]
              if _number(metrics.get(k)) is not None and 0 <= metrics[k] <= 1][:2]
    return f" ({'; '.join(shown)})"


def model_lines(settings: Settings, store: Store, language: str) -> list[str]:
    """One line per task: the active adapter version and its metrics, or the base model."""
    lines = []
    for task in TASKS:
        name = owner_text(settings, language, task)
        record = store.adapters.active(task)
        if record is None:
            lines.append(owner_text(settings, language, "status_base", task=name))
        else:
            lines.append(owner_text(settings, language, "status_adapter", task=name, version=record.version,
                                    metrics=format_metrics(record.metrics, language)))
        history = store.adapters.history(task)
        latest = history[-1] if history else None
        if latest is not None and latest.status == "rejected" and (record is None or latest.id > record.id):
            lines.append(owner_text(settings, language, "status_refused", version=latest.version,
                                    estimate=format_estimate(latest.metrics, language),
                                    reasons="; ".join(latest.reasons)))
    return lines


def next_retrain(schedule: ScheduleSettings, now: datetime) -> datetime:
    """The next scheduled retrain after `now`, in the schedule's time zone."""
    zone = ZoneInfo(schedule.timezone)
    local = now.astimezone(zone)
    hour, minute = (int(part) for part in schedule.time.split(":"))
    days_ahead = (WEEKDAYS.index(schedule.weekday) - local.weekday()) % 7
    candidate = (local + timedelta(days=days_ahead)).replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=7)
    return candidate


def corrected(kinds: Mapping[str, int]) -> int:
    """How many of these staff checks (counts per correction kind) corrected the bot; confirmations did not."""
    return sum(kinds[kind] for kind in CORRECTING_KINDS)


def _short_time(stamp: str, zone: ZoneInfo) -> str:
    return datetime.fromisoformat(stamp).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def build_status_text(settings: Settings, store: Store, serving_version: str, retraining: bool,
                      language: str, now: datetime | None = None) -> str:
    """/status: active versions and accuracy, corrections since the last retrain, next scheduled retrain."""
    now = now or datetime.now(UTC)
    zone = ZoneInfo(settings.schedule.timezone)
    lines = [owner_text(settings, language, "status_title"), *model_lines(settings, store, language),
             owner_text(settings, language, "status_serving", version=serving_version)]
    last = store.runs.last_trained()
    since = last.started_at if last else None
    count = corrected(store.corrections.by_kind_since(since))
    if since is None:
        lines.append(owner_text(settings, language, "status_corrections_never", count=count))
    else:
        lines.append(owner_text(settings, language, "status_corrections", when=_short_time(since, zone), count=count))
    upcoming = next_retrain(settings.schedule, now)
    lines.append(owner_text(settings, language, "status_next",
                            when=f"{upcoming:%a %Y-%m-%d %H:%M} ({settings.schedule.timezone})"))
    if retraining:
        lines.append(owner_text(settings, language, "status_training"))
    return "\n".join(lines)


def _summary_lines(settings: Settings, store: Store, language: str, now: datetime, since: datetime) -> list[str]:
    """The report's first section: traffic, staff feedback and new examples since `since`, counted in SQL."""
    zone = ZoneInfo(settings.schedule.timezone)
    actions: Counter[str] = Counter()
    for (task, action, _status), count in store.decisions.stats_since(since).items():
        if task == "question":
            actions[action] += count
    questions, answered, handoff = sum(actions.values()), actions["answered"], actions["handoff"]
    reviews = store.decisions.labels_since(since, "review")
    kinds = store.corrections.by_kind_since(since)
    fixed = corrected(kinds)
    checked = kinds["confirm"] + fixed
    text = functools.partial(owner_text, settings, language)
    return [
        text("report_title", start=f"{since.astimezone(zone):%Y-%m-%d}", end=f"{now.astimezone(zone):%Y-%m-%d}"),
        text("report_questions", total=questions, answered=answered, handoff=handoff,
             rate=_pct(answered / questions if questions else None)),
        text("report_reviews", total=sum(reviews.values()), positive=reviews.get("positive", 0),
             neutral=reviews.get("neutral", 0), negative=reviews.get("negative", 0)),
        text("report_feedback", confirm=kinds["confirm"], corrected=fixed, label=kinds["label"],
             faq=kinds["faq"], answer=kinds["answer"]),
        text("report_precision", rate=_pct(kinds["confirm"] / checked if checked else None)),
        text("report_examples", count=store.examples.count_since(since)),
    ]


def _models_lines(settings: Settings, store: Store, language: str) -> list[str]:
    """The report's last section: its header, then one line per task."""
    return [owner_text(settings, language, "report_models"), *model_lines(settings, store, language)]


def build_report_text(settings: Settings, store: Store, language: str | None = None,
                      now: datetime | None = None, days: int = 7) -> str:
    """The weekly report (last `days` days) as plain text: traffic, staff feedback, models."""
    language = language or settings.default_language
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    return "\n".join([*_summary_lines(settings, store, language, now, since), *_models_lines(settings, store, language)])


# ---------------------------------------------------------------------- the weekly learning report
TRIGGERS = ("schedule", "catchup", "manual", "cli")
_FINISHED = ("promoted", "refused", "skipped", "failed")

_TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "trend_title": "每周准确率（每次训练后正在使用的模型）：",
        "trend_line": "• {task}：{points}",
        "trend_none": "• 还没有训练记录",
        "latest_title": "最近一次训练（{when}）：",
        "latest_task": "• {task}：基础 {base} · 原模型 {active} · 新候选 {candidate} → {outcome}",
        "why": "   原因：{reasons}",
        "promoted": "已启用 {version}",
        "refused": "未启用 {version}",
        "confused_title": "最常见的混淆：",
        "confused_line": "• {task}：{pairs}",
        "mistakes_title": "答错的例子：",
        "mistake_line": "• “{text}” 正确：{true}，机器人：{predicted}",
        "runs_title": "本周的训练：",
        "runs_none": "• 本周没有训练",
        "run_line": "• {when}（{trigger}）：{status}{detail}",
        "schedule": "每周定时", "catchup": "补跑", "manual": "店主手动", "cli": "命令行",
        "status_promoted": "已启用新模型", "status_refused": "新模型未通过检查", "status_skipped": "跳过",
        "status_failed": "失败", "status_running": "进行中",
        "caption": "📈 {shop} 每周准确率",
        "weekly_done": "🗓 每周自动训练（{trigger}）：{status}",
        "weekly_serving": "已启用新模型，正在使用：{version}",
        "weekly_swap_failed": "新模型已通过检查，但切换失败（{problem}）；重启后会使用它。",
        "weekly_busy": "另一个训练还在进行，等它结束后再运行每周训练。",
    },
    "en": {
        "trend_title": "Accuracy by week (the model in use after each retrain):",
        "trend_line": "• {task}: {points}",
        "trend_none": "• no retraining yet",
        "latest_title": "Latest retrain ({when}):",
        "latest_task": "• {task}: base {base} · active {active} · candidate {candidate} → {outcome}",
        "why": "   why: {reasons}",
        "promoted": "promoted {version}",
        "refused": "refused {version}",
        "confused_title": "Most frequent confusions:",
        "confused_line": "• {task}: {pairs}",
        "mistakes_title": "Misclassified examples:",
        "mistake_line": "• “{text}” true: {true}, bot: {predicted}",
        "runs_title": "Retrains this week:",
        "runs_none": "• none this week",
        "run_line": "• {when} ({trigger}): {status}{detail}",
        "schedule": "weekly", "catchup": "catch-up", "manual": "owner /retrain", "cli": "command line",
        "status_promoted": "promoted", "status_refused": "refused", "status_skipped": "skipped",
        "status_failed": "failed", "status_running": "running",
        "caption": "📈 {shop}: accuracy by week",
        "weekly_done": "🗓 Weekly retrain ({trigger}): {status}",
        "weekly_serving": "New model promoted; now serving: {version}",
        "weekly_swap_failed": "The new model passed the gate but could not be swapped in ({problem}); "
                              "it will serve after a restart.",
        "weekly_busy": "Another retrain is still running; the weekly retrain waits for it.",
    },
}
def learning_text(settings: Settings, language: str, key: str, **values: object) -> str:
    """A string of the learning report or the weekly-job notices, in `language` (plain text)."""
    table = _TEXTS.get(language, _TEXTS["en"])
    return table[key].format(shop=shop_name(settings, language), **values)


@dataclass(frozen=True)
class TaskPoint:
    """One task in one finished retrain: candidate, active and base accuracy on the same test split."""

    task: str
    version: str | None
    promoted: bool
    candidate: float | None
    active: float | None
    base: float | None
    n: int | None
    reasons: tuple[str, ...]
    estimate: Mapping[str, Any] = field(default_factory=dict)  # the candidate's accuracy, n, interval, method
    confused: tuple[tuple[str, str, int], ...] = ()
    mistakes: tuple[tuple[str, str, str], ...] = ()

    @property
    def served(self) -> float | None:
        """Accuracy of the model in use after the run (the candidate if promoted, else the active one)."""
        return self.candidate if self.promoted else self.active


@dataclass(frozen=True)
class RunSummary:
    """A training run as the report shows it."""

    id: int
    trigger: str
    status: str
    started_at: datetime
    reasons: tuple[str, ...]
    tasks: dict[str, TaskPoint] = field(default_factory=dict)


@dataclass(frozen=True)
class WeeklyReport:
    """The report: text (≤ MAX_TEXT UTF-16 units), the trend chart as PNG bytes, and the data behind both."""

    text: str
    png: bytes
    caption: str
    period_start: datetime
    period_end: datetime
    language: str
    data: dict[str, Any]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _accuracy(metrics: Mapping[str, Any] | None) -> float | None:
    return _number(metrics.get("accuracy")) if isinstance(metrics, Mapping) else None


def _task_point(task: str, outcome: Mapping[str, Any]) -> TaskPoint:
    metrics = outcome.get("metrics") or {}
    promoted = bool(outcome.get("promoted"))
    shown = metrics if promoted or not outcome.get("active_metrics") else outcome["active_metrics"]
    n = metrics.get("n")
    return TaskPoint(
        task=task, version=outcome.get("version"), promoted=promoted,
        candidate=_accuracy(metrics), active=_accuracy(outcome.get("active_metrics")),
        base=_accuracy(outcome.get("base_metrics")), n=n if isinstance(n, int) else None,
        reasons=tuple(str(r) for r in outcome.get("reasons") or ()),
        estimate={k: metrics[k] for k in ("accuracy", "n", "low", "high", "method", "folds") if k in metrics},
        confused=tuple((str(c[0]), str(c[1]), int(c[2])) for c in shown.get("confused") or () if len(c) == 3),
        mistakes=tuple((str(m[0]), str(m[1]), str(m[2])) for m in shown.get("mistakes") or () if len(m) == 3))


def summarise_run(run: TrainingRun) -> RunSummary:
    """The report's view of one stored training run (its result JSON, as the pipeline wrote it)."""
    result = run.result or {}
    tasks = result.get("tasks") if isinstance(result.get("tasks"), Mapping) else {}
    return RunSummary(run.id, run.trigger, run.status, datetime.fromisoformat(run.started_at),
                      tuple(str(r) for r in result.get("reasons") or ()),
                      {task: _task_point(task, tasks[task]) for task in TASKS if isinstance(tasks.get(task), Mapping)})


def weekly_history(runs: Sequence[TrainingRun], zone: ZoneInfo, weeks: int = 12) -> list[tuple[str, RunSummary]]:
    """(week label, last finished retrain of that week that trained something), oldest first, at most `weeks`."""
    by_week: dict[str, RunSummary] = {}
    for run in runs:
        summary = summarise_run(run)
        if summary.status in ("promoted", "refused") and summary.tasks:
            local = summary.started_at.astimezone(zone)
            monday = (local - timedelta(days=local.weekday())).date()
            by_week[monday.isoformat()] = summary  # runs come oldest first: the last one of a week wins
    return sorted(by_week.items())[-weeks:]


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _learning_lines(settings: Settings, language: str, history: list[tuple[str, RunSummary]],
                    this_week: list[RunSummary], zone: ZoneInfo) -> list[str]:
    say = functools.partial(learning_text, settings, language)
    task_name = functools.partial(owner_text, settings, language)
    lines = ["", say("trend_title")]
    if not history:
        lines.append(say("trend_none"))
    for task in TASKS:
        points = [f"{week[5:]} {_pct(run.tasks[task].served)}" for week, run in history if task in run.tasks]
        if points:
            lines.append(say("trend_line", task=task_name(task), points=" → ".join(points[-6:])))
    latest = history[-1][1] if history else None
    if latest is not None:
        lines += ["", say("latest_title", when=f"{latest.started_at.astimezone(zone):%Y-%m-%d %H:%M}")]
        for task, point in latest.tasks.items():
            outcome = say("promoted" if point.promoted else "refused", version=point.version)
            lines.append(say("latest_task", task=task_name(task), base=_pct(point.base), active=_pct(point.active),
                             candidate=format_estimate(point.estimate, language) if point.estimate
                             else _pct(point.candidate), outcome=outcome))
            if not point.promoted and point.reasons:
                lines.append(say("why", reasons="; ".join(point.reasons)))
        confused = [(task, point) for task, point in latest.tasks.items() if point.confused]
        if confused:
            lines.append(say("confused_title"))
            for task, point in confused:
                pairs = ", ".join(f"{true}→{predicted} ×{count}" for true, predicted, count in point.confused[:3])
                lines.append(say("confused_line", task=task_name(task), pairs=pairs))
        mistakes = [m for point in latest.tasks.values() for m in point.mistakes[:2]]
        if mistakes:
            lines.append(say("mistakes_title"))
            lines += [say("mistake_line", text=_short(text), true=true, predicted=predicted)
                      for text, true, predicted in mistakes[:4]]
    lines += ["", say("runs_title")]
    if not this_week:
        lines.append(say("runs_none"))
    for run in this_week[-5:]:
        detail = f" — {_short('; '.join(run.reasons), 300)}" if run.reasons else ""
        lines.append(say("run_line", when=f"{run.started_at.astimezone(zone):%m-%d %H:%M}",
                         trigger=say(run.trigger) if run.trigger in TRIGGERS else run.trigger,
                         status=say(f"status_{run.status}"), detail=detail))
    return lines


def build_weekly_report(settings: Settings, store: Store, language: str | None = None,
                        now: datetime | None = None, days: int = 7) -> WeeklyReport:
    """The weekly report: `build_report_text` + how the models learnt, and the trend chart (PNG)."""
    language = language or settings.default_language
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    zone = ZoneInfo(settings.schedule.timezone)
    runs = store.runs.all()
    history = weekly_history(runs, zone)
    this_week = [summarise_run(run) for run in runs
                 if since <= datetime.fromisoformat(run.started_at) <= now and run.status in _FINISHED]
    text = "\n".join([*_summary_lines(settings, store, language, now, since),
                      *_learning_lines(settings, language, history, this_week, zone), "",
                      *_models_lines(settings, store, language)])
    text = utf16_cut(text, MAX_TEXT)
    data = {
        "language": language,
        "weeks": [{"week": week, "run_id": run.id,
                   **{task: {"served": p.served, "candidate": p.candidate, "active": p.active, "base": p.base,
                             "promoted": p.promoted, "version": p.version} for task, p in run.tasks.items()}}
                  for week, run in history],
        "runs_this_week": [{"id": r.id, "trigger": r.trigger, "status": r.status, "reasons": list(r.reasons)}
                           for r in this_week],
        "corrections": store.corrections.by_kind_since(since),
    }
    return WeeklyReport(text, render_chart(history, language), learning_text(settings, language, "caption"),
                        since, now, language, data)


def save_report(settings: Settings, store: Store, report: WeeklyReport) -> tuple[Path, Path]:
    """Write the report's text and PNG under paths.reports and record it in storage; returns both paths."""
    folder = settings.paths.reports
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"report-{report.period_end.astimezone(UTC):%Y%m%d-%H%M%S}-{report.language}"
    chart, text = folder / f"{stem}.png", folder / f"{stem}.txt"
    chart.write_bytes(report.png)
    text.write_text(report.text + "\n", encoding="utf-8")
    store.reports.add(report.period_start, report.period_end, report.text, chart, report.data)
    return text, chart


def report_in_thread(settings: Settings, language: str | None = None, save: bool = False) -> WeeklyReport:
    """Build (and optionally save) the weekly report with a store of this thread's own: call it in a thread."""
    with Store(settings.paths.database) as store:
        report = build_weekly_report(settings, store, language)
        if save:
            save_report(settings, store, report)
        return report
