"""The bot's decisions about messages, and their review status."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.clock import to_timestamp, utc_now
from storage.db import fetch_row, write_transaction
from storage.messages import LEARNABLE_MESSAGES
from storage.records import Decision, NotFoundError, check_choice
from vocabulary import (
    Action,
    CorrectionKind,
    CustomerFeedback,
    DecisionStatus,
    MessageKind,
    PredictionSource,
    SuggestionOutcome,
)

# A review's sentiment: staff's latest label for it, else the bot's (one parameter: the "label" correction kind).
_SENTIMENT = ("coalesce((select new_label from corrections where corrections.decision_id = decisions.id"
              " and corrections.kind = ? order by corrections.id desc limit 1), decisions.label)")


@dataclass(frozen=True)
class HandledQuestion:
    """A question staff had to handle: handed off and still waiting, or answered by staff's typed answer."""

    decision_id: int
    customer_id: int
    text: str
    answer: str | None  # staff's typed answer (the latest one), if any
    answer_key: str | None  # the FAQ entry that answer became, if any


@dataclass(frozen=True)
class WaitingDecision:
    """A pending decision nobody has seen in the staff chat yet, with what its mirror needs."""

    decision: Decision
    text: str
    customer_id: int
    language: str | None


_ADD = ("insert into decisions (message_id, kind, label, confidence, action, source, adapter_version, alternatives,"
        " staff_chat_id, staff_message_id, status, created_at, suggestion)"
        " values (?, ?, ?, ?, ?, ?, ?, ?, null, null, 'pending', ?, ?) returning *")

# Pending, never shown in the staff chat (no mirror, not yet shown by /review), its text kept and its customer not
# opted out (an opted-out customer's text reaches staff only when staff must act, and that is mirrored at once).
_WAITING = (" from decisions join messages on messages.id = decisions.message_id"
            " join customers on customers.telegram_id = messages.customer_id and customers.opted_out = 0"
            " where decisions.status = ? and decisions.staff_message_id is null and messages.text is not null")


