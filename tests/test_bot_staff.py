"""Staff end to end: mirrors, ✅, ❌ + label, ❌ + FAQ pick, negative alerts, who may press, bad button data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import callbacks
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
    linked,
    press_raw,
)

pytestmark = pytest.mark.usefixtures("no_bot_errors")

@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[BotHarness]:
    with BotHarness(bot_settings(tmp_path_factory.mktemp("staff"), tiny_base)) as harness:
        yield harness



def review(bot: BotHarness, user, text: str, label: str):
    """A message the runtime reads as a review with `label` (through the correction memory)."""
    bot.services.runtime.remember(text, "review", label)
    return bot.ask(user, text)


def ask_with_threshold(bot: BotHarness, user, text: str, threshold: float):
    """Ask with the answer threshold set for this one message (0: always answer; > 1: always hand off)."""
    runtime = bot.services.runtime
    saved, runtime.answer_threshold = runtime.answer_threshold, threshold
    try:
        return bot.ask(user, text)
    finally:
        runtime.answer_threshold = saved


def edited(bot: BotHarness, mirror: dict) -> dict:
    bot.emulator.wait_for(lambda m, p: m == "editMessageText" and p["message_id"] == mirror["message_id"])
    return bot.staff_message(mirror["message_id"])


def db_state(bot: BotHarness, decision_id: int) -> tuple:
    with bot.store() as store:
        return (store.decisions.get(decision_id).status, len(store.corrections.all()),
                len(store.examples.all()))


def test_review_acknowledged_mirrored_silently_and_confirmed(bot: BotHarness) -> None:
    reply, mirror, decision = review(bot, ALICE, "The taro milk tea was perfect today", "positive")
    assert reply["text"] == "Thank you for the kind words! See you again at Sweet Drops Bubble Tea 😊"
    assert "Review · positive" in mirror["text"] and "The taro milk tea was perfect today" in mirror["text"]
    [(_, sent)] = [c for c in bot.emulator.calls("sendMessage") if c[1]["chat_id"] == STAFF_CHAT
                   and "The taro milk tea was perfect today" in c[1]["text"]]
    assert sent["disable_notification"] is True  # routine mirrors don't ring

    answer = bot.press(MEI, mirror, callbacks.encode(decision.id, "ok"))
    assert answer["text"] == "Saved ✔"
    after = edited(bot, mirror)
    assert after["text"].endswith("✔ confirmed by Mei") and after["reply_markup"] is None
    with bot.store() as store:
        [correction] = [c for c in store.corrections.all() if c.decision_id == decision.id]
        assert (correction.kind, correction.new_label) == ("confirm", "positive")
        assert store.decisions.get(decision.id).status == "confirmed"
        assert [e.source for e in store.examples.all() if e.decision_id == decision.id] == ["confirmation"]


def test_negative_review_alerts_staff_and_is_relabelled(bot: BotHarness) -> None:
    text = "奶茶是凉的，等了四十分钟"
    reply, mirror, decision = review(bot, XIAO, text, "negative")
    assert reply["text"].startswith("非常抱歉")
    assert mirror["text"].startswith("🚨 Negative review")
    assert f'href="tg://user?id={XIAO.id}"' in mirror["raw_text"]
    [(_, sent)] = [c for c in bot.emulator.calls("sendMessage") if c[1]["chat_id"] == STAFF_CHAT
                   and text in c[1]["text"]]
    assert not sent.get("disable_notification")  # an alert rings

    bot.press(MEI, mirror, button_data(mirror, "❌"))
    bot.emulator.wait_for(lambda m, p: m == "editMessageReplyMarkup" and p["message_id"] == mirror["message_id"])
    menu = bot.staff_message(mirror["message_id"])
    assert list(buttons(menu)) == ["😊 positive", "😐 neutral", "• 😞 negative", "✍ a question: write the answer",
                                   "↩ back"]
    bot.press(MEI, menu, button_data(menu, "😐"))
    assert edited(bot, mirror)["text"].endswith("✔ corrected by Mei: negative → neutral")
    with bot.store() as store:
        [correction] = [c for c in store.corrections.all() if c.decision_id == decision.id]
        assert (correction.kind, correction.old_label, correction.new_label) == ("label", "negative", "neutral")
    assert bot.say(XIAO, text)["text"] == "谢谢您的反馈，我们会继续努力！"  # now read as neutral


def test_without_a_sentiment_model_a_review_rings_and_asks_for_its_label(bot: BotHarness) -> None:
    text = "Waited forty minutes for a lukewarm taro latte"
    reply, mirror, decision = bot.ask(ALICE, text)  # the test bot has no sentiment adapter
    assert decision.kind == "review" and decision.label is None
    assert reply["text"] == "Thanks for your feedback, we'll keep improving!"
    assert mirror["text"].startswith("💬 Review · pick its sentiment (no sentiment model yet")
    [(_, sent)] = [c for c in bot.emulator.calls("sendMessage") if c[1]["chat_id"] == STAFF_CHAT
                   and text in c[1]["text"]]
    assert not sent.get("disable_notification")  # it may be a complaint: it rings
    assert list(buttons(mirror))[:3] == ["😊 positive", "😐 neutral", "😞 negative"]


def test_back_closes_the_correction_menu(bot: BotHarness) -> None:
    _, mirror, decision = review(bot, BOB, "Decent tea, nothing special", "neutral")
    bot.press(MEI, mirror, callbacks.encode(decision.id, "no"))
    bot.emulator.wait_for(lambda m, p: m == "editMessageReplyMarkup" and p["message_id"] == mirror["message_id"])
    bot.press(MEI, bot.staff_message(mirror["message_id"]), callbacks.encode(decision.id, "back"))
    bot.emulator.wait_for(lambda m, p: m == "editMessageReplyMarkup" and p["message_id"] == mirror["message_id"]
                          and "ok" in str(p["reply_markup"]))
    assert set(buttons(bot.staff_message(mirror["message_id"]))) == {"✅ correct", "❌ incorrect"}
    assert db_state(bot, decision.id)[0] == "pending"


def test_wrong_answer_corrected_by_picking_the_next_best_faq_entry(bot: BotHarness) -> None:
    reply, mirror, decision = ask_with_threshold(bot, ALICE, "How much is a bubble milk tea?", 0.0)
    assert decision.action == "answered" and decision.label == "price_milk_tea"
    bot.press(MEI, mirror, callbacks.encode(decision.id, "no"))
    bot.emulator.wait_for(lambda m, p: m == "editMessageReplyMarkup" and p["message_id"] == mirror["message_id"])
    menu = bot.staff_message(mirror["message_id"])
    faq_buttons = [text for text in buttons(menu) if text.startswith("📖")]
    assert len(faq_buttons) == 2 and not any("bubble milk tea" in text for text in faq_buttons)
    assert "✍ write the answer" in buttons(menu)

    data = button_data(menu, "📖")
    key = decision.alternatives[callbacks.decode(data).faq_index][0]
    bot.press(MEI, menu, data)
    with bot.store() as store:
        expected = store.faq.get(key, "en").answer
    better = bot.emulator.wait_for_message(ALICE.id, expected, after=reply["message_id"])
    assert better["text"] == f"Here is a better answer: {expected}"
    assert "✔ corrected by Mei" in edited(bot, mirror)["text"]
    with bot.store() as store:
        [correction] = [c for c in store.corrections.all() if c.decision_id == decision.id]
        assert (correction.kind, correction.old_label, correction.new_label) == ("faq", "price_milk_tea", key)


def test_a_review_taken_for_a_question_is_marked_as_a_review(bot: BotHarness) -> None:
    text = "The pearls were rock hard again, how is that ok"
    bot.services.runtime.remember(text, "question", "price_milk_tea")  # the bot answers it as a question
    reply, mirror, decision = bot.ask(BOB, text)
    assert decision.kind == "question" and decision.action == "answered"
    bot.press(MEI, mirror, callbacks.encode(decision.id, "no"))
    bot.emulator.wait_for(lambda m, p: m == "editMessageReplyMarkup" and p["message_id"] == mirror["message_id"])
    menu = bot.staff_message(mirror["message_id"])
    assert [t for t in buttons(menu) if "review" in t] == [
        "😊 review: positive", "😐 review: neutral", "😞 review: negative"]

    bot.press(MEI, menu, button_data(menu, "😞 review"))
    sorry = bot.emulator.wait_for_message(BOB.id, "We're really sorry", after=reply["message_id"])
    assert sorry["text"].startswith("We're really sorry about your experience")
    assert edited(bot, mirror)["text"].endswith("✔ Mei: a review (negative), the customer got the review reply")
    with bot.store() as store:
        [correction] = [c for c in store.corrections.all() if c.decision_id == decision.id]
        assert (correction.kind, correction.old_label, correction.new_label) == ("label", "price_milk_tea", "negative")
        [example] = [e for e in store.examples.all() if e.decision_id == decision.id]
        assert (example.task, example.label) == ("sentiment", "negative")  # teaches sentiment and the router
    assert bot.say(BOB, text)["text"].startswith("We're really sorry")  # at once: now read as a negative review


def test_a_handed_off_question_offers_the_review_switch_too(bot: BotHarness) -> None:
    _, mirror, decision = ask_with_threshold(bot, ALICE, "Is the new mango one any good?", 1.01)
    assert decision.action == "handoff"
    assert [t for t in buttons(mirror) if "review" in t] == [
        "😊 review: positive", "😐 review: neutral", "😞 review: negative"]


def test_non_staff_press_is_refused_and_changes_nothing(bot: BotHarness) -> None:
    _, mirror, decision = review(bot, ALICE, "Lovely staff, quick service", "positive")
    before = db_state(bot, decision.id)
    for data in (callbacks.encode(decision.id, "ok"), callbacks.encode(decision.id, "no")):
        answer = bot.press(EVE, mirror, data)
        assert answer == {"callback_query_id": answer["callback_query_id"],
                          "text": "Sorry, only staff can use these buttons.", "show_alert": True}
    assert db_state(bot, decision.id) == before
    assert bot.staff_message(mirror["message_id"])["history"] == []  # never edited
    assert not [c for c in bot.emulator.calls() if c[0].startswith("edit")
                and c[1].get("message_id") == mirror["message_id"]]


def test_forged_truncated_and_stale_button_data_get_a_clear_answer(bot: BotHarness) -> None:
    _, mirror, decision = review(bot, BOB, "Too sweet for me", "negative")
    _, other_mirror, other = review(bot, BOB, "Not sweet enough", "negative")
    before = db_state(bot, decision.id)
    cases = {
        "garbage": "This button isn't recognised.",
        f"v1:{decision.id}:o": "This button isn't recognised.",  # truncated action
        f"v1:{decision.id}": "This button isn't recognised.",  # truncated
        f"v1:{decision.id}:lab:happy": "This button isn't recognised.",  # unknown label
        f"v1:{decision.id}:ok:extra": "This button isn't recognised.",
        f"v1:{decision.id}:" + "x" * 80: "This button isn't recognised.",  # over 64 bytes
        f"v0:{decision.id}:ok": "This button is out of date; please use the latest message.",
        "v1:999999:ok": "I can't find this item any more (it may have been deleted).",
        f"v1:{other.id}:ok": "This button doesn't belong to this message.",
        f"v1:{decision.id}:faq:0": "That action doesn't apply to this message.",
    }
    for data, expected in cases.items():
        assert press_raw(bot, MEI, mirror, data)["text"] == expected, data
    assert press_raw(bot, MEI, mirror, None)["text"] == "This button isn't recognised."
    assert db_state(bot, decision.id) == before
    bot.press(MEI, other_mirror, callbacks.encode(other.id, "ok"))
    edited(bot, other_mirror)
    old_press = press_raw(bot, MEI, bot.staff_message(other_mirror["message_id"]), callbacks.encode(other.id, "no"))
    assert old_press["text"] == "This one has already been handled."


def test_a_staff_reply_to_a_review_is_passed_on_to_the_customer(bot: BotHarness) -> None:
    reply, mirror, decision = review(bot, XIAO, "珍珠太硬了", "negative")
    sent = bot.emulator.reply_to(MEI, mirror, "非常抱歉！下次来店里送您一杯。")
    passed = bot.emulator.wait_for_message(XIAO.id, "送您一杯", after=reply["message_id"])
    assert passed["text"] == "店员回复：非常抱歉！下次来店里送您一杯。"
    bot.emulator.wait_for_message(STAFF_CHAT, "Sent to the customer", after=sent["message_id"])
    assert db_state(bot, decision.id)[0] == "pending"  # still waiting for ✅/❌: a reply teaches nothing


def test_a_press_or_reply_before_the_bot_hears_its_mirror_was_sent_still_works(bot: BotHarness) -> None:
    """Telegram shows a message before the bot's send of it returns: staff can press or reply in that moment."""
    cases = {"press": (BOB, "The taro was far too sweet today"), "reply": (EVE, "The straw broke in my cup today")}
    after = bot.cursor(STAFF_CHAT)
    bot.emulator.delay_next("sendMessage", 3.0, times=4, effect_first=True)  # both replies and both mirrors
    for customer, text in cases.values():
        bot.services.runtime.remember(text, "review", "negative")
        bot.emulator.send_text(customer, text)
    mirrors = {case: bot.emulator.wait_for_message(STAFF_CHAT, text, after=after) for case, (_, text) in cases.items()}
    reply_sent = bot.emulator.reply_to(MEI, mirrors["reply"], "So sorry, a new straw is on us next time.")
    assert bot.press(MEI, mirrors["press"], button_data(mirrors["press"], "✅"))["text"] == "Saved ✔"
    assert "confirmed by Mei" in edited(bot, mirrors["press"])["text"]
    bot.emulator.wait_for_message(STAFF_CHAT, "Sent to the customer", after=reply_sent["message_id"])
    bot.emulator.wait_for_message(EVE.id, "a new straw is on us")
    with bot.store() as store:
        for case, mirror in mirrors.items():
            decision = linked(store, mirror["message_id"])
            assert decision is not None, case  # linked once, to its own mirror
            assert decision.status == ("confirmed" if case == "press" else "pending"), case


