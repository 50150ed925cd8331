"""What the owners' report is made of, read from storage: the week's counts and owner numbers (containment,
handoff rate, time to a staff answer, negative reviews' topics), the containment trend, training runs as the
report sees them, the weekly accuracy history and the data saved with a report. No strings for people here
(see `text`)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from settings import WEEKDAYS, ScheduleSettings
from shop.formatting import number
from shop.report.topics import negative_topics
from storage.corrections import CORRECTING_KINDS
from storage.records import TrainingRun
from storage.store import Store
from vocabulary import COMPLETED_RUNS, TASKS, Action, CorrectionKind, DecisionStatus, MessageKind, RunStatus

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


# A question is contained when the bot answered it and staff did not correct it (unchecked, or confirmed).
UNCORRECTED = (DecisionStatus.PENDING, DecisionStatus.CONFIRMED)


def asked_the_bot(action: str) -> bool:
    """Whether a question counts in containment and the handoff rate: not when it was asked while staff talk with
    the customer (action taken_over; the handoff that started their conversation counted once)."""
    return action != Action.TAKEN_OVER


def corrected(kinds: Mapping[str, int]) -> int:
    """How many of these staff checks (counts per correction kind) corrected the bot; confirmations did not."""
    return sum(kinds[kind] for kind in CORRECTING_KINDS)


@dataclass(frozen=True)
class WeekCounts:
    """Traffic, staff feedback and new examples since a moment, counted in SQL."""

    questions: int
    answered: int
    handoff: int
    reviews: Mapping[str | None, int]  # reviews per sentiment (staff's label where they gave one, else the bot's)
    kinds: Mapping[str, int]  # staff checks per correction kind, every kind present
    examples: int
    contained: int  # questions answered by the bot and not corrected by staff
    answer_seconds: tuple[float, ...]  # decision → staff's first answer (typed or an FAQ entry picked)
    negative_topics: tuple[tuple[str, int], ...]  # (term, negative reviews with it), see report.topics
    # 👍/👎 on the bot's answers belongs here once customers can rate them (the conversation issue).

    @property
    def containment(self) -> float | None:
        """Share of questions answered right without staff (None without questions)."""
        return self.contained / self.questions if self.questions else None

    @property
    def handoff_rate(self) -> float | None:
        """Share of questions handed to staff (None without questions)."""
        return self.handoff / self.questions if self.questions else None

    @property
    def median_answer_seconds(self) -> float | None:
        """The median time to a staff answer, in seconds (None without one)."""
        return statistics.median(self.answer_seconds) if self.answer_seconds else None

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
    contained = 0
    for (task, action, status), count in store.decisions.stats_since(since).items():
        if task == MessageKind.QUESTION and asked_the_bot(action):
            actions[action] += count
            contained += count if action == Action.ANSWERED and status in UNCORRECTED else 0
    reviewed = store.decisions.review_texts_since(since)
    topics = negative_topics([text for text, label in reviewed if label == "negative"],
                             [text for text, label in reviewed if label != "negative"])
    return WeekCounts(questions=sum(actions.values()), answered=actions[Action.ANSWERED],
                      handoff=actions[Action.HANDOFF], reviews=store.decisions.sentiments_since(since),
                      kinds=store.corrections.by_kind_since(since), examples=store.examples.count_since(since),
                      contained=contained, answer_seconds=tuple(store.corrections.answer_delays_since(since)),
                      negative_topics=tuple(topics))


@dataclass(frozen=True)
class ContainmentWeek:
    """One week's questions and how many of them the bot answered right without staff."""

    week: str  # its Monday, "YYYY-MM-DD", in the shop's time zone
    questions: int
    contained: int

    @property
    def rate(self) -> float:
        """The week's containment."""
        return self.contained / self.questions


def containment_weeks(store: Store, zone: ZoneInfo, now: datetime, weeks: int = 12) -> list[ContainmentWeek]:
    """Containment per week (local Mondays), oldest first, the last `weeks` weeks that had questions.

    Counted per UTC hour in SQL, then each hour put in its local week (exact for whole-hour offsets).
    """
    monday = (now.astimezone(zone) - timedelta(days=now.astimezone(zone).weekday())).date()
    start = datetime.combine(monday - timedelta(weeks=weeks - 1), datetime.min.time(), zone)
    questions: Counter[str] = Counter()
    contained: Counter[str] = Counter()
    for hour, action, status, count in store.decisions.question_outcomes_by_hour(start):
        if not asked_the_bot(action):
            continue
        local = datetime.fromisoformat(f"{hour}:00+00:00").astimezone(zone)
        week = (local - timedelta(days=local.weekday())).date().isoformat()
        questions[week] += count
        contained[week] += count if action == Action.ANSWERED and status in UNCORRECTED else 0
    return [ContainmentWeek(week, questions[week], contained[week]) for week in sorted(questions)]


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


def report_data(language: str, history: History, this_week: list[RunSummary], counts: WeekCounts,
                containment: Sequence[ContainmentWeek]) -> dict[str, Any]:
    """The numbers behind a weekly report, as saved with it (JSON): weeks, this week's runs, staff checks,
    the owner numbers and the containment trend."""
    return {
        "language": language,
        "weeks": [{"week": week, "run_id": run.id,
                   **{task: {"served": p.served, "candidate": p.candidate, "active": p.active, "base": p.base,
                             "promoted": p.promoted, "version": p.version} for task, p in run.tasks.items()}}
                  for week, run in history],
        "runs_this_week": [{"id": r.id, "trigger": r.trigger, "status": r.status, "reasons": list(r.reasons)}
                           for r in this_week],
        "corrections": counts.kinds,
        "numbers": {"questions": counts.questions, "contained": counts.contained,
                    "containment": counts.containment, "handoff_rate": counts.handoff_rate,
                    "median_answer_seconds": counts.median_answer_seconds, "staff_answers": len(counts.answer_seconds),
                    "negative_topics": [list(topic) for topic in counts.negative_topics]},
        "containment": [{"week": w.week, "questions": w.questions, "contained": w.contained} for w in containment],
    }
