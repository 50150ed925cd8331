"""Training run history."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlite_utils import Database
from sqlite_utils.db import NotFoundError as RowNotFound

from storage.clock import utc_now
from storage.records import RUN_STATUSES, RUN_TRIGGERS, NotFoundError, TrainingRun, check_choice


class RunRepository:
    """Record training runs from start to finish."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("training_runs")

    def start(self, trigger: str) -> int:
        """Record a run as running now; return its id."""
        check_choice("trigger", trigger, RUN_TRIGGERS)
        table = self.db.table("training_runs")
        table.insert({"trigger": trigger, "status": "running", "snapshot_id": None, "started_at": utc_now(),
                      "finished_at": None, "result": None, "error": None})
        assert table.last_rowid is not None
        return table.last_rowid

    def get(self, run_id: int) -> TrainingRun:
        """The run; NotFoundError if missing."""
        try:
            return TrainingRun.from_row(self.table.get(run_id))
        except RowNotFound:
            raise NotFoundError(f"no training run with id {run_id}") from None

    def finish(self, run_id: int, status: str, snapshot_id: str | None = None,
               result: Mapping[str, Any] | None = None, error: str | None = None) -> TrainingRun:
        """Record how a run ended."""
        check_choice("status", status, RUN_STATUSES)
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
            check_choice("status", status, RUN_STATUSES)
            rows = list(self.table.rows_where("status = ?", [status], order_by="id desc", limit=1))
        return TrainingRun.from_row(rows[0]) if rows else None

    def all(self) -> list[TrainingRun]:
        """Every run, oldest first."""
        return [TrainingRun.from_row(row) for row in self.table.rows_where(order_by="id")]

    def close_interrupted(self, reason: str = "the bot stopped while this run was training") -> int:
        """Runs still marked running (cut off by a stop) are recorded as failed; returns how many."""
        stale = list(self.table.rows_where("status = ?", ["running"]))
        for row in stale:
            self.finish(row["id"], "failed", None, {"status": "failed", "reasons": [reason]}, reason)
        return len(stale)
