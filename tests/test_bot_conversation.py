"""The customer's own buttons end to end (real PTB, emulator, the tiny model): "did you mean…?" picks and
"none of these", 👍 / 👎 under an automatic answer (one change, then final; 👎 reaches staff), and refused
presses (forged, stale, another user's)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.handlers import conversation
from shop.texts import customer_text
from storage.clock import to_timestamp
from tests.botkit import (
    ALICE,
    BOB,
    EVE,
    MEI,
    STAFF_CHAT,
    XIAO,
    BotHarness,
    bot_settings,
    button_data,
    buttons,
    press_raw,
)

pytestmark = pytest.mark.usefixtures("no_bot_errors")


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[BotHarness]:
    # The tiny model answers nothing (answer_confidence 1.0) and every entry is plausible (suggest_confidence 0).
    settings = bot_settings(tmp_path_factory.mktemp("conversation"), tiny_base,
                            thresholds={"suggest_confidence": 0.0})
    with BotHarness(settings) as harness:
        yield harness




def wait_edit(bot: BotHarness, method: str, chat_id: int, message_id: int, after: int = 0) -> dict:
    """The parameters of the bot's next edit of that message."""
    return bot.emulator.wait_for(lambda m, p: m == method and p.get("chat_id") == chat_id
                                 and p.get("message_id") == message_id, after=after)[1]


def current(bot: BotHarness, chat_id: int, message_id: int) -> dict:
    """A bot message as it is now (edits applied)."""
    return next(m for m in bot.emulator.messages(chat_id) if m["message_id"] == message_id)


def latest_decision(bot: BotHarness):
    with bot.store() as store:
        return store.decisions.recent(1)[0]


def test_did_you_mean_pick_answers_at_once_and_is_learnt_as_a_customer_example(bot: BotHarness) -> None:
    after = bot.cursor(STAFF_CHAT)
    prompt = bot.say(ALICE, "when can I come by")
    assert prompt["text"] == "I'm not sure which one you mean. Is it one of these?"
    offered = buttons(prompt)
    assert set(offered) == {"What are your opening hours?", "How much is a bubble milk tea?", "Do you deliver?",
                            "None of these, ask staff"}
    decision = latest_decision(bot)
    assert (decision.action, decision.suggestion, decision.staff_message_id) == ("suggested", "offered", None)

    answer = bot.press(ALICE, prompt, offered["What are your opening hours?"])
    assert answer.get("show_alert") is not True
    wait_edit(bot, "editMessageText", ALICE.id, prompt["message_id"])
    edited = current(bot, ALICE.id, prompt["message_id"])
    assert edited["text"] == "We are open 10:00 to 22:00 every day."
    assert set(buttons(edited)) == {"👍 Helpful", "👎 Not helpful"}
    mirror, mirrored = bot.wait_mirror("when can I come by", after=after)
    assert "Question · answered" in mirror["text"] and "picked this one" in mirror["text"]
    assert (mirrored.id, mirrored.action, mirrored.label, mirrored.suggestion) == (
        decision.id, "answered", "opening_hours", "picked")
    assert bot.emulator.calls("sendMessage")[-1][1].get("disable_notification") is True  # routine: silent
    with bot.store() as store:
        [example] = [e for e in store.examples.all("faq") if e.decision_id == decision.id]
        assert (example.text, example.label, example.source) == ("when can I come by", "opening_hours", "customer")
        assert [c for c in store.corrections.all() if c.decision_id == decision.id] == []  # not a staff correction
    assert bot.services.runtime.memory.exact("when can I come by") is None

    again = press_raw(bot, ALICE, prompt, offered["Do you deliver?"])  # the old buttons, pressed again
    assert again["show_alert"] is True and "used already" in again["text"]
    assert latest_decision(bot).label == "opening_hours"


def test_none_of_these_hands_off_and_staff_see_the_refusal(bot: BotHarness) -> None:
    after = bot.cursor(STAFF_CHAT)
    prompt = bot.say(XIAO, "你们有会员卡吗")
    assert "是下面其中一个吗" in prompt["text"]
    bot.press(XIAO, prompt, button_data(prompt, "都不是"))
    wait_edit(bot, "editMessageText", XIAO.id, prompt["message_id"])
    edited = current(bot, XIAO.id, prompt["message_id"])
    assert "转给店员" in edited["text"] and buttons(edited) == {}
    mirror, decision = bot.wait_mirror("你们有会员卡吗", after=after)
    assert "Question for staff" in mirror["text"] and "refused them all" in mirror["text"]
    assert (decision.action, decision.suggestion) == ("handoff", "refused")
    assert "✍ write the answer" in buttons(mirror)
    assert bot.emulator.calls("sendMessage")[-1][1].get("disable_notification") is not True  # a handoff rings
    with bot.store() as store:
        assert [e for e in store.examples.all("faq") if e.decision_id == decision.id] == []


