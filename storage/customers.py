"""Customers, their preferences, and /forget."""

from __future__ import annotations

from sqlite_utils import Database

from storage.clock import utc_now
from storage.db import fetch_row, write_transaction
from storage.records import Customer, NotFoundError

# A customer seen now: created, or last_seen and (when given) language updated; writing to the bot unblocks it.
_TOUCH = ("insert into customers (telegram_id, language, first_seen, last_seen, opted_out, forgotten_at)"
          " values (?, ?, ?, ?, 0, null) on conflict (telegram_id) do update set last_seen = excluded.last_seen,"
          " language = coalesce(nullif(excluded.language, ''), customers.language), blocked_at = null returning *")
_THEIR_DECISIONS = ("decision_id in (select decisions.id from decisions join messages"
                    " on decisions.message_id = messages.id where messages.customer_id = ?)")


class CustomerRepository:
    """Read and write customers; `forget` erases what they wrote."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("customers")

    def touch(self, telegram_id: int, language: str | None = None) -> Customer:
        """Record that a customer was seen now (creating them); a given language replaces the stored one."""
        now = utc_now()
        with write_transaction(self.db):
            row = fetch_row(self.db, _TOUCH, [telegram_id, language, now, now])
        assert row is not None  # an upsert returns its row
        return Customer.from_row(row)

    def get(self, telegram_id: int) -> Customer:
        """The customer; NotFoundError if never seen."""
        row = fetch_row(self.db, "select * from customers where telegram_id = ?", [telegram_id])
        if row is None:
            raise NotFoundError(f"no customer with telegram_id {telegram_id}")
        return Customer.from_row(row)

    def language_of(self, telegram_id: int) -> str | None:
        """The language last used with this user, or None for one never seen (or never given one)."""
        row = fetch_row(self.db, "select language from customers where telegram_id = ?", [telegram_id])
        return row["language"] if row else None

    def set_opt_out(self, telegram_id: int, opted_out: bool) -> int:
        """Set whether the customer opted out of training; opting out deletes the examples learnt from them.

        Returns how many examples were deleted. Their messages are still stored (staff answer from
        them); storage.messages.learnable_text keeps new staff feedback on them out of the examples.
        """
        self.get(telegram_id)
        examples = self.db.table("examples")
        with write_transaction(self.db):
            self.table.update(telegram_id, {"opted_out": int(opted_out)})
            deleted = examples.count_where(_THEIR_DECISIONS, [telegram_id]) if opted_out else 0
            if deleted:
                examples.delete_where(_THEIR_DECISIONS, [telegram_id])
        return deleted

    def set_blocked(self, telegram_id: int, blocked: bool) -> Customer:
        """Mark (now) or unmark the customer as having blocked the bot."""
        self.get(telegram_id)
        self.table.update(telegram_id, {"blocked_at": utc_now() if blocked else None})
        return self.get(telegram_id)

    def set_takeover(self, telegram_id: int, until: str | None, staff_id: int | None = None) -> Customer:
        """Staff `staff_id` talks with the customer until `until` (a stored UTC timestamp); None: the bot answers again."""
        self.get(telegram_id)
        self.table.update(telegram_id, {"takeover_until": until, "taken_over_by": staff_id if until else None})
        return self.get(telegram_id)

    def forget(self, telegram_id: int, keep_anonymised_labels: bool) -> dict[str, int]:
        """Delete a customer's messages in one transaction; labelled examples from them are kept unlinked or deleted."""
        self.get(telegram_id)
        messages = self.db.table("messages")
        examples = self.db.table("examples")
        with write_transaction(self.db):
            counts = {
                "messages": messages.count_where("customer_id = ?", [telegram_id]),
                "decisions_unlinked": self.db.table("decisions").count_where(
                    "message_id in (select id from messages where customer_id = ?)", [telegram_id]),
                "examples_kept": 0,
                "examples_deleted": 0,
            }
            linked = examples.count_where(_THEIR_DECISIONS, [telegram_id])
            if keep_anonymised_labels:
                self.db.execute(f"update examples set decision_id = null where {_THEIR_DECISIONS}", [telegram_id])
                counts["examples_kept"] = linked
            else:
                examples.delete_where(_THEIR_DECISIONS, [telegram_id])
                counts["examples_deleted"] = linked
            # decisions.message_id is ON DELETE SET NULL: decisions stay for statistics, unlinked
            messages.delete_where("customer_id = ?", [telegram_id])
            self.table.update(telegram_id, {"forgotten_at": utc_now()})
        return counts
