"""Editing the FAQ without Telegram: the versioned repository (storage/faq.py), the m006 migration on an existing
database, retired entries left out of every answering path, the use cases (shop/knowledge/editing.py) and the /faq button
codec (bot/faq_callbacks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import faq_callbacks
from bot.callbacks import CallbackDataError
from bot.faq_callbacks import FaqAction
from serving.loading import faq_index_items, load_memory
from shop.knowledge.editing import FaqProblem, Knowledge
from storage.migrations import migrations
from storage.records import NotFoundError
from storage.seed import load_demo
from storage.store import Store
from tests.botkit import MINI_SHOP

OWNER = 3001


@pytest.fixture
def shop(fresh_store: Store) -> Store:
    load_demo(fresh_store, MINI_SHOP)
    return fresh_store


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def knowledge(shop: Store, make_settings, calls: list[str]) -> Knowledge:
    return Knowledge(make_settings(shop={"languages": ["en", "zh"]}), shop, lambda: calls.append("index"),
                     lambda: calls.append("memory"))


def test_m006_on_a_database_made_before_it_keeps_every_entry(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with Store(path) as store:
        load_demo(store, MINI_SHOP)
        store.db.execute("alter table faq_entries drop column retired_at")  # the schema before m006
        store.db.execute("drop table faq_changes")
        store.db.table("_sqlite_migrations").delete_where("name = ?", ["m006_faq_retired_and_changes"])
        before = [(e.key, e.language, e.answer) for e in store.faq.all(include_retired=True)]
    with Store(path) as store:
        assert migrations.pending(store.db) == []
        assert "retired_at" in store.db.table("faq_entries").columns_dict
        assert [(e.key, e.language, e.answer) for e in store.faq.all()] == before  # none retired
        assert store.faq.changes() == []
        store.faq.edit("delivery", "en", "answer", "Meituan only.", OWNER)
        assert store.faq.changes()[0].new == "Meituan only."


def test_an_edit_and_its_history_row_are_one_transaction(shop: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    change = shop.faq.edit("delivery", "en", "answer", "Meituan only.", OWNER)
    assert change is not None and (change.old, change.new, change.changed_by) == (
        "Yes, order us on Meituan or Ele.me.", "Meituan only.", OWNER)
    assert shop.faq.edit("delivery", "en", "answer", "Meituan only.", OWNER) is None  # no change, no row

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(shop.faq, "_log", broken)
    with pytest.raises(RuntimeError):
        shop.faq.edit("delivery", "en", "answer", "Closed.", OWNER)
    with pytest.raises(RuntimeError):
        shop.faq.add_phrasing("delivery", "Can you bring it over?", "en", OWNER)
    assert shop.faq.get("delivery", "en").answer == "Meituan only."
    assert "Can you bring it over?" not in shop.faq.phrasings("delivery")
    with pytest.raises(ValueError, match="field"):
        shop.faq.edit("delivery", "en", "topic", "x", OWNER)


def test_a_retired_entry_leaves_every_answering_path_and_keeps_its_rows(shop: Store) -> None:
    shop.customers.touch(42, "en")
    message = shop.messages.add(42, 42, 1, "Can you deliver to my dorm?")
    decision = shop.decisions.add(message.id, "question", "delivery", 0.4, "handoff", "model", "v1", [("delivery", 0.4)])
    shop.corrections.add(decision.id, 2001, "faq", new_label="delivery")  # staff: it is the delivery entry
    assert load_memory(shop).exact("Can you deliver to my dorm?") is not None
    shop.faq.retire("delivery", OWNER)
    with pytest.raises(NotFoundError):
        shop.faq.get("delivery", "en")
    assert shop.faq.keys() == ["opening_hours", "price_milk_tea"] and "delivery" in shop.faq.keys(include_retired=True)
    assert {e.key for e in shop.faq.all()} == {"opening_hours", "price_milk_tea"}
    assert "delivery" not in {key for _, key in faq_index_items(shop)}
    assert load_memory(shop).exact("Can you deliver to my dorm?") is None
    assert shop.faq.phrasings("delivery") and shop.faq.retired_keys() == {"delivery"}
    with pytest.raises(NotFoundError):  # staff cannot pick it any more
        shop.corrections.add(decision.id, 2001, "faq", new_label="delivery")
    with pytest.raises(NotFoundError):
        shop.faq.retire("delivery", OWNER)
    assert load_demo(shop, MINI_SHOP)["faq_entries"] == 0  # re-seeding neither adds nor revives it
    assert all(row.retired_at is not None for row in shop.faq.entry("delivery"))
    assert [c.field for c in shop.faq.changes("delivery")] == ["retired"]


def test_a_staff_key_of_a_retired_entry_is_not_reused(shop: Store) -> None:
    first = shop.faq.add_entry_from_staff("Cheesecake?", "Yes.", "en")
    shop.faq.retire(first, OWNER)
    second = shop.faq.add_entry_from_staff("Matcha?", "Yes.", "en")
    assert (first, second) == ("staff-0001", "staff-0002")
    assert shop.faq.get(second, "en").question == "Matcha?"
    with pytest.raises(ValueError, match="retired"):
        shop.faq.create(first, "zh", "芝士蛋糕？", "有。", OWNER)


def test_the_use_cases_store_refresh_and_refuse(knowledge: Knowledge, shop: Store, calls: list[str]) -> None:
    assert knowledge.edit_answer("opening_hours", "en", " 9 to 5. ", OWNER).new == "9 to 5."
    assert calls == []  # an answer is read when a customer is answered: no index rebuild needed
    knowledge.edit_question("opening_hours", "en", "When are you open?", OWNER)
    knowledge.add_phrasing("opening_hours", "Open on Sundays?", OWNER)
    assert calls == ["index", "index"]
    assert shop.examples.all(task="faq")[-1].language == "en"
    problems = {
        "empty": lambda: knowledge.edit_answer("delivery", "en", "   ", OWNER),
        "phrasing_known": lambda: knowledge.add_phrasing("opening_hours", "open on sundays?", OWNER),
        "phrasing_taken": lambda: knowledge.add_phrasing("delivery", "今天开到几点", OWNER),
        "bad_key": lambda: knowledge.check_new_key("no/slash"),
        "key_taken": lambda: knowledge.add_entry("delivery", "Q?", "A.", OWNER),
        "gone": lambda: knowledge.edit_answer("parking", "en", "x", OWNER),
    }
    for reason, attempt in problems.items():
        with pytest.raises(FaqProblem) as raised:
            attempt()
        assert raised.value.reason == reason
    calls.clear()
    entry = knowledge.add_entry(" Parking  Coupons ", "停车券怎么用？", "买饮品送两小时。", OWNER)
    assert (entry.key, entry.language, entry.source) == ("parking-coupons", "zh", "owner")
    knowledge.add_entry("parking-coupons", "How do parking coupons work?", "Two hours free.", OWNER, language="en")
    knowledge.retire("parking-coupons", OWNER)
    assert calls == ["index", "index", "memory", "index"]
    with pytest.raises(FaqProblem) as raised:
        knowledge.check_new_key("parking-coupons")
    assert raised.value.reason == "key_retired"
    assert {(c.key, c.field) for c in shop.faq.changes()} >= {
        ("opening_hours", "answer"), ("opening_hours", "question"), ("opening_hours", "phrasing"),
        ("parking-coupons", "question"), ("parking-coupons", "answer"), ("parking-coupons", "retired")}


def test_button_data_round_trips_and_anything_else_is_forged() -> None:
    token = faq_callbacks.entry_token("打包-外带 with a long name " * 3)
    for action, fields in [(FaqAction.LIST, {"page": 12}), (FaqAction.SHOW, {"key": "x"}),
                           (FaqAction.ANSWER, {"key": "x", "language": "zh"}), (FaqAction.NEW, {}),
                           (FaqAction.CANCEL, {})]:
        data = faq_callbacks.encode(action, **fields)
        parsed = faq_callbacks.decode(data)
        assert len(data.encode()) <= 64 and parsed.action == action
        assert parsed.token == (faq_callbacks.entry_token("x") if "key" in fields else None)
    assert len(token) == 12
    for bad in ["", "fq1", "fq1:", "fq1:ls", "fq1:ls:00", "fq1:ls:10000", f"fq1:ls:{token}", "fq1:sh:12",
                f"fq1:ea:{token}", f"fq1:ea:de:{token}", f"fq1:sh:zh:{token}", "fq1:new:1", f"fq1:x:{token}",
                "fq1:ls:-1", "fq2:ls:0", "v1:5:ok", "fq1:ls:0 ", 7, None, "fq1:ls:" + "9" * 70]:
        with pytest.raises(CallbackDataError):
            faq_callbacks.decode(bad)
    with pytest.raises(ValueError):
        faq_callbacks.encode(FaqAction.SHOW)  # no entry