def test_buttons_nobody_presses_hand_the_question_to_staff_in_time(bot: BotHarness) -> None:
    after = bot.cursor(STAFF_CHAT)
    prompt = bot.say(BOB, "is there wifi for customers")
    offered = latest_decision(bot)
    with bot.store() as store:  # shown longer ago than thresholds.suggestion_wait_minutes (10)
        store.decisions.table.update(offered.id, {"created_at": to_timestamp(datetime.now(UTC) - timedelta(minutes=11))})
    bot.run(conversation.expire_offers(SimpleNamespace(services=bot.services, bot=bot.app.bot)))
    told = bot.emulator.wait_for_message(BOB.id, after=prompt["message_id"])
    assert told["text"] == customer_text(bot.settings, "en", "handoff")
    mirror, decision = bot.wait_mirror("is there wifi for customers", after=after)
    assert (decision.id, decision.action, decision.suggestion) == (offered.id, "handoff", "unanswered")
    assert "Question for staff" in mirror["text"] and "✍ write the answer" in buttons(mirror)
    late = press_raw(bot, BOB, prompt, next(iter(buttons(prompt).values())))  # the old buttons, pressed late
    assert late["show_alert"] is True and latest_decision(bot).suggestion == "unanswered"
    bot.run(conversation.expire_offers(SimpleNamespace(services=bot.services, bot=bot.app.bot)))  # once only
    assert [m for m in bot.emulator.messages(BOB.id) if m["message_id"] > told["message_id"]] == []


def test_thumbs_are_stored_changed_once_then_final_and_thumbs_down_reaches_staff(
        bot: BotHarness, answer_everything) -> None:
    reply, mirror, decision = bot.ask(BOB, "What are your opening hours?")
    assert decision.action == "answered" and set(buttons(reply)) == {"👍 Helpful", "👎 Not helpful"}

    before = len(bot.emulator.requests)
    up = bot.press(BOB, reply, button_data(reply, "👍"))
    assert up["text"] == "Thanks! Glad it helped 😊"
    stored = bot.wait_until(lambda store: store.decisions.get(decision.id).customer_feedback == "up"
                            and store.decisions.get(decision.id))
    assert stored.customer_feedback_at and stored.customer_feedback_changes == 0 and stored.status == "pending"
    wait_edit(bot, "editMessageReplyMarkup", BOB.id, reply["message_id"], after=before)
    marked = current(bot, BOB.id, reply["message_id"])
    assert "👍 Helpful ✓" in buttons(marked)
    assert bot.press(BOB, marked, button_data(marked, "👍"))["text"] == "Got it, your rating is already in."

    after, before = bot.cursor(STAFF_CHAT), len(bot.emulator.requests)
    down = bot.press(BOB, marked, button_data(marked, "👎"))
    assert "asked our staff" in down["text"]
    alert = bot.emulator.wait_for_message(STAFF_CHAT, "did not help", after=after)
    assert alert["reply_to_message"]["message_id"] == mirror["message_id"]
    assert bot.emulator.calls("sendMessage")[-1][1].get("disable_notification") is not True  # it rings
    with bot.store() as store:
        final = store.decisions.get(decision.id)
        assert (final.customer_feedback, final.customer_feedback_changes, final.status) == ("down", 1, "pending")
    wait_edit(bot, "editMessageReplyMarkup", BOB.id, reply["message_id"], after=before)
    assert buttons(current(bot, BOB.id, reply["message_id"])) == {}  # final: the buttons are gone

    refused = press_raw(bot, BOB, reply, button_data(reply, "👍"))  # a third tap, from an old client
    assert refused["show_alert"] is True and "final" in refused["text"]
    with bot.store() as store:
        assert store.decisions.get(decision.id).customer_feedback == "down"

    bot.press(MEI, mirror, button_data(mirror, "✅"))  # the mirror's buttons still work
    bot.wait_until(lambda store: store.decisions.get(decision.id).status == "confirmed")


def test_forged_stale_and_other_users_presses_are_refused_and_change_nothing(
        bot: BotHarness, answer_everything) -> None:
    reply, _, decision = bot.ask(ALICE, "Do you deliver?")
    up = button_data(reply, "👍")
    other = press_raw(bot, EVE, reply, up)  # another user (a modified client) pressing Alice's button
    assert other["show_alert"] is True and other["text"] == "This button isn't for you."
    for data in ("c1:", "c1:x:up", f"c1:{decision.id}:zz", f"c1:{decision.id}:p3", f"c1:{decision.id}:up:1",
                 "c1:0:up", "c1:" + "9" * 70, f"C1:{decision.id}:up"):
        forged = press_raw(bot, ALICE, reply, data)
        assert forged["show_alert"] is True, data
        assert forged["text"] in ("I don't recognise this button.", "Sorry, only staff can use these buttons."), data
    unknown = press_raw(bot, ALICE, reply, "c1:999999:up")
    assert unknown["show_alert"] is True and "used already" in unknown["text"]
    picked = press_raw(bot, ALICE, reply, f"c1:{decision.id}:p0")  # a pick on an answer: no suggestions open
    assert picked["show_alert"] is True and "used already" in picked["text"]
    with bot.store() as store:
        now = store.decisions.get(decision.id)
        assert (now.customer_feedback, now.action, now.label, now.suggestion) == (
            None, "answered", decision.label, None)
        assert [e for e in store.examples.all("faq") if e.source == "customer" and e.decision_id == decision.id] == []