class DecisionRepository:
    """Read and write decisions."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("decisions")

    def add(self, message_id: int | None, kind: str, label: str | None, confidence: float, action: str,
            source: str = "model", adapter_version: str | None = None,
            alternatives: Sequence[tuple[str, float]] = (), suggestion: str | None = None) -> Decision:
        """Record a decision (status starts as pending); `suggestion` is "offered" when did-you-mean buttons were shown."""
        check_choice("kind", kind, MessageKind)
        check_choice("action", action, Action)
        check_choice("source", source, PredictionSource)
        if suggestion is not None:
            check_choice("suggestion", suggestion, SuggestionOutcome)
        alternatives_json = json.dumps([[key, float(score)] for key, score in alternatives], ensure_ascii=False)
        with write_transaction(self.db):
            row = fetch_row(self.db, _ADD, [message_id, str(kind), label, float(confidence), str(action), str(source),
                                            adapter_version, alternatives_json, utc_now(),
                                            None if suggestion is None else str(suggestion)])
        assert row is not None  # an insert returns its row
        return Decision.from_row(row)

    def get(self, decision_id: int) -> Decision:
        """The decision; NotFoundError if missing."""
        row = fetch_row(self.db, "select * from decisions where id = ?", [decision_id])
        if row is None:
            raise NotFoundError(f"no decision with id {decision_id}")
        return Decision.from_row(row)

    def set_staff_message(self, decision_id: int, chat_id: int, message_id: int) -> Decision:
        """Remember where the decision was mirrored in the staff chat."""
        with write_transaction(self.db):
            row = fetch_row(self.db, "update decisions set staff_chat_id = ?, staff_message_id = ? where id = ? returning *",
                            [chat_id, message_id, decision_id])
        if row is None:
            raise NotFoundError(f"no decision with id {decision_id}")
        return Decision.from_row(row)

    def by_staff_message(self, chat_id: int, message_id: int) -> Decision | None:
        """The decision mirrored as this staff-chat message, if any (the newest, should it be mirrored twice)."""
        rows = self.table.rows_where("staff_chat_id = ? and staff_message_id = ?", [chat_id, message_id],
                                     order_by="id desc", limit=1)
        return next((Decision.from_row(row) for row in rows), None)

    def set_status(self, decision_id: int, status: str) -> Decision:
        """Set the review status."""
        check_choice("status", status, DecisionStatus)
        self.get(decision_id)
        self.table.update(decision_id, {"status": status})
        return self.get(decision_id)

    def resolve_suggestion(self, decision_id: int, outcome: str, action: str, label: str | None,
                           confidence: float) -> Decision | None:
        """The customer's answer to did-you-mean buttons: picked (answered with `label`) or refused (handed off).

        Only while the buttons are still open (suggestion "offered"), in one statement, so two presses can't
        both win; None when they were answered already."""
        check_choice("suggestion", outcome, (SuggestionOutcome.PICKED, SuggestionOutcome.REFUSED,
                                             SuggestionOutcome.UNANSWERED))
        check_choice("action", action, Action)
        with write_transaction(self.db):
            cursor = self.db.execute(
                "update decisions set suggestion = ?, action = ?, label = ?, confidence = ? where id = ? and suggestion = ?",
                [outcome, action, label, float(confidence), decision_id, SuggestionOutcome.OFFERED])
        return self.get(decision_id) if cursor.rowcount else None

    def offered_before(self, cutoff: datetime | str) -> list[Decision]:
        """Decisions whose did-you-mean buttons are still unanswered and were shown before `cutoff`, oldest first."""
        rows = self.table.rows_where("suggestion = ? and created_at < ?", [SuggestionOutcome.OFFERED, to_timestamp(cutoff)],
                                     order_by="id")
        return [Decision.from_row(row) for row in rows]

    def set_customer_feedback(self, decision_id: int, feedback: str) -> Decision | None:
        """Store the customer's 👍 / 👎: the first tap, or one change of mind (then it is final).

        None when nothing changed: the same value again, or a change after the one allowed."""
        check_choice("customer_feedback", feedback, CustomerFeedback)
        with write_transaction(self.db):
            cursor = self.db.execute(
                "update decisions set customer_feedback = ?, customer_feedback_at = ?,"
                " customer_feedback_changes = customer_feedback_changes + (customer_feedback is not null)"
                " where id = ? and customer_feedback_changes = 0 and customer_feedback is not ?",
                [feedback, utc_now(), decision_id, feedback])
        return self.get(decision_id) if cursor.rowcount else None

    def staff_mirrors_of(self, customer_id: int) -> list[tuple[int, int]]:
        """(chat id, message id) of the staff-chat mirrors of a customer's messages, oldest first."""
        rows = self.db.execute(
            "select decisions.staff_chat_id, decisions.staff_message_id from decisions"
            " join messages on decisions.message_id = messages.id"
            " where messages.customer_id = ? and decisions.staff_message_id is not null order by decisions.id",
            [customer_id]).fetchall()
        return [(int(chat), int(message)) for chat, message in rows]

    def recent(self, limit: int = 20) -> list[Decision]:
        """The newest decisions first."""
        return [Decision.from_row(row) for row in self.table.rows_where(order_by="id desc", limit=limit)]

    def stats_since(self, since: datetime | str) -> dict[tuple[str, str, str], int]:
        """Counts of decisions made at or after `since`, keyed by (kind, action, status)."""
        rows = self.db.query(
            "select kind, action, status, count(*) as n from decisions where created_at >= ?"
            " group by kind, action, status",
            [to_timestamp(since)],
        )
        return {(row["kind"], row["action"], row["status"]): row["n"] for row in rows}

    def labels_since(self, since: datetime | str, kind: str) -> dict[str | None, int]:
        """Counts of decisions about `kind` messages made at or after `since`, keyed by label."""
        check_choice("kind", kind, MessageKind)
        rows = self.db.query("select label, count(*) as n from decisions where created_at >= ? and kind = ?"
                             " group by label", [to_timestamp(since), kind])
        return {row["label"]: row["n"] for row in rows}

    def staff_questions_since(self, since: datetime | str, limit: int = 1000) -> list[HandledQuestion]:
        """The newest `limit` questions asked at or after `since` that staff had to handle, oldest first.

        Handed off and still pending, or answered by staff's typed answer (status answered_by_staff; not the
        messages of a staff conversation, action taken_over, which have that status too); not those staff resolved
        with an existing FAQ entry or called a review. Only texts that may be learnt from: kept (not deleted)
        and their customer not opted out.
        """
        rows = self.db.execute(
            "select decisions.id, messages.customer_id, messages.text, answer.answer_text, answer.new_label"
            f" from decisions {LEARNABLE_MESSAGES}"
            " left join corrections as answer on answer.id = (select max(id) from corrections"
            "  where corrections.decision_id = decisions.id and corrections.kind = ?)"
            " where decisions.created_at >= ? and ((decisions.kind = ? and decisions.action = ?"
            "  and decisions.status = ?) or (decisions.status = ? and decisions.action != ?))"
            " order by decisions.id desc limit ?",
            [CorrectionKind.ANSWER, to_timestamp(since), MessageKind.QUESTION, Action.HANDOFF,
             DecisionStatus.PENDING, DecisionStatus.ANSWERED_BY_STAFF, Action.TAKEN_OVER, limit]).fetchall()
        return [HandledQuestion(int(row[0]), int(row[1]), row[2], row[3], row[4]) for row in reversed(rows)]

    def question_outcomes_by_hour(self, since: datetime | str) -> list[tuple[str, str, str, int]]:
        """(UTC hour "YYYY-MM-DDTHH", action, status, count) of the question decisions made at or after `since`."""
        rows = self.db.execute(
            "select substr(created_at, 1, 13) as hour, action, status, count(*) from decisions"
            " where kind = ? and created_at >= ? group by hour, action, status order by hour",
            [MessageKind.QUESTION, to_timestamp(since)]).fetchall()
        return [(str(hour), str(action), str(status), int(n)) for hour, action, status, n in rows]

    def sentiments_since(self, since: datetime | str) -> dict[str | None, int]:
        """Counts of the reviews received at or after `since` per sentiment: staff's label where they gave one,
        else the bot's (None: nobody labelled it yet)."""
        rows = self.db.execute(f"select {_SENTIMENT} as sentiment, count(*) from decisions"
                               " where kind = ? and created_at >= ? group by sentiment",
                               [CorrectionKind.LABEL, MessageKind.REVIEW, to_timestamp(since)]).fetchall()
        return {label: int(n) for label, n in rows}

    def review_texts_since(self, since: datetime | str) -> list[tuple[str, str | None]]:
        """(text, sentiment as `sentiments_since` has it) of the reviews received at or after `since` whose text
        may be learnt from."""
        rows = self.db.execute(
            f"select messages.text, {_SENTIMENT} from decisions {LEARNABLE_MESSAGES}"
            " where decisions.kind = ? and decisions.created_at >= ? order by decisions.id",
            [CorrectionKind.LABEL, MessageKind.REVIEW, to_timestamp(since)]).fetchall()
        return [(str(text), label) for text, label in rows]

    def waiting(self, limit: int = 500) -> list[WaitingDecision]:
        """The newest `limit` decisions waiting for a human look (see _WAITING), newest first."""
        rows = self.db.execute(
            "select decisions.*, messages.text as _text, messages.customer_id as _customer,"
            f" customers.language as _language {_WAITING} order by decisions.id desc limit ?",
            [DecisionStatus.PENDING, limit])
        names = [column[0] for column in rows.description]
        out = []
        for values in rows.fetchall():
            row = dict(zip(names, values))
            text, customer, language = row.pop("_text"), row.pop("_customer"), row.pop("_language")
            out.append(WaitingDecision(Decision.from_row(row), str(text), int(customer), language))
        return out

    def count_waiting(self) -> int:
        """How many decisions are waiting for a human look (as `waiting` has them, all of them)."""
        return int(self.db.execute(f"select count(*) {_WAITING}", [DecisionStatus.PENDING]).fetchone()[0])
