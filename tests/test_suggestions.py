"""Suggested FAQ entries without Telegram: the clustering on a small fixed set (stable across runs and input
order, a cluster of one never suggested), which questions are clustered, and turning one into an FAQ entry."""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from shop.report.suggested import (
    Suggestion,
    SuggestionBook,
    SuggestionError,
    find_suggestions,
    keep_suggestions,
    suggestion_tag,
)
from shop.suggestions import cluster, suggest
from storage.store import Store
from vocabulary import MessageKind


def at(degrees: float, lift: float = 0.0) -> list[float]:
    """A unit vector at `degrees` in the first plane (cosine between two: cos of the angle between them)."""
    radians = math.radians(degrees)
    return [math.cos(radians), math.sin(radians), lift]


# Three ways of asking about parking coupons, two about paying by card, and one about something else.
VECTORS = {
    "有停车券吗": at(0), "停车券怎么领": at(8), "可以免费停车吗": at(16),
    "can I pay by card": at(90), "do you take cards": at(97),
    "can I bring my dog": at(180),
}
TEXTS = list(VECTORS)


def groups(texts: Sequence[str], found: list) -> list[tuple[str, ...]]:
    """Clusters as texts (central first), whatever order the input came in."""
    return [tuple(texts[i] for i in c.members) for c in found]


def test_clusters_of_a_small_fixed_set() -> None:
    vectors = np.array([VECTORS[t] for t in TEXTS])
    assert [[TEXTS[i] for i in group] for group in cluster(TEXTS, vectors)] == [
        ["can I bring my dog"], ["can I pay by card", "do you take cards"], ["停车券怎么领", "可以免费停车吗", "有停车券吗"]]
    found = suggest(TEXTS, vectors)
    assert groups(TEXTS, found) == [("停车券怎么领", "可以免费停车吗", "有停车券吗"),  # the medoid first; a tie: text order
                                    ("can I pay by card", "do you take cards")]
    assert [c.askers for c in found] == [3, 2]  # the dog question, asked once, is not suggested


def test_the_same_clusters_in_any_input_order_and_on_every_run() -> None:
    expected = groups(TEXTS, suggest(TEXTS, np.array([VECTORS[t] for t in TEXTS])))
    orders = list(itertools.permutations(TEXTS))
    for order in [*random.Random(7).sample(orders, 60), tuple(reversed(TEXTS))]:
        texts = list(order)
        assert groups(texts, suggest(texts, np.array([VECTORS[t] for t in texts]))) == expected


def test_a_question_asked_by_one_customer_is_not_suggested() -> None:
    texts = ["有停车券吗", "停车券怎么领", "can I pay by card"]
    vectors = np.array([VECTORS[t] for t in texts])
    assert suggest(texts, vectors, askers=[5, 5, 6]) == []  # the same customer twice is one asker
    assert groups(texts, suggest(texts, vectors, askers=[5, 6, 6])) == [("停车券怎么领", "有停车券吗")]
    assert suggest(texts[:1], vectors[:1]) == [] and suggest([], np.zeros((0, 3))) == []


def test_average_linkage_does_not_chain_through_a_middle_text() -> None:
    # a–b and b–c are close (cos 0.90) but a–c is not (0.62): their mean 0.76 keeps c out
    texts = ["a", "b", "c"]
    angle = math.degrees(math.acos(0.9))
    vectors = np.array([at(0), at(angle), at(2 * angle)])
    assert [[texts[i] for i in g] for g in cluster(texts, vectors)] == [["a", "b"], ["c"]]
    assert len(cluster(texts, vectors, threshold=0.6)) == 1
    with pytest.raises(ValueError, match="3 texts but 2 vectors"):
        cluster(texts, vectors[:2])