def test_a_late_callback_answer_does_not_stop_the_correction(bot: BotHarness) -> None:
    _, mirror, decision = ask_with_threshold(bot, BOB, "Do you have oat milk for the late answer test?", 2.0)
    bot.emulator.callback_answer_window_s = 0.0  # every answer comes too late
    try:
        bot.press(MEI, mirror, button_data(mirror, "📖"))
        after = edited(bot, mirror)
    finally:
        bot.emulator.callback_answer_window_s = 15.0
    assert "corrected by Mei" in after["text"] and after["reply_markup"] is None
    assert db_state(bot, decision.id)[0] == "corrected"
    methods = [(m, p.get("chat_id")) for m, p in bot.emulator.calls() if m != "getUpdates"]
    answered = max(i for i, (m, _) in enumerate(methods) if m == "answerCallbackQuery")
    told = max(i for i, call in enumerate(methods) if call == ("sendMessage", BOB.id))
    assert answered < told  # the press is answered before the slower message to the customer


@pytest.mark.parametrize("action", ["ok", "no", "ans"])
def test_a_press_on_an_inaccessible_mirror_is_answered_and_changes_nothing(bot: BotHarness, action: str) -> None:
    if action == "ans":
        _, mirror, decision = ask_with_threshold(bot, ALICE, "An old question nobody handled", 2.0)
    else:
        _, mirror, decision = review(bot, ALICE, f"An old review nobody checked ({action})", "positive")
    before = len(bot.emulator.requests)
    query = bot.emulator.press_inaccessible(MEI, mirror, callbacks.encode(decision.id, action))
    _, answer = bot.emulator.wait_for(lambda m, p: m == "answerCallbackQuery" and p["callback_query_id"] == query["id"],
                                      after=before)
    assert answer["show_alert"] is True and "too old" in answer["text"]
    assert bot.staff_message(mirror["message_id"])["text"] == mirror["text"]
    assert buttons(bot.staff_message(mirror["message_id"])) == buttons(mirror)
    assert db_state(bot, decision.id)[0] == "pending"
