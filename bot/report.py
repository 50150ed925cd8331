"""The owners' report and status texts, built from storage only (plain text).

`build_report_text` is the one function /report calls: the continuous-learning work can replace
it (e.g. with a chart) without touching the handlers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from bot.texts import owner_text
from settings import WEEKDAYS, ScheduleSettings, Settings
from storage.clock import to_timestamp
from storage.store import Store

TASKS = ("sentiment", "faq")
_METRIC_ORDER = ("accuracy", "macro_f1", "top3_accuracy", "topk_accuracy", "router_accuracy")
_MAX_DECISIONS = 20_000


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def format_metrics(metrics: Mapping[str, Any], limit: int = 3) -> str:
    """" (accuracy 91%, macro_f1 88%)" from an adapter's metrics (top-level numbers only)."""
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    keys = [k for k in _METRIC_ORDER if k in numbers] + sorted(k for k in numbers if k not in _METRIC_ORDER)
    shown = [f"{k} {numbers[k]:.0%}" if 0 <= numbers[k] <= 1 else f"{k} {numbers[k]:g}" for k in keys[:limit]]
    return f" ({', '.join(shown)})" if shown else ""


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
                                    metrics=format_metrics(record.metrics)))
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


def last_retrain(store: Store) -> str | None:
    """When the last finished (promoted or refused) retrain started, if any."""
    runs = [run for run in store.runs.all() if run.status in ("promoted", "refused")]
    return runs[-1].started_at if runs else None


def _short_time(stamp: str, zone: ZoneInfo) -> str:
    return datetime.fromisoformat(stamp).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def build_status_text(settings: Settings, store: Store, serving_version: str, retraining: bool,
                      language: str, now: datetime | None = None) -> str:
    """/status: active versions and accuracy, corrections since the last retrain, next scheduled retrain."""
    now = now or datetime.now(timezone.utc)
    zone = ZoneInfo(settings.schedule.timezone)
    lines = [owner_text(settings, language, "status_title"), *model_lines(settings, store, language),
             owner_text(settings, language, "status_serving", version=serving_version)]
    since = last_retrain(store)
    if since is None:
        lines.append(owner_text(settings, language, "status_corrections_never", count=len(store.corrections.all())))
    else:
        kinds = store.corrections.by_kind_since(since)
        count = sum(n for kind, n in kinds.items() if kind != "confirm")
        lines.append(owner_text(settings, language, "status_corrections", when=_short_time(since, zone), count=count))
    upcoming = next_retrain(settings.schedule, now)
    lines.append(owner_text(settings, language, "status_next",
                            when=f"{upcoming:%a %Y-%m-%d %H:%M} ({settings.schedule.timezone})"))
    if retraining:
        lines.append(owner_text(settings, language, "status_training"))
    return "\n".join(lines)


def build_report_text(settings: Settings, store: Store, language: str | None = None,
                      now: datetime | None = None, days: int = 7) -> str:
    """The weekly report (last `days` days) as plain text: traffic, staff feedback, models."""
    language = language or settings.default_language
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(days=days)
    since_text = to_timestamp(since)
    zone = ZoneInfo(settings.schedule.timezone)
    decisions = [d for d in store.decisions.recent(limit=_MAX_DECISIONS) if d.created_at >= since_text]
    questions = [d for d in decisions if d.task == "question"]
    answered = sum(1 for d in questions if d.action == "answered")
    handoff = sum(1 for d in questions if d.action == "handoff")
    reviews = Counter(d.label for d in decisions if d.task == "review")
    kinds = store.corrections.by_kind_since(since)
    corrected = kinds["label"] + kinds["faq"] + kinds["answer"]
    checked = kinds["confirm"] + corrected
    text = lambda key, **values: owner_text(settings, language, key, **values)  # noqa: E731
    lines = [
        text("report_title", start=f"{since.astimezone(zone):%Y-%m-%d}", end=f"{now.astimezone(zone):%Y-%m-%d}"),
        text("report_questions", total=len(questions), answered=answered, handoff=handoff,
             rate=_pct(answered / len(questions) if questions else None)),
        text("report_reviews", total=sum(reviews.values()), positive=reviews["positive"],
             neutral=reviews["neutral"], negative=reviews["negative"]),
        text("report_feedback", confirm=kinds["confirm"], corrected=corrected, label=kinds["label"],
             faq=kinds["faq"], answer=kinds["answer"]),
        text("report_precision", rate=_pct(kinds["confirm"] / checked if checked else None)),
        text("report_examples", count=store.examples.count_since(since)),
        text("report_models"),
        *model_lines(settings, store, language),
    ]
    return "\n".join(lines)
