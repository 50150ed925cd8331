"""Staff corrections; each one also writes the labelled example it teaches, atomically."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.clock import to_timestamp, utc_now
from storage.db import inserted_id, write_transaction
from storage.decisions import DecisionRepository
from storage.examples import ExampleRepository
from storage.faq import FaqRepository
from storage.messages import MessageRepository
from storage.records import Correction, Decision, NotFoundError, check_choice
from storage.text import detect_language
from vocabulary import (
    CORRECTION_SOURCES,
    SENTIMENT_LABELS,
    CorrectionKind,
    DecisionStatus,
    ExampleSource,
    MessageKind,
    Task,
)


@dataclass(frozen=True)
class Meaning:
    """What one kind of staff feedback means: the decision's new status, and the example it teaches."""

    status: DecisionStatus
    source: ExampleSource
    task: Task | None  # the task of the example; None: the decision's own (a confirmed question teaches FAQ)


# What each kind of feedback means, written once. A label on a question decision says "it's a review":
# its example is a sentiment one (and teaches the router too).
MEANINGS = {
    CorrectionKind.CONFIRM: Meaning(DecisionStatus.CONFIRMED, ExampleSource.CONFIRMATION, None),
    CorrectionKind.LABEL: Meaning(DecisionStatus.CORRECTED, ExampleSource.CORRECTION, Task.SENTIMENT),
    CorrectionKind.FAQ: Meaning(DecisionStatus.CORRECTED, ExampleSource.CORRECTION, Task.FAQ),
    CorrectionKind.ANSWER: Meaning(DecisionStatus.ANSWERED_BY_STAFF, ExampleSource.STAFF_ANSWER, Task.FAQ),
}
CORRECTING_KINDS = tuple(kind for kind, meaning in MEANINGS.items() if meaning.source in CORRECTION_SOURCES)  # all but confirm


class CorrectionRepository:
    """Read and write staff corrections."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("corrections")
        self.decisions = DecisionRepository(db)
        self.examples = ExampleRepository(db)
        self.faq = FaqRepository(db)
        self.messages = MessageRepository(db)

    def _new_label(self, decision: Decision, kind: str, new_label: str | None, answer_text: str | None,
                   text: str | None, staff_id: int) -> str | None:
        """Validate the correction against the decision and return the label it teaches."""
        if kind == "confirm":
            if decision.label is None or new_label not in (None, decision.label):
                raise ValueError(f"decision {decision.id}: confirm needs the decision's own label, got {new_label!r}")
            return decision.label
        if kind == "label":  # a review's sentiment, or a message the bot took for a question is a review

            check_choice("new_label", new_label, SENTIMENT_LABELS)
            return new_label
        if kind == "faq" and decision.kind != "question":  # its alternatives are FAQ entries only on questions
            raise ValueError(f"decision {decision.id}: a {kind!r} correction needs a question decision")
        if kind == "faq":
            if new_label is None:
                raise ValueError("a 'faq' correction needs new_label (an FAQ key)")
            self._check_key(new_label)
            return new_label
        if not answer_text or not answer_text.strip():
            raise ValueError("an 'answer' correction needs answer_text")
        if new_label is not None:
            self._check_key(new_label)
            return new_label
        if text is None:
            return None  # nothing to store as a question (non-text message, deleted, or its customer opted out)
        return self.faq.add_entry_from_staff(text, answer_text, detect_language(text), changed_by=staff_id)

    def _check_key(self, key: str) -> None:
        if key not in self.faq.keys():  # noqa: SIM118 - FaqRepository.keys() is a query, not a dict view
            raise NotFoundError(f"no FAQ entry with key {key!r}")

    def add(self, decision_id: int, staff_id: int, kind: str, old_label: str | None = None,
            new_label: str | None = None, answer_text: str | None = None) -> Correction:
        """Record a correction, write its example (replacing earlier ones for this decision), set the status.

        confirm: example with the bot's label (source=confirmation); label/faq: the corrected label
        (source=correction; a label on a question decision says the message was a review, so its
        example is a sentiment one and teaches the router too); answer (on a question, or on a
        "review" that was really a question): answer_text becomes a new staff FAQ entry unless new_label names an
        existing key (source=staff_answer). No example (and no FAQ entry) is written when the message has no
        text any more or its customer opted out.
        """
        check_choice("kind", kind, CorrectionKind)
        with write_transaction(self.db):
            decision = self.decisions.get(decision_id)
            text = self.messages.learnable_text(decision.message_id)
            label = self._new_label(decision, kind, new_label, answer_text, text, staff_id)
            table = self.db.table("corrections")
            table.insert({
                "decision_id": decision_id, "staff_id": staff_id, "kind": kind,
                "old_label": old_label if old_label is not None else decision.label,
                "new_label": label, "answer_text": answer_text, "created_at": utc_now(),
            })
            correction_id = inserted_id(table)
            self.db.table("examples").delete_where("decision_id = ?", [decision_id])
            meaning = MEANINGS[CorrectionKind(kind)]
            if text is not None and label is not None:
                task = meaning.task or MessageKind(decision.kind).task
                self.examples.add(task, text, label, detect_language(text), meaning.source, decision_id=decision_id)
            self.decisions.set_status(decision_id, meaning.status)
        return Correction.from_row(self.table.get(correction_id))

    def all(self, since: datetime | str | None = None) -> list[Correction]:
        """Corrections in order, optionally only those at or after `since`."""
        if since is None:
            rows = self.table.rows_where(order_by="id")
        else:
            rows = self.table.rows_where("created_at >= ?", [to_timestamp(since)], order_by="id")
        return [Correction.from_row(row) for row in rows]

    def count_since(self, since: datetime | str) -> int:
        """How many corrections were made at or after `since`."""
        return self.table.count_where("created_at >= ?", [to_timestamp(since)])

    def by_kind_since(self, since: datetime | str | None) -> dict[str, int]:
        """Counts per kind at or after `since`, or of all time for None (every kind present, zeros included)."""
        where, args = ("", []) if since is None else (" where created_at >= ?", [to_timestamp(since)])
        rows = self.db.query(f"select kind, count(*) as n from corrections{where} group by kind", args)
        return {**dict.fromkeys(CorrectionKind, 0), **{row["kind"]: row["n"] for row in rows}}

    def latest_answer(self, decision_id: int) -> Correction | None:
        """Staff's latest typed answer to this decision, if any."""
        rows = self.table.rows_where("decision_id = ? and kind = ?", [decision_id, CorrectionKind.ANSWER],
                                     order_by="id desc", limit=1)
        return next((Correction.from_row(row) for row in rows), None)

    def answer_delays_since(self, since: datetime | str) -> list[float]:
        """Seconds from each decision to staff's first answer to it (typed, or an FAQ entry picked), for the
        decisions first answered so at or after `since`, in decision order."""
        rows = self.db.execute(
            "select decisions.created_at, min(corrections.created_at) as answered from corrections"
            " join decisions on decisions.id = corrections.decision_id where corrections.kind in (?, ?)"
            " group by corrections.decision_id having answered >= ? order by corrections.decision_id",
            [CorrectionKind.ANSWER, CorrectionKind.FAQ, to_timestamp(since)]).fetchall()
        return [(datetime.fromisoformat(answered) - datetime.fromisoformat(asked)).total_seconds()
                for asked, answered in rows]
