"""Labelled training examples; each text's split is fixed by `stable_split`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.clock import to_timestamp, utc_now
from storage.db import inserted_id, write_transaction
from storage.records import SPLITS, Example, check_choice
from storage.text import stable_split
from vocabulary import TASKS, ExampleSource


class ExampleRepository:
    """Read and write labelled examples."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("examples")

    def _row(self, task: str, text: str, label: str, language: str, source: str,
             decision_id: int | None) -> dict[str, Any]:
        check_choice("task", task, TASKS)
        check_choice("source", source, ExampleSource)
        if not text.strip() or not label:
            raise ValueError("an example needs a non-empty text and label")
        return {
            "task": task, "text": text, "label": label, "language": language, "source": source,
            "split": stable_split(text), "decision_id": decision_id, "created_at": utc_now(),
        }

    def add(self, task: str, text: str, label: str, language: str, source: str,
            decision_id: int | None = None) -> Example:
        """Add one example; its split is computed from the text."""
        table = self.db.table("examples")
        table.insert(self._row(task, text, label, language, source, decision_id))
        return Example.from_row(table.get(inserted_id(table)))

    def add_many(self, task: str, rows: Iterable[tuple[str, str, str]], source: str) -> int:
        """Add (text, label, language) rows in one transaction; return how many."""
        records = [self._row(task, text, label, language, source, None) for text, label, language in rows]
        with write_transaction(self.db):
            self.table.insert_all(records)
        return len(records)

    def all(self, task: str | None = None, split: str | None = None) -> list[Example]:
        """Examples, optionally of one task and/or split, in insertion order."""
        wheres, args = [], []
        if task is not None:
            check_choice("task", task, TASKS)
            wheres.append("task = ?")
            args.append(task)
        if split is not None:
            check_choice("split", split, SPLITS)
            wheres.append("split = ?")
            args.append(split)
        rows = self.table.rows_where(" and ".join(wheres) or None, args, order_by="id")
        return [Example.from_row(row) for row in rows]

    def texts(self, task: str, source: str) -> set[str]:
        """The exact texts already stored for a task and source (used to seed idempotently)."""
        return {row["text"] for row in self.table.rows_where("task = ? and source = ?", [task, source], select="text")}

    def relabel(self, task: str, text: str, source: str, label: str) -> int:
        """Give every example of `task` and `source` with exactly this text a new label; return how many changed."""
        check_choice("task", task, TASKS)
        check_choice("source", source, ExampleSource)
        if not label:
            raise ValueError("an example needs a non-empty label")
        where, args = "task = ? and source = ? and text = ? and label != ?", [task, source, text, label]
        with write_transaction(self.db):
            changed = self.table.count_where(where, args)
            self.db.execute(f"update examples set label = ? where {where}", [label, *args])
        return changed

    def count_since(self, since: datetime | str, task: str | None = None) -> int:
        """How many examples were added at or after `since`."""
        if task is None:
            return self.table.count_where("created_at >= ?", [to_timestamp(since)])
        return self.table.count_where("created_at >= ? and task = ?", [to_timestamp(since), task])
