"""/faq end to end (real PTB, the emulator, the tiny model): the owner lists, opens, edits, extends and retires FAQ
entries in their private chat, and the next customer message sees the change; everyone else is refused and
nothing changes; staff edit too when the config allows; forged and stale buttons change nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import faq_callbacks
from bot.limits import MAX_CALLBACK_DATA, MAX_TEXT, utf16_len
from tests.botkit import ALICE, BOSS, MEI, STAFF_CHAT, BotHarness, bot_settings, button_data, buttons, press_raw

pytestmark = pytest.mark.usefixtures("no_bot_errors")
HOURS_EN = "We are open 10:00 to 22:00 every day."


@pytest.fixture
def bot(tmp_path: Path, tiny_base: Path) -> Iterator[BotHarness]:
    """A fresh bot per test: the tests change the FAQ."""
    with BotHarness(bot_settings(tmp_path, tiny_base)) as harness:
        yield harness


@pytest.fixture
def answer_everything(bot: BotHarness) -> None:
    """The model answers whatever it finds best (the tiny model finds a stored wording itself)."""
    bot.services.runtime.answer_threshold = 0.0


def open_entry(bot: BotHarness, key: str) -> dict:
    return bot.command(BOSS, "faq", key)


def press_for_message(bot: BotHarness, user, message: dict, starts_with: str) -> dict:
    """Press a button that makes the bot send a new message (a prompt); return that message."""
    after = bot.cursor(user.id)
    answer = bot.press(user, message, button_data(message, starts_with))
    assert answer.get("show_alert") is not True, answer
    return bot.emulator.wait_for_message(user.id, after=after)


def press_and_edit(bot: BotHarness, user, message: dict, data: str) -> tuple[dict, dict]:
    """Press a button that edits its own message; (the press's answer, the message as it is then)."""
    before = len(bot.emulator.requests)
    answer = bot.press(user, message, data)
    if answer.get("show_alert") is not True:
        bot.emulator.wait_for(lambda method, params: method == "editMessageText"
                              and params["message_id"] == message["message_id"], after=before)
    return answer, next(m for m in bot.emulator.messages(user.id) if m["message_id"] == message["message_id"])


def wait_index(bot: BotHarness, has, timeout: float = 20) -> None:
    """Wait for the background FAQ index rebuild to reach a condition on its (texts, keys)."""
    deadline = time.monotonic() + timeout
    while not has(bot.services.runtime.serving.index):
        assert time.monotonic() < deadline, "the FAQ index was not rebuilt"
        time.sleep(0.05)


def test_the_list_pages_with_buttons_and_an_entry_opens_cut_to_fit(bot: BotHarness) -> None:
    with bot.store() as store:
        for number in range(10):
            store.faq.upsert(f"extra-{number:02d}", "en", f"Extra question {number}?", "Extra answer.", "extra", "seed")
        store.faq.upsert("long", "en", "A long one?", "🧋" * 3000, "extra", "seed")  # 6,000 UTF-16 units
    first = bot.command(BOSS, "faq")
    assert first["text"].startswith("📚 FAQ: 14 entries · page 1/2")
    assert "extra-00 — Extra question 0?" in first["text"]
    data = [d for row in first["reply_markup"]["inline_keyboard"] for d in (b["callback_data"] for b in row)]
    assert all(d.startswith("fq1:") and len(d.encode()) <= MAX_CALLBACK_DATA for d in data)
    assert len([t for t in buttons(first) if " · " in t]) == 8 and "next ▶" in buttons(first)
    _, second = press_and_edit(bot, BOSS, first, buttons(first)["next ▶"])
    assert second["text"].startswith("📚 FAQ: 14 entries · page 2/2") and "◀ previous" in buttons(second)
    _, entry = press_and_edit(bot, BOSS, second, button_data(second, "opening_hours"))
    assert entry["text"].startswith("📖 opening_hours · topic: hours")
    assert HOURS_EN in entry["text"] and "每天 10:00 到 22:00 营业。" in entry["text"]
    assert {"✏ answer (English)", "✏ question (Chinese)", "➕ another wording", "🗄 retire"} <= set(buttons(entry))
    long = open_entry(bot, "long")
    assert utf16_len(long["text"]) <= MAX_TEXT and "🧋…" in long["text"]
    assert open_entry(bot, "parking")["text"] == "There is no FAQ entry “parking”. Send /faq to see them all."


def test_an_edited_answer_reaches_the_next_customer_and_is_versioned(bot: BotHarness, answer_everything) -> None:
    assert bot.say(ALICE, "What are your opening hours?")["text"] == HOURS_EN
    prompt = press_for_message(bot, BOSS, open_entry(bot, "opening_hours"), "✏ answer (English)")
    assert prompt["text"].startswith("✏ Type the new English answer of “opening_hours”") and HOURS_EN in prompt["text"]
    saved = bot.say(BOSS, "  Holiday week: 12:00 to 20:00.  ")
    assert saved["text"].startswith("✔ Saved the answer (English) of “opening_hours”")
    assert "A: Holiday week: 12:00 to 20:00." in saved["text"] and "Last change: " in saved["text"]
    assert bot.say(ALICE, "What are your opening hours?")["text"] == "Holiday week: 12:00 to 20:00."
    assert bot.say(ALICE, "你们几点开门？")["text"] == "每天 10:00 到 22:00 营业。"  # the other language is untouched
    with bot.store() as store:
        [change] = store.faq.changes("opening_hours")
    assert (change.field, change.language, change.old, change.new, change.changed_by) == (
        "answer", "en", HOURS_EN, "Holiday week: 12:00 to 20:00.", BOSS.id)
    assert datetime.now(UTC) - datetime.fromisoformat(change.changed_at) < timedelta(minutes=1)
    again = press_for_message(bot, BOSS, open_entry(bot, "opening_hours"), "✏ answer (English)")
    assert "Holiday week" in again["text"]
    assert bot.say(BOSS, "Holiday week: 12:00 to 20:00.")["text"].startswith("It says that already: nothing changed.")
    entry = open_entry(bot, "opening_hours")
    history = press_and_edit(bot, BOSS, entry, button_data(entry, "📜"))[1]
    assert "answer (English): We are open 10:00 to 22:00 every day. → Holiday week: 12:00 to 20:00." in history["text"]
    assert f"#{BOSS.id}" in history["text"]


def test_a_new_wording_and_a_new_question_find_the_entry(bot: BotHarness, answer_everything) -> None:
    entry = open_entry(bot, "opening_hours")
    press_for_message(bot, BOSS, entry, "➕ another wording")
    assert bot.say(BOSS, "Are you open at midnight?")["text"].startswith("✔ “Are you open at midnight?” now finds")
    wait_index(bot, lambda index: "Are you open at midnight?" in index.texts)
    assert bot.say(ALICE, "Are you open at midnight?")["text"] == HOURS_EN
    press_for_message(bot, BOSS, open_entry(bot, "delivery"), "➕ another wording")
    taken = bot.say(BOSS, "when do you open?")  # a wording of opening_hours already
    assert taken["text"] == "That wording finds “opening_hours” already; a wording can find only one entry."
    assert bot.command(BOSS, "cancel")["text"] == "Stopped; nothing changed."
    press_for_message(bot, BOSS, open_entry(bot, "delivery"), "✏ question (English)")
    assert bot.say(BOSS, "Can you bring tea to my office?")["text"].startswith("✔ Saved the question (English)")
    wait_index(bot, lambda index: "Can you bring tea to my office?" in index.texts)
    assert bot.say(ALICE, "Can you bring tea to my office?")["text"] == "Yes, order us on Meituan or Ele.me."
    with bot.store() as store:
        fields = [(c.key, c.field, c.new) for c in store.faq.changes()]
        assert fields == [("delivery", "question", "Can you bring tea to my office?"),
                          ("opening_hours", "phrasing", "Are you open at midnight?")]
        assert "Are you open at midnight?" in store.faq.phrasings("opening_hours")


def test_a_new_entry_named_asked_and_answered_then_in_another_language(bot: BotHarness, answer_everything) -> None:
    prompt = press_for_message(bot, BOSS, bot.command(BOSS, "faq"), "➕ new entry")
    assert prompt["text"].startswith("➕ New entry.") and "✖ cancel" in buttons(prompt)
    assert bot.say(BOSS, "no good!")["text"].startswith("A name is 1 to 40 letters")
    assert bot.say(BOSS, "delivery")["text"] == "“delivery” is taken already. Please pick another name."
    assert bot.say(BOSS, "Parking Coupons")["text"].startswith("Type the question of “parking-coupons”")
    assert bot.say(BOSS, "Do you validate parking?")["text"] == "Now type the English answer customers get."
    saved = bot.say(BOSS, "Yes: two hours free with any drink.")
    assert saved["text"].startswith("✔ New entry “parking-coupons” (English) saved")
    wait_index(bot, lambda index: "parking-coupons" in index.keys)
    assert bot.say(ALICE, "Do you validate parking?")["text"] == "Yes: two hours free with any drink."
    zh = press_for_message(bot, BOSS, saved, "➕ add Chinese")
    assert zh["text"] == "Type the Chinese question of “parking-coupons”."
    bot.say(BOSS, "停车可以抵扣吗？")
    assert bot.say(BOSS, "可以，买任意饮品免费停车两小时。")["text"].startswith("✔ “parking-coupons” has a Chinese version")
    with bot.store() as store:
        rows = {row.language: row for row in store.faq.entry("parking-coupons")}
        assert rows["zh"].answer == "可以，买任意饮品免费停车两小时。" and rows["en"].source == "owner"
        assert [(c.language, c.field) for c in store.faq.changes("parking-coupons")] == [
            ("zh", "answer"), ("zh", "question"), ("en", "answer"), ("en", "question")]


def test_a_retired_entry_is_handed_off_at_once_and_its_history_kept(bot: BotHarness) -> None:
    question = "Do you deliver?"
    reply, mirror, decision = bot.ask(ALICE, question)  # handed off (the tiny model is never sure)
    assert decision.alternatives[0][0] == "delivery"
    bot.press(MEI, mirror, button_data(mirror, "📖 Do you deliver?"))  # staff: it is the delivery entry
    bot.emulator.wait_for_message(ALICE.id, "Meituan", after=reply["message_id"])
    assert bot.say(ALICE, question)["text"] == "Yes, order us on Meituan or Ele.me."  # learnt: answered now
    entry = open_entry(bot, "delivery")
    _, confirm = press_and_edit(bot, BOSS, entry, button_data(entry, "🗄 retire"))
    assert confirm["text"].startswith("Retire “delivery”?")
    yes = button_data(confirm, "🗄 yes")
    _, retired = press_and_edit(bot, BOSS, confirm, yes)
    assert retired["text"].startswith("🗄 “delivery” is retired") and "Retired " in retired["text"]
    assert set(buttons(retired)) == {"📜 history", "↩ list"}
    assert "passed it to our staff" in bot.say(ALICE, question)["text"]  # the very next message
    wait_index(bot, lambda index: "delivery" not in index.keys)
    _, mirror, decision = bot.ask(ALICE, "Do you deliver to the station?")
    assert "delivery" not in [key for key, _ in decision.alternatives] and "delivery" not in mirror["text"]
    assert "delivery" not in bot.command(BOSS, "faq")["text"]
    again = press_raw(bot, BOSS, retired, yes)  # the same press again (a double tap, a replay): nothing to do
    assert again["show_alert"] is True and "no longer there" in again["text"]
    with bot.store() as store:
        assert [row.retired_at is not None for row in store.faq.entry("delivery")] == [True, True]
        assert [c.field for c in store.faq.changes("delivery")] == ["retired"]
        assert store.faq.phrasings("delivery")  # its wordings stay stored
    history = press_and_edit(bot, BOSS, retired, buttons(retired)["📜 history"])[1]
    assert f"#{BOSS.id} · retired" in history["text"]


def test_everyone_else_is_refused_politely_and_nothing_changes(bot: BotHarness) -> None:
    for user in (ALICE, MEI):
        assert bot.command(user, "faq")["text"] == "Sorry, only the shop owner can edit the FAQ."
    sent = bot.emulator.send_command(BOSS, "faq", chat_id=STAFF_CHAT)
    assert bot.emulator.wait_for_message(STAFF_CHAT, after=sent["message_id"])["text"].startswith("Please use /faq in")
    entry = open_entry(bot, "opening_hours")
    for user in (ALICE, MEI):
        for data in buttons(entry).values():
            answer = press_raw(bot, user, entry, data)
            assert answer["show_alert"] is True and answer["text"] == "Sorry, only the shop owner can edit the FAQ."
    assert "passed it to our staff" in bot.say(ALICE, "Is it holiday week?")["text"]  # a text, not an answer
    with bot.store() as store:
        assert store.faq.changes() == [] and store.faq.get("opening_hours", "en").answer == HOURS_EN


def test_forged_and_stale_buttons_are_refused(bot: BotHarness) -> None:
    entry = open_entry(bot, "opening_hours")
    token = faq_callbacks.entry_token("opening_hours")
    for data in ("fq1:", "fq1:zz", "fq1:sh", "fq1:sh:xyz", f"fq1:sh:{token}:0", f"fq1:ea:{token}", "fq1:ls:01",
                 f"fq1:ea:fr:{token}", "fq1:new:0", "fq1:" + "a" * 80, f"fq1:sh:{token.upper()}"):
        answer = press_raw(bot, BOSS, entry, data)
        assert answer["show_alert"] is True and answer["text"] in ("That button is not valid.",
                                                                    "Sorry, only the shop owner can edit the FAQ."), data
    for data in (None, ""):  # no data: the staff buttons' handler's to refuse
        assert press_raw(bot, BOSS, entry, data)["text"] == "This button isn't recognised."
    gone = press_raw(bot, BOSS, entry, f"fq1:sh:{faq_callbacks.entry_token('parking')}")
    assert gone["text"].startswith("That entry is no longer there")
    stranger = {**entry, "chat": {"id": STAFF_CHAT, "type": "supergroup", "title": "Staff"}}  # not their private chat
    assert press_raw(bot, BOSS, stranger, button_data(entry, "🗄 retire"))["text"].startswith("These buttons work only")
    with bot.store() as store:
        assert store.faq.changes() == [] and len(store.faq.keys()) == 3


def test_typing_can_be_cancelled_and_times_out(tmp_path: Path, tiny_base: Path) -> None:
    with BotHarness(bot_settings(tmp_path, tiny_base), answer_timeout_s=1.5) as bot:
        prompt = press_for_message(bot, BOSS, open_entry(bot, "opening_hours"), "✏ answer (English)")
        answer = bot.press(BOSS, prompt, buttons(prompt)["✖ cancel"])
        assert answer["text"] == "Stopped; nothing changed."
        assert "passed it to our staff" in bot.say(BOSS, "Are you closed today?")["text"]  # just a message again
        press_for_message(bot, BOSS, open_entry(bot, "opening_hours"), "✏ answer (English)")
        after = bot.cursor(BOSS.id)
        timed_out = bot.emulator.wait_for_message(BOSS.id, "⌛", after=after, timeout=15)
        assert timed_out["text"] == "⌛ Nothing was typed for 0.025 min: stopped, nothing changed."
        with bot.store() as store:
            assert store.faq.changes() == []
        assert bot.take_errors() == []


def test_staff_edit_too_when_the_config_allows(tmp_path: Path, tiny_base: Path) -> None:
    settings = bot_settings(tmp_path, tiny_base, roles={"faq_editors": "staff"})
    with BotHarness(settings) as bot:
        prompt = press_for_message(bot, MEI, bot.command(MEI, "faq", "delivery"), "✏ answer (English)")
        assert "Meituan" in prompt["text"]
        assert bot.say(MEI, "Yes, on Meituan only.")["text"].startswith("✔ Saved the answer (English)")
        assert bot.command(ALICE, "faq")["text"] == "Sorry, only the shop's owner and staff can edit the FAQ."
        with bot.store() as store:
            [change] = store.faq.changes()
            assert (change.changed_by, change.new) == (MEI.id, "Yes, on Meituan only.")
        menus = {c[1].get("scope", {}).get("chat_id"): c[1]["commands"] for c in bot.emulator.calls("setMyCommands")}
        assert "faq" in {c["command"] for c in menus[MEI.id]} and "faq" in {c["command"] for c in menus[BOSS.id]}
        assert bot.take_errors() == []
