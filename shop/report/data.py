"""What the owners' report is made of, read from storage: the week's counts, training runs as the report sees
them, the weekly accuracy history and the data saved with a report. No strings for people here (see `text`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from settings import WEEKDAYS, ScheduleSettings
from shop.formatting import number
from storage.corrections import CORRECTING_KINDS
from storage.records import TrainingRun
from storage.store import Store
from vocabulary import COMPLETED_RUNS, TASKS, Action, CorrectionKind, MessageKind, RunStatus

ESTIMATE_KEYS = ("accuracy", "n", "low", "high", "method", "folds")  # what describes an accuracy estimate


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


@dataclass(frozen=True)
class WeekCounts:
    """Traffic, staff feedback and new examples since a moment, counted in SQL."""

    questions: int
    answered: int
    handoff: int
    reviews: Mapping[str | None, int]  # review decisions per sentiment label
    kinds: Mapping[str, int]  # staff checks per correction kind, every kind present
    examples: int

    @property
    def corrected(self) -> int:
        """Staff checks that corrected the bot."""
        return corrected(self.kinds)

    @property
    def checked(self) -> int:
        """Staff checks that confirmed or corrected the bot."""
        return self.kinds[CorrectionKind.CONFIRM] + self.corrected


def week_counts(store: Store, since: datetime) -> WeekCounts:
    """The counts the report's first section shows, for everything at or after `since`."""
    actions: Counter[str] = Counter()
    for (task, action, _status), count in store.decisions.stats_since(since).items():
        if task == MessageKind.QUESTION:
            actions[action] += count
    return WeekCounts(questions=sum(actions.values()), answered=actions[Action.ANSWERED],
                      handoff=actions[Action.HANDOFF], reviews=store.decisions.labels_since(since, MessageKind.REVIEW),
                      kinds=store.corrections.by_kind_since(since), examples=store.examples.count_since(since))


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


History = list[tuple[str, RunSummary]]  # (week's Monday "YYYY-MM-DD", that week's last finished retrain)


def _accuracy(metrics: Mapping[str, Any] | None) -> float | None:
    return number(metrics.get("accuracy")) if isinstance(metrics, Mapping) else None


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
        estimate={k: metrics[k] for k in ESTIMATE_KEYS if k in metrics},
        confused=tuple((str(c[0]), str(c[1]), int(c[2])) for c in shown.get("confused") or () if len(c) == 3),
        mistakes=tuple((str(m[0]), str(m[1]), str(m[2])) for m in shown.get("mistakes") or () if len(m) == 3))


def summarise_run(run: TrainingRun) -> RunSummary:
    """The report's view of one stored training run (its result JSON, as the pipeline wrote it)."""
    result = run.result or {}
    tasks = result.get("tasks")
    if not isinstance(tasks, Mapping):
        tasks = {}
    return RunSummary(run.id, run.trigger, run.status, datetime.fromisoformat(run.started_at),
                      tuple(str(r) for r in result.get("reasons") or ()),
                      {task: _task_point(task, tasks[task]) for task in TASKS if isinstance(tasks.get(task), Mapping)})


def weekly_history(runs: Sequence[TrainingRun], zone: ZoneInfo, weeks: int = 12) -> History:
    """(week label, last finished retrain of that week that trained something), oldest first, at most `weeks`."""
    by_week: dict[str, RunSummary] = {}
    for run in runs:
        summary = summarise_run(run)
        if summary.status in COMPLETED_RUNS and summary.tasks:
            local = summary.started_at.astimezone(zone)
            monday = (local - timedelta(days=local.weekday())).date()
            by_week[monday.isoformat()] = summary  # runs come oldest first: the last one of a week wins
    return sorted(by_week.items())[-weeks:]


def finished_between(runs: Sequence[TrainingRun], since: datetime, until: datetime) -> list[RunSummary]:
    """The runs started between `since` and `until` that have ended (any outcome), oldest first."""
    return [summarise_run(run) for run in runs
            if since <= datetime.fromisoformat(run.started_at) <= until and run.status != RunStatus.RUNNING]


def report_data(language: str, history: History, this_week: list[RunSummary],
                kinds: Mapping[str, int]) -> dict[str, Any]:
    """The numbers behind a weekly report, as saved with it (JSON): weeks, this week's runs, staff checks."""
    return {
        "language": language,
        "weeks": [{"week": week, "run_id": run.id,
                   **{task: {"served": p.served, "candidate": p.candidate, "active": p.active, "base": p.base,
                             "promoted": p.promoted, "version": p.version} for task, p in run.tasks.items()}}
                  for week, run in history],
        "runs_this_week": [{"id": r.id, "trigger": r.trigger, "status": r.status, "reasons": list(r.reasons)}
                           for r in this_week],
        "corrections": kinds,
    }
