"""Weekly reports as sent to the owners."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from storage.clock import to_timestamp, utc_now
from storage.db import inserted_id
from storage.records import Report


class ReportRepository:
    """Store and read weekly reports."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("reports")

    def add(self, period_start: datetime | str, period_end: datetime | str, text: str,
            chart_path: Path | str | None = None, data: Mapping[str, Any] | None = None) -> Report:
        """Store a report."""
        table = self.db.table("reports")
        table.insert({
            "created_at": utc_now(), "period_start": to_timestamp(period_start), "period_end": to_timestamp(period_end),
            "text": text, "chart_path": None if chart_path is None else str(chart_path),
            "data": json.dumps(dict(data or {}), ensure_ascii=False),
        })
        return Report.from_row(table.get(inserted_id(table)))

    def latest(self) -> Report | None:
        """The newest report, if any."""
        rows = list(self.table.rows_where(order_by="id desc", limit=1))
        return Report.from_row(rows[0]) if rows else None

    def all(self) -> list[Report]:
        """Every report, oldest first."""
        return [Report.from_row(row) for row in self.table.rows_where(order_by="id")]
