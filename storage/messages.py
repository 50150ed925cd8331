"""Customer messages, stored exactly as received."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from storage.clock import to_timestamp, utc_now
from storage.db import fetch_row, write_transaction
from storage.records import CONTENT_TYPES, Message, NotFoundError, check_choice

# Joined onto `decisions`: the decision's message if its text may be learnt from (kept, its customer not
# opted out), as `learnable_text` decides for one message; the queries over many decisions use it.
LEARNABLE_MESSAGES = ("join messages on messages.id = decisions.message_id"
                      " join customers on customers.telegram_id = messages.customer_id and customers.opted_out = 0"
                      " and trim(coalesce(messages.text, '')) != ''")
_ADD = ("insert into messages (customer_id, chat_id, telegram_message_id, text, content_type, created_at)"
        " values (?, ?, ?, ?, ?, ?) returning *")


class MessageRepository:
    """Read and write customer messages."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("messages")

    def add(self, customer_id: int, chat_id: int, telegram_message_id: int, text: str | None,
            content_type: str = "text") -> Message:
        """Store a message (the customer must exist: `customers.touch` first)."""
        check_choice("content_type", content_type, CONTENT_TYPES)
        with write_transaction(self.db):
            row = fetch_row(self.db, _ADD, [customer_id, chat_id, telegram_message_id, text, content_type, utc_now()])
        assert row is not None  # an insert returns its row
        return Message.from_row(row)

    def get(self, message_id: int) -> Message:
        """The message; NotFoundError if missing (or deleted)."""
        row = fetch_row(self.db, "select * from messages where id = ?", [message_id])
        if row is None:
            raise NotFoundError(f"no message with id {message_id}")
        return Message.from_row(row)

    def learnable_text(self, message_id: int | None) -> str | None:
        """The message's text if staff feedback on it may be learnt: kept, not blank, its customer not opted out."""
        row = self.db.execute("select messages.text from messages join customers"
                              " on customers.telegram_id = messages.customer_id"
                              " where messages.id = ? and customers.opted_out = 0", [message_id]).fetchone()
        return row[0] if row and row[0] and row[0].strip() else None

    def delete_older_than(self, days: int, now: datetime | None = None) -> int:
        """Delete messages created more than `days` days before `now`; decisions stay, unlinked. Return the count."""
        cutoff = to_timestamp((now or datetime.now(UTC)) - timedelta(days=days))
        with write_transaction(self.db):
            count = self.table.count_where("created_at < ?", [cutoff])
            self.table.delete_where("created_at < ?", [cutoff])
        return count
