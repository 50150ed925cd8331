"""The customer-choice use cases without Telegram: how a did-you-mean pick is weighted (a weak example that
trains but never corrects), the one-change rule of 👍 / 👎 in storage, and a pick naming the entry it shows."""

from __future__ import annotations

from serving.loading import load_memory
from serving.prediction import Prediction
from settings import settings_from_dict
from shop.conversation import CustomerChoices, suggestions_for
from storage.seed import load_demo
from storage.store import Store
from tests.botkit import MINI_SHOP
from training.snapshot import take_snapshot
from vocabulary import Action, CustomerFeedback, ExampleSource, SuggestionOutcome


def test_a_customer_pick_trains_like_a_phrasing_but_never_corrects(fresh_store: Store) -> None:
    load_demo(fresh_store, MINI_SHOP)
    fresh_store.examples.add("faq", "when can I come by", "opening_hours", "en", ExampleSource.CUSTOMER)
    snapshot = take_snapshot(fresh_store)
    assert ("when can I come by", "opening_hours") in {(r.text, r.label) for r in snapshot.rows["faq"]}
    assert snapshot.regression_set("faq") == []  # not a staff correction
    assert load_memory(fresh_store).exact("when can I come by") is None  # nor in the correction memory

    seeded = next(r for r in snapshot.rows["faq"] if r.source == ExampleSource.SEED)
    fresh_store.examples.add("faq", seeded.text, "delivery", "en", ExampleSource.CUSTOMER)  # a later, wrong pick
    kept = {r.text: r.label for r in take_snapshot(fresh_store).rows["faq"]}
    assert kept[seeded.text] == seeded.label  # the shop's own label wins over a customer's


def test_feedback_changes_once_then_is_final_and_a_suggestion_resolves_once(fresh_store: Store) -> None:
    decision = fresh_store.decisions.add(None, "question", "delivery", 0.9, Action.ANSWERED)
    assert decision.customer_feedback is None and decision.customer_feedback_changes == 0
    up = fresh_store.decisions.set_customer_feedback(decision.id, CustomerFeedback.UP)
    assert up is not None and (up.customer_feedback, up.customer_feedback_changes) == ("up", 0)
    assert fresh_store.decisions.set_customer_feedback(decision.id, CustomerFeedback.UP) is None  # the same again
    down = fresh_store.decisions.set_customer_feedback(decision.id, CustomerFeedback.DOWN)
    assert down is not None and (down.customer_feedback, down.customer_feedback_changes) == ("down", 1)
    assert fresh_store.decisions.set_customer_feedback(decision.id, CustomerFeedback.UP) is None  # final

    offered = fresh_store.decisions.add(None, "question", "delivery", 0.3, Action.SUGGESTED,
                                        alternatives=[("delivery", 0.3)], suggestion=SuggestionOutcome.OFFERED)
    picked = fresh_store.decisions.resolve_suggestion(offered.id, SuggestionOutcome.PICKED, Action.ANSWERED,
                                                      "delivery", 0.3)
    assert picked is not None and (picked.action, picked.suggestion) == ("answered", "picked")
    assert fresh_store.decisions.resolve_suggestion(offered.id, SuggestionOutcome.REFUSED, Action.HANDOFF,
                                                    None, 0.3) is None  # the second press loses


def test_the_migration_adds_the_columns_to_an_existing_database(tmp_path) -> None:
    with Store(tmp_path / "shop.db") as store:
        columns = store.decisions.table.columns_dict
    assert {"suggestion", "customer_feedback", "customer_feedback_at", "customer_feedback_changes"} <= set(columns)


def test_a_pick_answers_with_the_entry_its_button_shows_when_one_before_it_was_skipped(fresh_store: Store,
                                                                                     tmp_path) -> None:
    load_demo(fresh_store, MINI_SHOP)
    fresh_store.customers.touch(1001, "en")
    message = fresh_store.messages.add(1001, 1001, 1, "when can I come by")
    settings = settings_from_dict({"thresholds": {"suggest_confidence": 0.1}}, tmp_path, env={})
    alternatives = (("retired_meanwhile", 0.4), ("opening_hours", 0.3), ("delivery", 0.2), ("price_milk_tea", 0.15))
    prediction = Prediction("question", "retired_meanwhile", 0.4, False, alternatives, "model", "v", 0.9)
    offered = suggestions_for(settings, fresh_store, prediction, "en")
    assert [(s.key, s.number) for s in offered] == [("opening_hours", 1), ("delivery", 2)]  # the first three only
    decision = fresh_store.decisions.add(message.id, "question", "retired_meanwhile", 0.4, Action.SUGGESTED,
                                         alternatives=alternatives, suggestion=SuggestionOutcome.OFFERED)
    picked, entry = CustomerChoices(fresh_store).pick_suggestion(decision.id, offered[1].number, 1001, "en")
    assert entry.key == picked.label == "delivery"
