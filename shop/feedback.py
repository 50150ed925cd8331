"""What staff feedback does, without Telegram: one use case per kind of feedback.

Each one stores the correction and the example it teaches (what each kind means is written once,
in `storage.corrections.MEANINGS`), makes the bot treat the same message so at once (the
correction memory), asks for the FAQ index to be rebuilt when a question gains a phrasing, and
says what the customer is to be told. The staff handlers send that and edit the mirror; tests
call these directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from settings import Settings
from shop.texts import customer_text, review_reply
from storage.records import Correction, Decision, Message, NotFoundError
from storage.store import Store
from vocabulary import Action, CorrectionKind, MessageKind

Remember = Callable[[str, MessageKind, str], None]  # (customer text, kind, label): the correction memory


@dataclass(frozen=True)
class CustomerReply:
    """A text for the customer, quoting their message."""

    message: Message
    text: str


@dataclass(frozen=True)
class Outcome:
    """What a use case did: the stored correction, and what (if anything) to tell the customer."""

    correction: Correction | None = None
    reply: CustomerReply | None = None
    customer_gone: bool = False  # their message was deleted (/forget, retention): nothing can reach them


class StaffFeedback:
    """Staff feedback on one shop's decisions: confirm, relabel, mark_review, pick_faq, answer, relay."""

    def __init__(self, settings: Settings, store: Store, remember: Remember, refresh_index: Callable[[], None]):
        self.settings = settings
        self.store = store
        self._remember = remember
        self._refresh_index = refresh_index

    def confirm(self, decision: Decision, staff_id: int) -> Outcome:
        """✅ The bot was right: its label becomes a training example; the customer already has the answer."""
        return Outcome(self.store.corrections.add(decision.id, staff_id, CorrectionKind.CONFIRM))

    def relabel(self, decision: Decision, staff_id: int, label: str) -> Outcome:
        """A sentiment label for a review (the bot's own label confirms it); on a question, see `mark_review`."""
        if decision.kind == MessageKind.QUESTION:
            return self.mark_review(decision, staff_id, label)
        if label == decision.label:
            return self.confirm(decision, staff_id)
        correction = self.store.corrections.add(decision.id, staff_id, CorrectionKind.LABEL, new_label=label)
        self._learn(decision, MessageKind.REVIEW, label)
        return Outcome(correction)

    def mark_review(self, decision: Decision, staff_id: int, label: str) -> Outcome:
        """The bot took a review for a question: store it as a review with `label`, and thank the customer for it."""
        correction = self.store.corrections.add(decision.id, staff_id, CorrectionKind.LABEL, new_label=label)
        self._learn(decision, MessageKind.REVIEW, label)
        return self._tell(correction, decision, lambda language: review_reply(self.settings, language, label))

    def pick_faq(self, decision: Decision, staff_id: int, key: str) -> Outcome:
        """The right FAQ entry for a question: learnt as a phrasing of `key`, its answer sent (NotFoundError if gone)."""
        correction = self.store.corrections.add(decision.id, staff_id, CorrectionKind.FAQ, new_label=key)
        self._learn(decision, MessageKind.QUESTION, key)
        self._refresh_index()  # the customer's wording is a new phrasing of `key`
        wrapper = "staff_answer" if decision.action == Action.HANDOFF else "better_answer"
        return self._tell(correction, decision, lambda language: customer_text(
            self.settings, language, wrapper, answer=self.store.faq.get(key, language).answer))

    def answer(self, decision: Decision, staff_id: int, text: str) -> Outcome:
        """Staff's own answer to a question: a new staff FAQ entry learnt from the customer's wording, and sent."""
        correction = self.store.corrections.add(decision.id, staff_id, CorrectionKind.ANSWER, answer_text=text)
        if correction.new_label:  # no entry when the message is gone or its customer opted out
            self._learn(decision, MessageKind.QUESTION, correction.new_label)
            self._refresh_index()
        return self._tell(correction, decision, lambda language: customer_text(
            self.settings, language, "staff_answer", answer=text))

    def relay(self, decision: Decision, text: str) -> Outcome:
        """A staff message passed on to the customer without learning from it (reviews, follow-ups)."""
        return self._tell(None, decision, lambda language: customer_text(
            self.settings, language, "staff_answer", answer=text))

    def _learn(self, decision: Decision, kind: MessageKind, label: str) -> None:
        text = self.store.messages.learnable_text(decision.message_id)  # None once deleted or opted out
        if text is not None:
            self._remember(text, kind, label)

    def _tell(self, correction: Correction | None, decision: Decision,
              reply: Callable[[str], str]) -> Outcome:
        message = self._message(decision)
        if message is None:
            return Outcome(correction, customer_gone=True)
        return Outcome(correction, CustomerReply(message, reply(self.customer_language(message.customer_id))))

    def _message(self, decision: Decision) -> Message | None:
        if decision.message_id is None:
            return None
        try:
            return self.store.messages.get(decision.message_id)
        except NotFoundError:
            return None

    def customer_language(self, customer_id: int) -> str:
        """The language last used with this customer, else the shop's default."""
        return self.store.customers.language_of(customer_id) or self.settings.default_language
