"""What the customer's own buttons do, without Telegram: "did you mean…?" suggestions and 👍 / 👎 under an answer.

Offering: a question the bot may not answer (its best FAQ entry is below `thresholds.answer_confidence`)
is shown its best entries whose confidence is at least `thresholds.suggest_confidence`, at most
`thresholds.suggestions` of them, best first, as buttons with their questions in the customer's
language, plus "none of these, ask staff". With none at or above that confidence it is handed off
as before. A pick button names its entry by its place among the decision's alternatives (the first
`PICKABLE`), so an entry skipped when offering (retired since the index was built, or without the
customer's language) never shifts the others.

A pick answers with that entry and stores the customer's text as an example of it, source
`ExampleSource.CUSTOMER`: a customer's confirmation is weaker than staff's, so it trains the FAQ
adapter at the next retrain like any phrasing (below staff's examples when the same text carries two
labels, see training/snapshot.py) but never enters the correction memory, the FAQ index or the
regression set (those take only `CORRECTION_SOURCES`). "None of these" hands the question off.

👍 / 👎: the first tap is stored with the decision, one change of mind is allowed, then it is final;
👎 puts the decision in front of staff as a probable mistake, 👍 is a weak confirmation (not a staff one).
Only the customer who asked may press; presses on a decision already settled are refused as stale.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.prediction import Prediction
from settings import Settings
from storage.records import Decision, FaqEntry, NotFoundError
from storage.store import Store
from vocabulary import (
    Action,
    CustomerFeedback,
    DecisionStatus,
    ExampleSource,
    MessageKind,
    SuggestionOutcome,
    Task,
)

PICKABLE = 3  # the alternatives a pick button can name (c1:<decision>:p0 .. p2)


@dataclass(frozen=True)
class Suggestion:
    """An FAQ entry offered as "did you mean…?": its key, its question in the customer's language, how sure, and
    its place among the decision's alternatives (what its pick button carries)."""

    key: str
    question: str
    confidence: float
    number: int


class PressRefused(Exception):
    """A customer press that changes nothing: reason is "stale" (settled, gone), "not_yours" or "final"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Rated:
    """A stored 👍 / 👎: the decision as it is now, and whether that was a change of mind (now final)."""

    decision: Decision
    changed: bool


def suggestions_for(settings: Settings, store: Store, prediction: Prediction, language: str) -> list[Suggestion]:
    """The entries to offer for a question the bot may not answer ([] when it answers, or none is plausible)."""
    if prediction.kind != MessageKind.QUESTION or prediction.answerable:
        return []
    thresholds, offered = settings.thresholds, list[Suggestion]()
    for number, (key, confidence) in enumerate(prediction.alternatives[:PICKABLE]):
        if len(offered) >= thresholds.suggestions or confidence < thresholds.suggest_confidence:
            break
        try:
            offered.append(Suggestion(key, store.faq.get(key, language).question, confidence, number))
        except NotFoundError:  # retired since the index was built
            continue
    return offered


class CustomerChoices:
    """The customer's presses on one shop's store: pick_suggestion, refuse_suggestions, rate_answer."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def decision_of(self, decision_id: int, customer_id: int) -> Decision:
        """The decision, if this customer's message made it (PressRefused otherwise)."""
        try:
            decision = self.store.decisions.get(decision_id)
            message = self.store.messages.get(decision.message_id) if decision.message_id is not None else None
        except NotFoundError:
            raise PressRefused("stale") from None
        if message is None:  # deleted (/forget, retention): nothing to answer any more
            raise PressRefused("stale")
        if message.customer_id != customer_id:
            raise PressRefused("not_yours")
        return decision

    def pick_suggestion(self, decision_id: int, number: int, customer_id: int,
                        language: str) -> tuple[Decision, FaqEntry]:
        """The customer picked the `number`-th offered entry: answer with it, and learn their text as its example.

        PressRefused("stale") when the buttons were answered already or that entry is gone."""
        decision = self.decision_of(decision_id, customer_id)
        if decision.suggestion != SuggestionOutcome.OFFERED or number >= len(decision.alternatives):
            raise PressRefused("stale")
        key, confidence = decision.alternatives[number]
        try:
            entry = self.store.faq.get(key, language)
        except NotFoundError:
            raise PressRefused("stale") from None
        with self.store.transaction():
            resolved = self.store.decisions.resolve_suggestion(decision.id, SuggestionOutcome.PICKED,
                                                               Action.ANSWERED, key, confidence)
            if resolved is None:
                raise PressRefused("stale")
            text = self.store.messages.learnable_text(decision.message_id)  # None for an opted-out customer
            if text is not None:
                self.store.examples.add(Task.FAQ, text, key, language, ExampleSource.CUSTOMER, decision_id=decision.id)
        return resolved, entry

    def refuse_suggestions(self, decision_id: int, customer_id: int) -> Decision:
        """"None of these": the question is handed off to staff (PressRefused("stale") if answered already)."""
        decision = self.decision_of(decision_id, customer_id)
        resolved = self.store.decisions.resolve_suggestion(decision.id, SuggestionOutcome.REFUSED, Action.HANDOFF,
                                                           decision.label, decision.confidence)
        if resolved is None:
            raise PressRefused("stale")
        return resolved

    def expire_suggestions(self, decision_id: int) -> Decision | None:
        """Buttons nobody pressed in time: the question is handed off to staff (None if the customer chose meanwhile)."""
        decision = self.store.decisions.get(decision_id)
        return self.store.decisions.resolve_suggestion(decision.id, SuggestionOutcome.UNANSWERED, Action.HANDOFF,
                                                       decision.label, decision.confidence)

    def rate_answer(self, decision_id: int, customer_id: int, feedback: CustomerFeedback) -> Rated | None:
        """Store 👍 / 👎 on an automatic answer; None when it changes nothing (the same tap again).

        PressRefused("stale") when the decision is no automatic answer or staff settled it already,
        PressRefused("final") after the one change of mind."""
        decision = self.decision_of(decision_id, customer_id)
        if decision.action != Action.ANSWERED or decision.status != DecisionStatus.PENDING:
            raise PressRefused("stale")
        if decision.customer_feedback == feedback:
            return None
        if decision.customer_feedback_changes:
            raise PressRefused("final")
        stored = self.store.decisions.set_customer_feedback(decision.id, feedback)
        if stored is None:  # a concurrent press won
            raise PressRefused("final")
        return Rated(stored, changed=decision.customer_feedback is not None)
