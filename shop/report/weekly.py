"""The weekly report as one piece: its text (summary, learning, models), the trend chart and the data behind them.

`build_weekly_report` is what the weekly job, /report and `shopbot report` use; `save_report`
writes it under paths.reports and records it in storage. Its text is not cut to any length:
Telegram's limit is the bot's to apply when it sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from settings import Settings
from shop.report.chart import render_chart
from shop.report.data import finished_between, report_data, week_counts, weekly_history
from shop.report.text import learning_lines, models_lines, summary_lines
from shop.texts import learning_text
from storage.store import Store


@dataclass(frozen=True)
class WeeklyReport:
    """The report: its text, the trend chart as PNG bytes with its caption, and the data behind both."""

    text: str
    png: bytes
    caption: str
    period_start: datetime
    period_end: datetime
    language: str
    data: dict[str, Any]


def build_weekly_report(settings: Settings, store: Store, language: str | None = None,
                        now: datetime | None = None, days: int = 7) -> WeeklyReport:
    """The weekly report: `build_report_text` + how the models learnt, and the trend chart (PNG)."""
    language = language or settings.default_language
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    zone = ZoneInfo(settings.schedule.timezone)
    runs = store.runs.all()
    history = weekly_history(runs, zone)
    this_week = finished_between(runs, since, now)
    counts = week_counts(store, since)
    text = "\n".join([*summary_lines(settings, counts, language, now, since),
                      *learning_lines(settings, language, history, this_week, zone), "",
                      *models_lines(settings, store, language)])
    return WeeklyReport(text, render_chart(history, language), learning_text(settings, language, "caption"),
                        since, now, language, report_data(language, history, this_week, counts.kinds))


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
