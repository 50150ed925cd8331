"""The shop's curated FAQ entries, one row per (key, language), and the versioned history of their edits.

A retired entry (`retired_at` set) is left out of everything that answers customers (`get`, `all`,
`keys`, `retired_keys` for the index); its rows and its history stay. Every edit made through
`edit`, `create`, `add_phrasing` and `retire` writes its faq_changes row in the same transaction.
"""

from __future__ import annotations

import re

from sqlite_utils import Database

from storage.clock import utc_now
from storage.db import fetch_row, inserted_id, write_transaction
from storage.examples import ExampleRepository
from storage.records import FAQ_FIELDS, FAQ_SOURCES, FaqChange, FaqEntry, NotFoundError, check_choice
from storage.text import normalise_text
from vocabulary import ExampleSource, Task

_STAFF_KEY = re.compile(r"staff-(\d+)")
_LIVE = "retired_at is null"
EDITABLE = ("question", "answer")


class FaqRepository:
    """Read and write FAQ entries and their change history."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("faq_entries")
        self.changes_table = db.table("faq_changes")
        self.examples = ExampleRepository(db)

    def _find(self, key: str, language: str, include_retired: bool = True) -> FaqEntry | None:
        where = "key = ? and language = ?" + ("" if include_retired else f" and {_LIVE}")
        row = fetch_row(self.db, f"select * from faq_entries where {where}", [key, language])  # every answer reads it
        return FaqEntry.from_row(row) if row else None

    def upsert(self, key: str, language: str, question: str, answer: str, topic: str, source: str) -> FaqEntry:
        """Insert or update one entry (seed and import; not versioned); created_at and retired_at are kept."""
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
        """The live entry in `language`, else in any language (alphabetical); NotFoundError if unknown or retired."""
        entry = self._find(key, language, include_retired=False)
        if entry is not None:
            return entry
        rows = list(self.table.rows_where(f"key = ? and {_LIVE}", [key], order_by="language", limit=1))
        if not rows:
            raise NotFoundError(f"no FAQ entry with key {key!r}")
        return FaqEntry.from_row(rows[0])

    def entry(self, key: str) -> list[FaqEntry]:
        """Every language of one key, retired or not, ordered by language ([] for an unknown key)."""
        return [FaqEntry.from_row(row) for row in self.table.rows_where("key = ?", [key], order_by="language")]

    def all(self, include_retired: bool = False) -> list[FaqEntry]:
        """Every live entry (or every entry), ordered by key then language."""
        rows = self.table.rows_where(None if include_retired else _LIVE, order_by="key, language")
        return [FaqEntry.from_row(row) for row in rows]

    def keys(self, include_retired: bool = False) -> list[str]:
        """The distinct live FAQ keys (or all of them), sorted."""
        rows = self.table.rows_where(None if include_retired else _LIVE, select="key")
        return sorted({row["key"] for row in rows})

    def retired_keys(self) -> set[str]:
        """Keys whose entry is retired (their phrasings stay stored but must not be answered with)."""
        return {row["key"] for row in self.table.rows_where("retired_at is not null", select="key")}

    def fingerprint(self) -> tuple[object, ...]:
        """Changes whenever what identifies or answers an entry changes (rows, edits, retirements, phrasings):
        a cheap way for a running bot to notice an import or edit made by another process."""
        entries = self.db.execute("select count(*), max(updated_at), count(retired_at) from faq_entries").fetchone()
        phrasings = self.db.execute("select count(*), max(id) from examples where task = ?", [Task.FAQ]).fetchone()
        return (*entries, *phrasings)

    def phrasings(self, key: str) -> list[str]:
        """The stored phrasings (FAQ examples) of one key, oldest first."""
        rows = self.examples.table.rows_where("task = ? and label = ?", [Task.FAQ, key], order_by="id", select="text")
        return [row["text"] for row in rows]

    def key_using(self, text: str) -> str | None:
        """The live entry whose question or a phrasing is `text` (compared normalised), else None."""
        wanted = normalise_text(text)
        live = set(self.keys())
        for entry in self.all():
            if normalise_text(entry.question) == wanted:
                return entry.key
        for row in self.examples.table.rows_where("task = ?", [Task.FAQ], order_by="id", select="text, label"):
            if row["label"] in live and normalise_text(row["text"]) == wanted:
                return str(row["label"])
        return None

    # ------------------------------------------------------------------ versioned edits
    def _log(self, key: str, language: str | None, field: str, old: str | None, new: str | None,
             changed_by: int | None) -> FaqChange:
        check_choice("field", field, FAQ_FIELDS)
        self.changes_table.insert({"key": key, "language": language, "field": field, "old": old, "new": new,
                                   "changed_by": changed_by, "changed_at": utc_now()})
        return FaqChange.from_row(self.changes_table.get(inserted_id(self.changes_table)))

    def edit(self, key: str, language: str, field: str, new: str, changed_by: int | None) -> FaqChange | None:
        """Change a live entry's question or answer in one language; None when it already says that."""
        check_choice("field", field, EDITABLE)
        with write_transaction(self.db):
            entry = self._find(key, language, include_retired=False)
            if entry is None:
                raise NotFoundError(f"no live FAQ entry {key!r} in {language!r}")
            old = getattr(entry, field)
            if old == new:
                return None
            self.table.update((key, language), {field: new, "updated_at": utc_now()})
            return self._log(key, language, field, old, new, changed_by)

    def create(self, key: str, language: str, question: str, answer: str, changed_by: int | None,
               topic: str | None = None, source: str = "owner") -> FaqEntry:
        """A new entry, or a new language of a live one (its topic and source); ValueError if that row exists.

        A key that was retired is not reused (its history would mix with the new entry's).
        """
        check_choice("source", source, FAQ_SOURCES)
        with write_transaction(self.db):
            rows = self.entry(key)
            if any(row.retired_at is not None for row in rows):
                raise ValueError(f"FAQ key {key!r} belongs to a retired entry")
            if any(row.language == language for row in rows):
                raise ValueError(f"FAQ entry {key!r} already has {language!r}")
            first = rows[0] if rows else None
            now = utc_now()
            self.table.insert({"key": key, "language": language, "question": question, "answer": answer,
                               "topic": first.topic if first else (topic or key), "source": first.source if first else source,
                               "created_at": now, "updated_at": now})
            self._log(key, language, "question", None, question, changed_by)
            self._log(key, language, "answer", None, answer, changed_by)
            entry = self._find(key, language)
        assert entry is not None
        return entry

    def add_phrasing(self, key: str, text: str, language: str, changed_by: int | None) -> FaqChange:
        """Another way customers ask a live entry: stored as an FAQ example of `key` (source seed: curated by
        the shop, kept like the demo's phrasings), logged."""
        with write_transaction(self.db):
            if key not in self.keys():
                raise NotFoundError(f"no live FAQ entry with key {key!r}")
            self.examples.add(Task.FAQ, text, key, language, ExampleSource.SEED)
            return self._log(key, language, "phrasing", None, text, changed_by)

    def retire(self, key: str, changed_by: int | None) -> FaqChange:
        """Stop answering with an entry, in every language, from now on; its rows and history stay."""
        with write_transaction(self.db):
            if key not in self.keys():
                raise NotFoundError(f"no live FAQ entry with key {key!r}")
            now = utc_now()
            self.db.execute("update faq_entries set retired_at = ?, updated_at = ? where key = ?", [now, now, key])
            return self._log(key, None, "retired", None, now, changed_by)

    def changes(self, key: str | None = None, limit: int | None = None) -> list[FaqChange]:
        """The change history, newest first, of one key or of every entry."""
        rows = self.changes_table.rows_where(None if key is None else "key = ?", [] if key is None else [key],
                                             order_by="id desc", limit=limit)
        return [FaqChange.from_row(row) for row in rows]

    def add_entry_from_staff(self, question: str, answer: str, language: str, changed_by: int | None = None) -> str:
        """Store a staff-written answer as a new entry with a fresh key like "staff-0001" (logged); return the key."""
        with write_transaction(self.db):
            numbers = [int(m.group(1)) for k in self.keys(include_retired=True) if (m := _STAFF_KEY.fullmatch(k))]
            key = f"staff-{max(numbers, default=0) + 1:04d}"
            self.create(key, language, question, answer, changed_by, topic="staff", source="staff")
        return key
