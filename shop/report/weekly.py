"""The weekly report as one piece: its text (summary, learning, suggested FAQ entries, models), the chart and the
data behind them.

`build_weekly_report` is what the weekly job, /report and `shopbot report` use; `save_report`
writes it under paths.reports and records it in storage. Its text is not cut to any length:
Telegram's limit is the bot's to apply when it sends it. Suggested FAQ entries need the serving
model's FAQ embedding (`embed`): without one (`shopbot report`) the report says they were not
computed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from settings import Settings
from shop.report.chart import render_chart
from shop.report.data import containment_weeks, finished_between, report_data, week_counts, weekly_history
from shop.report.suggested import Embed, Suggestion, find_suggestions, keep_suggestions, suggestion_tag
from shop.report.text import learning_lines, models_lines, suggestion_lines, summary_lines
from shop.texts import learning_text
from storage.store import Store

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class WeeklyReport:
    """The report: its text, the chart as PNG bytes with its caption, the data behind both, and its suggestions."""

    text: str
    png: bytes
    caption: str
    period_start: datetime
    period_end: datetime
    language: str
    data: dict[str, Any]
    suggestions: tuple[Suggestion, ...] = ()
    suggestion_tag: str | None = None  # names the suggestions for the owner's buttons (see report.suggested)


def build_weekly_report(settings: Settings, store: Store, language: str | None = None,
                        now: datetime | None = None, days: int = 7, embed: Embed | None = None) -> WeeklyReport:
    """The weekly report: `build_report_text` + how the models learnt + suggested FAQ entries, and the chart."""
    language = language or settings.default_language
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    zone = ZoneInfo(settings.schedule.timezone)
    runs = store.runs.all()
    history = weekly_history(runs, zone)
    this_week = finished_between(runs, since, now)
    counts = week_counts(store, since)
    containment = containment_weeks(store, zone, now)
    suggestions, problem = None, None
    try:
        suggestions = None if embed is None else find_suggestions(store, since, embed)
    except Exception as error:  # the report goes out without them
        log.exception("suggesting FAQ entries failed")
        problem = f"{type(error).__name__}: {error}"
    text = "\n".join([*summary_lines(settings, counts, language, now, since),
                      *learning_lines(settings, language, history, this_week, zone), "",
                      *suggestion_lines(settings, language, suggestions, problem), "",
                      *models_lines(settings, store, language)])
    data = report_data(language, history, this_week, counts, containment)
    data["suggestions"] = [{"askers": s.askers, "decision_ids": list(s.decision_ids)} for s in suggestions or ()]
    return WeeklyReport(text, render_chart(history, language, containment), learning_text(settings, language, "caption"),
                        since, now, language, data, tuple(suggestions or ()),
                        None if suggestions is None else suggestion_tag(suggestions))


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


def report_in_thread(settings: Settings, language: str | None = None, save: bool = False,
                     embed: Embed | None = None) -> WeeklyReport:
    """Build (and optionally save) the weekly report with a store of this thread's own: call it in a thread.

    Its suggestions (when computed) are kept in storage for the owner's buttons under the report, replacing
    the previous report's: a press on those is then refused as stale.
    """
    with Store(settings.paths.database) as store:
        report = build_weekly_report(settings, store, language, embed=embed)
        if report.suggestion_tag is not None:
            keep_suggestions(store, report.suggestion_tag, report.suggestions)
        if save:
            save_report(settings, store, report)
        return report