def test_most_askers_come_first_and_at_most_limit() -> None:
    texts = TEXTS
    vectors = np.array([VECTORS[t] for t in texts])
    found = suggest(texts, vectors, askers=[1, 1, 2, 3, 4, 5])  # parking: 2 askers, cards: 2, both 2 texts+
    assert [c.askers for c in found] == [2, 2]
    assert groups(texts, found)[0][0] == "停车券怎么领"  # a tie on askers: more texts first
    assert len(suggest(texts, vectors, limit=1)) == 1


# --------------------------------------------------------------------------- on a store
NOW = datetime.now(UTC)
OWNER = 1


def fake_embed(texts: Sequence[str]) -> np.ndarray:
    """The FAQ embedding, as fixed vectors (an unknown text: far from all of them)."""
    return np.array([VECTORS.get(t, at(270, lift=1.0)) for t in texts], dtype=np.float32)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "shop.db") as store:
        yield store


def ask(store: Store, customer: int, text: str, action: str = "handoff", kind: str = "question") -> int:
    """A customer message and the bot's decision on it; returns the decision id."""
    store.customers.touch(customer, "zh")
    message = store.messages.add(customer, customer, customer * 100 + len(text), text)
    label = "parking" if action == "answered" else None
    return store.decisions.add(message.id, kind, label, 0.2, action).id


def test_only_questions_staff_had_to_handle_are_clustered(store: Store) -> None:
    store.faq.upsert("parking", "zh", "停车", "门口可以停车", "parking", "seed")
    ask(store, 1, "有停车券吗")
    answered = ask(store, 2, "停车券怎么领")
    store.corrections.add(answered, 9, "answer", answer_text="凭小票到前台领取")
    ask(store, 3, "可以免费停车吗")
    ask(store, 4, "有停车券吗", action="answered")  # the bot answered it: no gap in the FAQ
    picked = ask(store, 5, "停车券怎么领")
    store.corrections.add(picked, 9, "faq", new_label="parking")  # staff found an entry for it
    ask(store, 6, "可以免费停车吗", kind="review", action="acknowledged")
    store.customers.touch(7, "zh")
    ask(store, 7, "有停车券吗")
    store.customers.set_opt_out(7, True)  # opted out: their words are not used
    ask(store, 8, "停车券怎么领")
    store.customers.forget(8, keep_anonymised_labels=False)  # deleted: gone from the suggestions too
    [found] = find_suggestions(store, NOW - timedelta(days=7), fake_embed)
    assert found.askers == 3 and found.label == "停车券怎么领" and found.wordings[1:] == ("可以免费停车吗", "有停车券吗")
    assert found.answers == ("凭小票到前台领取",) and found.answer_id == answered
    assert find_suggestions(store, datetime.now(UTC) + timedelta(minutes=1), fake_embed) == []  # only the report's period


def three_customers(store: Store, answer: bool = True) -> tuple[str, list[int], list[Suggestion]]:
    """Three customers ask about parking coupons (staff answer the first); the report keeps its suggestion."""
    ids = [ask(store, customer, text) for customer, text in ((1, "有停车券吗"), (2, "停车券怎么领"), (3, "可以免费停车吗"))]
    if answer:
        store.corrections.add(ids[0], 9, "answer", answer_text="凭小票到前台领取")
    suggestions = find_suggestions(store, NOW - timedelta(days=7), fake_embed)
    tag = suggestion_tag(suggestions)
    keep_suggestions(store, tag, suggestions)
    return tag, ids, suggestions


