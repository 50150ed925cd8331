"""Trained adapter versions and which one is active per task."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from storage.clock import utc_now
from storage.db import write_transaction
from storage.records import AdapterRecord, NotFoundError, check_choice
from vocabulary import TASKS, AdapterStatus


class AdapterRepository:
    """Read and write adapter records; at most one adapter per task is active."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("adapters")

    def _one(self, where: str, args: list[Any], order_by: str = "id desc") -> AdapterRecord | None:
        rows = list(self.table.rows_where(where, args, order_by=order_by, limit=1))
        return AdapterRecord.from_row(rows[0]) if rows else None

    def add_candidate(self, version: str, task: str, path: Path | str, metrics: Mapping[str, Any], checksum: str,
                      base_model: str, snapshot_id: str | None = None) -> AdapterRecord:
        """Register a freshly trained adapter as a candidate (`path`: its folder relative to paths.adapters)."""
        check_choice("task", task, TASKS)
        self.table.insert({
            "version": version, "task": task, "path": str(path), "metrics": json.dumps(dict(metrics)),
            "status": "candidate", "checksum": checksum, "snapshot_id": snapshot_id, "base_model": base_model,
            "reasons": "[]", "created_at": utc_now(), "promoted_at": None,
        })
        return self.get(version)

    def get(self, version: str) -> AdapterRecord:
        """The adapter with this version; NotFoundError if unknown."""
        record = self._one("version = ?", [version])
        if record is None:
            raise NotFoundError(f"no adapter with version {version!r}")
        return record

    def set_status(self, version: str, status: str, reasons: Iterable[str] = ()) -> AdapterRecord:
        """Change status; making one active retires the task's current active adapter and stamps promoted_at."""
        check_choice("status", status, AdapterStatus)
        with write_transaction(self.db):
            record = self.get(version)
            updates: dict[str, Any] = {"status": status, "reasons": json.dumps(list(reasons), ensure_ascii=False)}
            if status == "active":
                current = self.active(record.task)
                if current is not None and current.version != version:
                    self.table.update(current.id, {"status": "retired"})
                updates["promoted_at"] = utc_now()
            self.table.update(record.id, updates)
        return self.get(version)

    def active(self, task: str) -> AdapterRecord | None:
        """The task's active adapter, if any."""
        return self._one("task = ? and status = 'active'", [task])

    def history(self, task: str) -> list[AdapterRecord]:
        """All adapters of a task, newest first."""
        return [AdapterRecord.from_row(row) for row in self.table.rows_where("task = ?", [task], order_by="id desc")]

    def previous(self, task: str) -> AdapterRecord | None:
        """The most recently promoted retired adapter promoted before the active one (the rollback target)."""
        active = self.active(task)
        where = "task = ? and status = 'retired' and promoted_at is not null"
        args: list[Any] = [task]
        if active is not None and active.promoted_at is not None:
            where += " and promoted_at < ?"
            args.append(active.promoted_at)
        return self._one(where, args, order_by="promoted_at desc, id desc")
