"""The shop's curated FAQ entries, one row per (key, language)."""

from __future__ import annotations

import re

from sqlite_utils import Database

from storage.clock import utc_now
from storage.db import write_transaction
from storage.records import FAQ_SOURCES, FaqEntry, NotFoundError, check_choice

_STAFF_KEY = re.compile(r"staff-(\d+)")


class FaqRepository:
    """Read and write FAQ entries."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("faq_entries")

    def _find(self, key: str, language: str) -> FaqEntry | None:
        rows = list(self.table.rows_where("key = ? and language = ?", [key, language]))
        return FaqEntry.from_row(rows[0]) if rows else None

    def upsert(self, key: str, language: str, question: str, answer: str, topic: str, source: str) -> FaqEntry:
        """Insert or update one entry; created_at is kept on update."""
        check_choice("source", source, FAQ_SOURCES)
        now = utc_now()
        values = {"question": question, "answer": answer, "topic": topic, "source": source, "updated_at": now}
        with write_transaction(self.db):
            if self._find(key, language) is None:
                self.table.insert({"key": key, "language": language, "created_at": now, **values})
            else:
                self.table.update((key, language), values)
        entry = self._find(key, language)
        assert entry is not None
        return entry

    def get(self, key: str, language: str) -> FaqEntry:
        """The entry in `language`, else in any language (alphabetical); NotFoundError if the key is unknown."""
        entry = self._find(key, language)
        if entry is not None:
            return entry
        rows = list(self.table.rows_where("key = ?", [key], order_by="language", limit=1))
        if not rows:
            raise NotFoundError(f"no FAQ entry with key {key!r}")
        return FaqEntry.from_row(rows[0])

    def all(self) -> list[FaqEntry]:
        """Every entry, ordered by key then language."""
        return [FaqEntry.from_row(row) for row in self.table.rows_where(order_by="key, language")]

    def keys(self) -> list[str]:
        """The distinct FAQ keys, sorted."""
        return sorted({row["key"] for row in self.table.rows_where(select="key")})

    def add_entry_from_staff(self, question: str, answer: str, language: str) -> str:
        """Store a staff-written answer as a new entry with a fresh key like "staff-0001"; return the key."""
        with write_transaction(self.db):
            numbers = [int(m.group(1)) for k in self.keys() if (m := _STAFF_KEY.fullmatch(k))]
            key = f"staff-{max(numbers, default=0) + 1:04d}"
            self.upsert(key, language, question, answer, topic="staff", source="staff")
        return key