def test_a_draft_becomes_the_staff_entry_with_its_phrasings(store: Store) -> None:
    tag, ids, _ = three_customers(store)
    learnt, refreshed = [], []
    book = SuggestionBook(store, lambda text, kind, key: learnt.append((text, kind, key)),
                          lambda: refreshed.append(1))
    draft = book.draft(tag, 1)
    assert (draft.question, draft.answer, draft.phrasings) == ("停车券怎么领", "凭小票到前台领取", ("可以免费停车吗", "有停车券吗"))
    assert draft.answer_key == "staff-0001"  # the entry staff's answer already became
    key, added = book.add(tag, 1, OWNER)
    assert (key, added) == ("staff-0001", 2)
    entry = store.faq.get(key, "zh")
    assert (entry.question, entry.answer, entry.source) == ("停车券怎么领", "凭小票到前台领取", "staff")
    assert store.faq.keys() == ["staff-0001"]  # extended, not duplicated
    phrasings = {(e.text, e.decision_id) for e in store.examples.all(task="faq") if e.label == key}
    assert phrasings == {("有停车券吗", ids[0]), ("停车券怎么领", ids[1]), ("可以免费停车吗", ids[2])}
    assert learnt == [("停车券怎么领", MessageKind.QUESTION, key), ("可以免费停车吗", MessageKind.QUESTION, key)]  # new ones
    assert refreshed == [1]
    changes = [(c.field, c.changed_by) for c in store.faq.changes(key)]  # newest first; the answer was already so
    assert changes[0] == ("question", OWNER) and ("answer", OWNER) not in changes
    for press in (functools.partial(book.add, editor=OWNER), book.draft, book.discard):
        with pytest.raises(SuggestionError) as done:
            press(tag, 1)
        assert done.value.reason == "done"
    assert find_suggestions(store, NOW - timedelta(days=7), fake_embed) == []  # not suggested again


def test_forged_or_stale_presses_change_nothing(store: Store) -> None:
    tag, _, _ = three_customers(store)
    book = SuggestionBook(store, lambda *_: None, lambda: None)
    for press_tag, number, reason in ((tag, 2, "unknown"), (tag, 0, "unknown"), ("0" * 8, 1, "stale")):
        with pytest.raises(SuggestionError) as refused:
            book.add(press_tag, number, OWNER)
        assert refused.value.reason == reason
    ask(store, 4, "停车券怎么领")  # a newer report replaces this one's suggestions
    newer = find_suggestions(store, NOW - timedelta(days=7), fake_embed)
    keep_suggestions(store, suggestion_tag(newer), newer)
    with pytest.raises(SuggestionError, match="stale"):
        book.draft(tag, 1)
    assert store.faq.keys() == ["staff-0001"] and len(store.examples.all(task="faq")) == 1  # staff's answer only


def test_a_draft_without_a_staff_answer_cannot_be_added_but_can_be_discarded(store: Store) -> None:
    tag, _, suggestions = three_customers(store, answer=False)
    book = SuggestionBook(store, lambda *_: None, lambda: None)
    draft = book.draft(tag, 1)
    assert draft.answer is None and draft.answer_key is None
    with pytest.raises(SuggestionError, match="no_answer"):
        book.add(tag, 1, OWNER)
    book.discard(tag, 1)
    keep_suggestions(store, tag, suggestions)  # the same report built again (another owner's language) ...
    with pytest.raises(SuggestionError, match="done"):  # ... keeps what was done with it
        book.discard(tag, 1)
    assert store.faq.keys() == [] and find_suggestions(store, NOW - timedelta(days=7), fake_embed) == []


def test_a_new_entry_when_staff_answer_left_none(store: Store) -> None:
    tag, _, _ = three_customers(store)
    store.examples.table.delete_where()
    store.faq.table.delete_where()  # the staff entry is gone (removed by hand): a new one is made
    key, added = SuggestionBook(store, lambda *_: None, lambda: None).add(tag, 1, OWNER)
    assert key == "staff-0001" and added == 3 and store.faq.get(key, "zh").question == "停车券怎么领"


def test_the_words_of_a_customer_who_forgot_are_not_in_the_draft(store: Store) -> None:
    tag, _, _ = three_customers(store)
    store.customers.forget(2, keep_anonymised_labels=False)
    draft = SuggestionBook(store, lambda *_: None, lambda: None).draft(tag, 1)
    assert "停车券怎么领" not in (draft.question, *draft.phrasings)
    for customer in (1, 3):
        store.customers.forget(customer, keep_anonymised_labels=False)
    with pytest.raises(SuggestionError, match="gone"):
        SuggestionBook(store, lambda *_: None, lambda: None).draft(tag, 1)
