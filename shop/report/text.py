"""The owners' texts from the report's data: /status, the weekly report's summary (with the owner numbers),
learning section, suggested FAQ entries and models.

Plain text in the owner's language (strings from `shop.texts`); not cut to any length: the bot
fits what it sends into Telegram's limits.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from settings import Settings
from shop.formatting import local_time, number, percent, shorten
from shop.report.data import History, RunSummary, WeekCounts, corrected, next_retrain, week_counts
from shop.report.suggested import Suggestion
from shop.texts import estimate_text, learning_text, owner_text
from storage.store import Store
from training.estimate import METHODS
from vocabulary import SENTIMENT_LABELS, TASKS, AdapterStatus, CorrectionKind, RunTrigger

_METRIC_ORDER = ("accuracy", "macro_f1", "top3", "router_accuracy")


def format_estimate(metrics: Mapping[str, Any], language: str) -> str:
    """"91.4% [88.0–93.9%], n=360, 5-fold CV" from an adapter's metrics ("–" without an accuracy)."""
    accuracy = number(metrics.get("accuracy"))
    if accuracy is None:
        return "–"
    low, high, n = number(metrics.get("low")), number(metrics.get("high")), metrics.get("n")
    parts = [percent(accuracy, 1)
             + (f" [{percent(low, 1)}–{percent(high, 1)}]" if low is not None and high is not None else "")]
    if isinstance(n, int):
        parts.append(f"n={n}")
    if metrics.get("method") in METHODS:
        parts.append(estimate_text(language, str(metrics["method"]), folds=metrics.get("folds")))
    return estimate_text(language, "sep").join(parts)


def format_metrics(metrics: Mapping[str, Any], language: str = "en") -> str:
    """" (accuracy 91.4% [88.0–93.9%], n=360, 5-fold CV; macro_f1 90%)" from an adapter's metrics."""
    if number(metrics.get("accuracy")) is None:
        return ""
    shown = [f"accuracy {format_estimate(metrics, language)}"]
    shown += [f"{k} {percent(metrics[k])}" for k in _METRIC_ORDER[1:]
              if number(metrics.get(k)) is not None and 0 <= metrics[k] <= 1][:2]
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
        if latest is not None and latest.status == AdapterStatus.REJECTED and (record is None or latest.id > record.id):
            lines.append(owner_text(settings, language, "status_refused", version=latest.version,
                                    estimate=format_estimate(latest.metrics, language),
                                    reasons="; ".join(latest.reasons)))
    return lines


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
        lines.append(owner_text(settings, language, "status_corrections",
                                when=local_time(datetime.fromisoformat(since), zone), count=count))
    week = week_counts(store, now - timedelta(days=7))
    lines.append(owner_text(settings, language, "status_week", containment=percent(week.containment),
                            handoff=percent(week.handoff_rate),
                            time=duration(settings, language, week.median_answer_seconds)))
    upcoming = next_retrain(settings.schedule, now)
    lines.append(owner_text(settings, language, "status_next",
                            when=f"{upcoming:%a %Y-%m-%d %H:%M} ({settings.schedule.timezone})"))
    if retraining:
        lines.append(owner_text(settings, language, "status_training"))
    return "\n".join(lines)


def duration(settings: Settings, language: str, seconds: float | None) -> str:
    """"12 min", "2.5 h", "3 d" (in the owner's language); "–" for None."""
    if seconds is None:
        return "–"
    if seconds < 3600:
        return owner_text(settings, language, "minutes", n=max(1, round(seconds / 60)))
    value, unit = (seconds / 3600, "hours") if seconds < 48 * 3600 else (seconds / 86400, "days")
    return owner_text(settings, language, unit, n=f"{value:.1f}".removesuffix(".0"))


def numbers_lines(settings: Settings, counts: WeekCounts, language: str) -> list[str]:
    """Containment and handoff rate, the median time to a staff answer (the report's summary)."""
    text = functools.partial(owner_text, settings, language)
    answered = len(counts.answer_seconds)
    return [text("report_containment", containment=percent(counts.containment), handoff=percent(counts.handoff_rate)),
            text("report_answer_time", time=duration(settings, language, counts.median_answer_seconds), count=answered)
            if answered else text("report_answer_time_none")]


