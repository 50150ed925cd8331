"""Small named JSON values the scheduler keeps between restarts."""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from storage.clock import utc_now


class StateRepository:
    """Get and set JSON values by name."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("scheduler_state")

    def get(self, name: str, default: Any = None) -> Any:
        """The stored value, or `default` if none."""
        rows = list(self.table.rows_where("name = ?", [name], select="value"))
        return json.loads(rows[0]["value"]) if rows else default

    def set(self, name: str, value: Any) -> None:
        """Store a JSON-serialisable value under `name`."""
        self.table.upsert({"name": name, "value": json.dumps(value, ensure_ascii=False), "updated_at": utc_now()},
                          pk="name")
