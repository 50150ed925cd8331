"""Training run history, and which process owns a run still marked running."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.db import NotFoundError as RowNotFound

from storage.clock import utc_now
from storage.db import inserted_id
from storage.records import NotFoundError, TrainingRun, check_choice
from vocabulary import COMPLETED_RUNS, SUCCESSFUL_RUNS, RunStatus, RunTrigger


def process_started(pid: int) -> str | None:
    """When process `pid` started, as "<boot id>:<clock ticks after boot>"; None if it is gone (or a zombie).

    Read from Linux's /proc: with the pid it tells a process apart from a later one given the same pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name in parentheses may hold spaces
    return None if fields[0] in ("Z", "X") else f"{boot}:{fields[19]}"


def owner_alive(pid: int | None, started: str | None) -> bool:
    """Whether the process recorded as (pid, start time) is still running."""
    if pid is None:
        return False
    if Path("/proc/self/stat").is_file():
        return started is not None and process_started(pid) == started
    try:  # no /proc (not Linux): only whether some process has this pid
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _this_process() -> dict[str, Any]:
    return {"owner_pid": os.getpid(), "owner_started": process_started(os.getpid())}


class RunRepository:
    """Record training runs from start to finish."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("training_runs")

    def start(self, trigger: str) -> int:
        """Record a run as running now, owned by this process; return its id."""
        check_choice("trigger", trigger, RunTrigger)
        table = self.db.table("training_runs")
        table.insert({"trigger": trigger, "status": "running", "snapshot_id": None, "started_at": utc_now(),
                      "finished_at": None, "result": None, "error": None, **_this_process()})
        return inserted_id(table)

    def claim(self, run_id: int) -> None:
        """Make this process the run's owner (the training child, for a run its parent started)."""
        self.get(run_id)
        self.table.update(run_id, _this_process())

    def get(self, run_id: int) -> TrainingRun:
        """The run; NotFoundError if missing."""
        try:
            return TrainingRun.from_row(self.table.get(run_id))
        except RowNotFound:
            raise NotFoundError(f"no training run with id {run_id}") from None

    def finish(self, run_id: int, status: str, snapshot_id: str | None = None,
               result: Mapping[str, Any] | None = None, error: str | None = None) -> TrainingRun:
        """Record how a run ended."""
        check_choice("status", status, RunStatus)
        self.get(run_id)
        self.table.update(run_id, {
            "status": status, "snapshot_id": snapshot_id, "finished_at": utc_now(),
            "result": None if result is None else json.dumps(dict(result), ensure_ascii=False), "error": error,
        })
        return self.get(run_id)

    def last(self, status: str | None = None) -> TrainingRun | None:
        """The most recently started run, optionally with a given status."""
        if status is None:
            rows = list(self.table.rows_where(order_by="id desc", limit=1))
        else:
            check_choice("status", status, RunStatus)
            rows = list(self.table.rows_where("status = ?", [status], order_by="id desc", limit=1))
        return TrainingRun.from_row(rows[0]) if rows else None

    def last_trained(self) -> TrainingRun | None:
        """The latest run that trained and gated candidates (promoted or refused): what "since the last retrain" means."""
        return self._last_of(COMPLETED_RUNS)

    def last_successful(self) -> TrainingRun | None:
        """The latest run that did its job: trained and gated, or skipped for too few new examples (the weekly slot is done)."""
        return self._last_of(SUCCESSFUL_RUNS)

    def _last_of(self, statuses: tuple[str, ...]) -> TrainingRun | None:
        marks = ", ".join("?" * len(statuses))
        rows = list(self.table.rows_where(f"status in ({marks})", list(statuses), order_by="id desc", limit=1))
        return TrainingRun.from_row(rows[0]) if rows else None

    def all(self) -> list[TrainingRun]:
        """Every run, oldest first."""
        return [TrainingRun.from_row(row) for row in self.table.rows_where(order_by="id")]

    def close_interrupted(self, reason: str = "the process training this run stopped before it finished") -> int:
        """Runs still marked running whose owner process is gone are recorded as failed; returns how many.

        A run owned by a live process (`shopbot train` beside the bot, or a training child that
        outlived its bot) is left alone.
        """
        stale = [row for row in self.table.rows_where("status = ?", ["running"])
                 if not owner_alive(row["owner_pid"], row["owner_started"])]
        for row in stale:
            self.finish(row["id"], "failed", None, {"status": "failed", "reasons": [reason]}, reason)
        return len(stale)