def summary_lines(settings: Settings, counts: WeekCounts, language: str, now: datetime,
                  since: datetime) -> list[str]:
    """The report's first section: traffic and the owner numbers, reviews and what negative ones mention, staff
    feedback and new examples since `since`."""
    zone = ZoneInfo(settings.schedule.timezone)
    kinds, confirmed = counts.kinds, counts.kinds[CorrectionKind.CONFIRM]
    positive, neutral, negative = (counts.reviews.get(label, 0) for label in SENTIMENT_LABELS)
    text = functools.partial(owner_text, settings, language)
    topics = text("list_sep").join(f"{term} ×{count}" for term, count in counts.negative_topics)
    return [
        text("report_title", start=f"{since.astimezone(zone):%Y-%m-%d}", end=f"{now.astimezone(zone):%Y-%m-%d}"),
        text("report_questions", total=counts.questions, answered=counts.answered, handoff=counts.handoff,
             rate=percent(counts.answered / counts.questions if counts.questions else None)),
        *numbers_lines(settings, counts, language),
        # 👍/👎 on the bot's answers: a line here once customers can rate them (the conversation issue).
        text("report_reviews", total=sum(counts.reviews.values()), positive=positive, neutral=neutral,
             negative=negative),
        *([text("report_negative_topics", topics=topics)] if topics else []),
        text("report_feedback", confirm=confirmed, corrected=counts.corrected, label=kinds[CorrectionKind.LABEL],
             faq=kinds[CorrectionKind.FAQ], answer=kinds[CorrectionKind.ANSWER]),
        text("report_precision", rate=percent(confirmed / counts.checked if counts.checked else None)),
        text("report_examples", count=counts.examples),
    ]


def models_lines(settings: Settings, store: Store, language: str) -> list[str]:
    """The report's last section: its header, then one line per task."""
    return [owner_text(settings, language, "report_models"), *model_lines(settings, store, language)]


def build_report_text(settings: Settings, store: Store, language: str | None = None,
                      now: datetime | None = None, days: int = 7) -> str:
    """The weekly report (last `days` days) as plain text: traffic, staff feedback, models."""
    language = language or settings.default_language
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    return "\n".join([*summary_lines(settings, week_counts(store, since), language, now, since),
                      *models_lines(settings, store, language)])


def _trend_lines(settings: Settings, language: str, history: History) -> list[str]:
    """Accuracy of the model in use, week by week (the last six weeks), one line per task."""
    say = functools.partial(learning_text, settings, language)
    lines = ["", say("trend_title")]
    if not history:
        lines.append(say("trend_none"))
    for task in TASKS:
        points = [f"{week[5:]} {percent(run.tasks[task].served)}" for week, run in history if task in run.tasks]
        if points:
            lines.append(say("trend_line", task=owner_text(settings, language, task), points=" → ".join(points[-6:])))
    return lines


def _latest_lines(settings: Settings, language: str, latest: RunSummary, zone: ZoneInfo) -> list[str]:
    """The latest retrain: base vs active vs candidate per task, why a candidate was refused, its mistakes."""
    say = functools.partial(learning_text, settings, language)
    task_name = functools.partial(owner_text, settings, language)
    lines = ["", say("latest_title", when=local_time(latest.started_at, zone))]
    for task, point in latest.tasks.items():
        outcome = say("promoted" if point.promoted else "refused", version=point.version)
        lines.append(say("latest_task", task=task_name(task), base=percent(point.base), active=percent(point.active),
                         candidate=format_estimate(point.estimate, language) if point.estimate
                         else percent(point.candidate), outcome=outcome))
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
        lines += [say("mistake_line", text=shorten(text), true=true, predicted=predicted)
                  for text, true, predicted in mistakes[:4]]
    return lines


def learning_lines(settings: Settings, language: str, history: History, this_week: list[RunSummary],
                   zone: ZoneInfo) -> list[str]:
    """The report's middle section: the accuracy trend, the latest retrain, and this week's retrains."""
    say = functools.partial(learning_text, settings, language)
    lines = _trend_lines(settings, language, history)
    if history:
        lines += _latest_lines(settings, language, history[-1][1], zone)
    lines += ["", say("runs_title")]
    if not this_week:
        lines.append(say("runs_none"))
    for run in this_week[-5:]:
        detail = f" — {shorten('; '.join(run.reasons), 300)}" if run.reasons else ""
        lines.append(say("run_line", when=f"{run.started_at.astimezone(zone):%m-%d %H:%M}",
                         trigger=say(run.trigger) if run.trigger in tuple(RunTrigger) else run.trigger,
                         status=say(f"status_{run.status}"), detail=detail))
    return lines


def suggestion_lines(settings: Settings, language: str, suggestions: list[Suggestion] | None,
                     problem: str | None = None) -> list[str]:
    """The suggested FAQ entries: who asked what, other wordings, staff's answers (None: not computed, because
    of `problem` or for want of the serving model)."""
    text = functools.partial(owner_text, settings, language)
    lines = [text("suggest_title")]
    if suggestions is None:
        return [*lines, text("suggest_failed", problem=problem) if problem else text("suggest_off")]
    if not suggestions:
        return [*lines, text("suggest_none")]
    sep = text("list_sep")
    for n, suggestion in enumerate(suggestions, 1):
        lines.append(text("suggest_line", n=n, count=suggestion.askers, label=shorten(suggestion.label, 40)))
        if others := suggestion.wordings[1:4]:
            lines.append(text("suggest_wordings", wordings=sep.join(f"“{shorten(w, 40)}”" for w in others)))
        if suggestion.answers:
            lines.append(text("suggest_answers", answers=sep.join(f"“{shorten(a, 80)}”" for a in suggestion.answers[:2])))
        else:
            lines.append(text("suggest_unanswered"))
    return [*lines, text("suggest_hint")]
