"""The staff feedback use cases (shop/feedback.py) without Telegram: what each stores, teaches and tells the customer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shop.feedback import StaffFeedback
from storage.records import Decision, NotFoundError
from storage.store import Store
from vocabulary import MessageKind

ALICE, MEI = 42, 7


class Learner:
    """Records what the use cases teach the correction memory and how often they ask for the FAQ index."""

    def __init__(self) -> None:
        self.remembered: list[tuple[str, MessageKind, str]] = []
        self.refreshes = 0

    def remember(self, text: str, kind: MessageKind, label: str) -> None:
        self.remembered.append((text, kind, label))

    def refresh(self) -> None:
        self.refreshes += 1


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:") as store:
        store.faq.upsert("hours", "en", "When do you open?", "Every day 10:00-22:00.", "hours", "seed")
        store.faq.upsert("delivery", "en", "Do you deliver?", "Within 3 km, order by phone.", "delivery", "seed")
        yield store


@pytest.fixture
def learner() -> Learner:
    return Learner()


@pytest.fixture
def feedback(make_settings, store: Store, learner: Learner) -> StaffFeedback:
    return StaffFeedback(make_settings(), store, learner.remember, learner.refresh)


def _decision(store: Store, text: str, kind: str, label: str | None, action: str) -> Decision:
    store.customers.touch(ALICE, "en")
    message = store.messages.add(ALICE, ALICE, 100, text)
    return store.decisions.add(message.id, kind, label, 0.6, action, alternatives=[("hours", 0.6), ("delivery", 0.3)])


def test_confirm_stores_the_bots_label_and_tells_nobody(feedback, store, learner) -> None:
    decision = _decision(store, "when are you open", "question", "hours", "answered")
    outcome = feedback.confirm(decision, MEI)
    assert outcome.correction.kind == "confirm" and outcome.reply is None
    assert store.decisions.get(decision.id).status == "confirmed"
    assert learner.remembered == []  # the bot was right: nothing to correct at once


def test_relabel_teaches_the_memory_at_once_and_the_same_label_confirms(feedback, store, learner) -> None:
    review = _decision(store, "the pearls were hard", "review", "positive", "acknowledged")
    outcome = feedback.relabel(review, MEI, "negative")
    assert (outcome.correction.kind, outcome.correction.new_label, outcome.reply) == ("label", "negative", None)
    assert learner.remembered == [("the pearls were hard", MessageKind.REVIEW, "negative")]
    again = _decision(store, "lovely", "review", "positive", "acknowledged")
    assert feedback.relabel(again, MEI, "positive").correction.kind == "confirm"


def test_a_question_relabelled_is_a_review_and_the_customer_is_thanked(feedback, store, learner) -> None:
    decision = _decision(store, "the tea was too sweet", "question", "hours", "answered")
    outcome = feedback.relabel(decision, MEI, "negative")
    [example] = store.examples.all(task="sentiment")
    assert (example.text, example.label) == ("the tea was too sweet", "negative")
    assert learner.remembered == [("the tea was too sweet", MessageKind.REVIEW, "negative")]
    assert outcome.reply is not None and outcome.reply.text.startswith("We're really sorry")
    assert outcome.reply.message.chat_id == ALICE


def test_pick_faq_learns_the_phrasing_refreshes_the_index_and_sends_the_answer(feedback, store, learner) -> None:
    decision = _decision(store, "can you bring it to my office", "question", "hours", "answered")
    outcome = feedback.pick_faq(decision, MEI, "delivery")
    assert learner.remembered == [("can you bring it to my office", MessageKind.QUESTION, "delivery")]
    assert learner.refreshes == 1
    assert outcome.reply is not None and outcome.reply.text == "Here is a better answer: Within 3 km, order by phone."
    handoff = _decision(store, "delivery to the park?", "question", None, "handoff")
    assert feedback.pick_faq(handoff, MEI, "delivery").reply.text.startswith("From our staff:")
    with pytest.raises(NotFoundError):
        feedback.pick_faq(_decision(store, "x?", "question", None, "handoff"), MEI, "no-such-key")


def test_answer_adds_a_staff_entry_learnt_from_the_customers_words(feedback, store, learner) -> None:
    decision = _decision(store, "are dogs allowed", "question", None, "handoff")
    outcome = feedback.answer(decision, MEI, "Dogs are welcome on the terrace")
    key = outcome.correction.new_label
    assert store.faq.get(key, "en").answer == "Dogs are welcome on the terrace"
    assert learner.remembered == [("are dogs allowed", MessageKind.QUESTION, key)] and learner.refreshes == 1
    assert outcome.reply.text == "From our staff: Dogs are welcome on the terrace"


def test_nothing_is_learnt_from_an_opted_out_customer_and_a_gone_message_reaches_nobody(feedback, store,
                                                                                        learner) -> None:
    decision = _decision(store, "the straw broke", "review", "positive", "acknowledged")
    store.customers.set_opt_out(ALICE, True)
    assert feedback.relabel(decision, MEI, "negative").correction.kind == "label"
    assert learner.remembered == []
    question = _decision(store, "do you open on sundays", "question", None, "handoff")
    store.customers.forget(ALICE, keep_anonymised_labels=False)
    outcome = feedback.answer(store.decisions.get(question.id), MEI, "Yes, 10:00-22:00")
    assert outcome.customer_gone and outcome.reply is None


def test_relay_passes_the_text_on_without_learning(feedback, store, learner) -> None:
    decision = _decision(store, "great tea!", "review", "positive", "acknowledged")
    outcome = feedback.relay(decision, "Thank you, see you soon")
    assert outcome.correction is None and outcome.reply.text == "From our staff: Thank you, see you soon"
    assert learner.remembered == [] and store.corrections.all() == []
