"""Customers end to end (real PTB, emulator, real load_runtime on the tiny model): greetings, answers,
handoff answered by staff and learnt, non-text messages, odd texts, /forget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from telegram.error import Forbidden

from bot.limits import MAX_TEXT, utf16_len
from tests.botkit import ALICE, BOB, MEI, STAFF_CHAT, XIAO, BotHarness, bot_settings, button_data, buttons

pytestmark = pytest.mark.usefixtures("no_bot_errors")

@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[BotHarness]:
    with BotHarness(bot_settings(tmp_path_factory.mktemp("customer"), tiny_base)) as harness:
        yield harness


def test_start_and_help_greet_in_the_customers_language(bot: BotHarness) -> None:
    assert "Sweet Drops Bubble Tea" in bot.command(ALICE, "start")["text"]
    assert "甜滋滋奶茶店" in bot.command(XIAO, "start")["text"]
    assert "/forget" in bot.command(BOB, "help")["text"]  # no language_code: the default (en)
    assert "Sweet Drops" in bot.command(ALICE, "menu")["text"]  # unknown command: help
    menus = {(c[1].get("language_code"), c[1].get("scope", {}).get("type")): c[1]["commands"]
             for c in bot.emulator.calls("setMyCommands")}
    assert {c["command"] for c in menus[(None, "default")]} == {"start", "help", "forget", "optout", "optin"}
    assert any(c["description"] == "帮助" for c in menus[("zh", "default")])


def test_question_is_answered_from_the_faq_in_the_customers_language(bot: BotHarness, answer_everything) -> None:
    reply, mirror, decision = bot.ask(XIAO, "你们几点开门？")
    assert reply["text"] == "每天 10:00 到 22:00 营业。"
    assert (decision.kind, decision.label, decision.action) == ("question", "opening_hours", "answered")
    assert "Question · answered" in mirror["text"] and "小美" in mirror["text"]
    assert set(buttons(mirror)) == {"✅ correct", "❌ incorrect"}
    english = bot.say(ALICE, "What are your opening hours?")
    assert english["text"] == "We are open 10:00 to 22:00 every day."


def test_handoff_answered_by_a_staff_reply_is_learnt_for_next_time(bot: BotHarness) -> None:
    question = "Do you sell matcha cheesecake?"
    reply, mirror, decision = bot.ask(ALICE, question)
    assert "passed it to our staff" in reply["text"]
    assert decision.action == "handoff" and "Question for staff" in mirror["text"]
    assert "✍ write the answer" in buttons(mirror) and any(b.startswith("📖") for b in buttons(mirror))
    assert bot.emulator.calls("sendMessage")[-1][1].get("disable_notification") is not True  # it rings

    staff_reply = bot.emulator.reply_to(MEI, mirror, "Yes! Matcha cheesecake, 25 yuan a slice.")
    answer = bot.emulator.wait_for_message(ALICE.id, "Matcha cheesecake", after=reply["message_id"])
    assert answer["text"] == "From our staff: Yes! Matcha cheesecake, 25 yuan a slice."
    assert answer["reply_to_message"]["text"] == question  # quotes the customer's question
    bot.emulator.wait_for(lambda m, p: m == "editMessageText" and p["message_id"] == mirror["message_id"])
    edited = bot.staff_message(mirror["message_id"])
    assert "answered by Mei" in edited["text"] and edited["reply_markup"] is None
    assert staff_reply["message_id"] > mirror["message_id"]

    with bot.store() as store:
        [correction] = [c for c in store.corrections.all() if c.decision_id == decision.id]
        assert correction.kind == "answer" and correction.staff_id == MEI.id
        entry = store.faq.get(correction.new_label, "en")
        assert entry.source == "staff" and entry.answer == "Yes! Matcha cheesecake, 25 yuan a slice."
        assert store.decisions.get(decision.id).status == "answered_by_staff"

    again = bot.say(BOB, question)  # another customer, same words: answered at once now
    assert again["text"] == "Yes! Matcha cheesecake, 25 yuan a slice."


def test_handoff_answered_by_picking_an_faq_entry(bot: BotHarness) -> None:
    question = "外卖能送到学校宿舍吗"
    reply, mirror, decision = bot.ask(XIAO, question)
    assert reply["text"].startswith("这个问题我先转给店员")
    first_key = decision.alternatives[0][0]
    answer_ack = bot.press(MEI, mirror, button_data(mirror, "📖"))
    assert answer_ack.get("show_alert") is not True
    with bot.store() as store:
        expected = store.faq.get(first_key, "zh").answer
    got = bot.emulator.wait_for_message(XIAO.id, expected, after=reply["message_id"])
    assert got["text"] == f"店员回复：{expected}"
    bot.emulator.wait_for(lambda m, p: m == "editMessageText" and p["message_id"] == mirror["message_id"])
    assert "corrected by Mei" in bot.staff_message(mirror["message_id"])["text"]
    with bot.store() as store:
        [correction] = [c for c in store.corrections.all() if c.decision_id == decision.id]
        assert (correction.kind, correction.new_label) == ("faq", first_key)
    assert bot.say(XIAO, question)["text"] == expected  # correction memory: right at once next time


@pytest.mark.parametrize("send", ["send_sticker", "send_photo", "send_voice"])
def test_non_text_messages_get_a_short_polite_reply(bot: BotHarness, send: str) -> None:
    sent = getattr(bot.emulator, send)(XIAO)
    reply = bot.emulator.wait_for_message(XIAO.id, after=sent["message_id"])
    assert "文字" in reply["text"]


@pytest.mark.parametrize("text", ["   ", "x" * 4096, "好" * 4096, "🧋" * 2048])  # 🧋: 2 UTF-16 units
def test_blank_and_maximum_length_texts_are_handled(bot: BotHarness, text: str) -> None:
    after = bot.cursor(STAFF_CHAT)
    reply = bot.say(BOB, text)
    assert reply["text"]
    mirror = bot.emulator.wait_for_message(STAFF_CHAT, after=after)
    assert utf16_len(mirror["text"]) <= MAX_TEXT


def test_forget_deletes_the_customers_messages(bot: BotHarness) -> None:
    customer = type(ALICE)(1099, "Forgetful", "en")
    _, mirror, _ = bot.ask(customer, "The brown sugar boba was lovely")  # waits until the mirror is stored
    with bot.store() as store:
        assert store.messages.table.count_where("customer_id = ?", [customer.id]) == 1
    assert "deleted the 1 message(s)" in bot.command(customer, "forget")["text"]
    with bot.store() as store:
        assert store.messages.table.count_where("customer_id = ?", [customer.id]) == 0
        assert store.customers.get(customer.id).forgotten_at is not None
    bot.emulator.wait_for(lambda m, p: m == "editMessageText" and p["message_id"] == mirror["message_id"])
    redacted = bot.staff_message(mirror["message_id"])
    assert redacted["text"] == "🗑 Removed: the customer asked us to delete their messages."
    assert "Forgetful" not in redacted["text"] and not redacted.get("reply_markup")
    assert "don't keep any messages" in bot.command(customer, "forget")["text"]


def test_a_customer_who_blocked_the_bot_is_marked_skipped_and_unmarked_when_they_write(bot: BotHarness) -> None:
    customer = type(ALICE)(1097, "Blocker", "en")
    reply, mirror, _ = bot.ask(customer, "Can you keep a table for twelve on Sunday?")
    bot.emulator.block_bot(customer)

    def sends_to_customer() -> int:
        return sum(1 for _, p in bot.emulator.calls("sendMessage") if p["chat_id"] == customer.id)

    before = bot.cursor(STAFF_CHAT)
    bot.emulator.reply_to(MEI, mirror, "Yes, from 2 pm")  # answers the handoff: Telegram refuses with 403
    bot.emulator.wait_for(lambda m, p: m == "editMessageText" and p["message_id"] == mirror["message_id"])
    assert "blocked the bot" in bot.staff_message(mirror["message_id"])["text"]
    with bot.store() as store:
        assert store.customers.get(customer.id).blocked_at is not None
    tried = sends_to_customer()

    bot.emulator.reply_to(MEI, mirror, "See you on Sunday")  # a follow-up: skipped, not tried again
    notice = bot.emulator.wait_for_message(STAFF_CHAT, "blocked the bot", after=before)
    assert "could not be delivered" in notice["text"] and sends_to_customer() == tried

    assert bot.say(customer, "Sorry, I blocked you by mistake")["text"]  # writing again unblocks the bot
    with bot.store() as store:
        assert store.customers.get(customer.id).blocked_at is None
    after = bot.cursor(STAFF_CHAT)
    bot.emulator.reply_to(MEI, mirror, "No problem!")
    assert bot.emulator.wait_for_message(STAFF_CHAT, "Sent to the customer", after=after)
    assert bot.emulator.wait_for_message(customer.id, "No problem!", after=reply["message_id"])


def test_an_opted_out_customer_is_mirrored_only_when_staff_must_act_and_never_learnt_from(bot: BotHarness) -> None:
    customer = type(ALICE)(1098, "Private", "en")
    runtime = bot.services.runtime
    assert "no longer be used to train the bot" in bot.command(customer, "optout")["text"]
    assert "/optout" in bot.command(customer, "help")["text"] and "/optout" in bot.command(XIAO, "help")["text"]
    runtime.remember("When do you open on Sundays?", "question", "opening_hours")  # answered at once
    runtime.remember("Lovely taro tea, thanks", "review", "positive")
    runtime.remember("The pearls were stale", "review", "negative")
    after = bot.cursor(STAFF_CHAT)
    assert bot.say(customer, "When do you open on Sundays?")["text"] == "We are open 10:00 to 22:00 every day."
    assert bot.say(customer, "Lovely taro tea, thanks")["text"].startswith("Thank you")
    bot.say(customer, "The pearls were stale")
    negative, _ = bot.wait_mirror("The pearls were stale", after=after)  # the manager follows up on complaints
    saved, runtime.answer_threshold = runtime.answer_threshold, 2.0  # the model hands everything off
    try:
        reply, handoff, _ = bot.ask(customer, "Do you sell durian snow ice?")  # staff must see what to answer
        staff = [m["text"] for m in bot.emulator.messages(STAFF_CHAT)  # a late mirror of another test's may come
                 if m["message_id"] > after and f"From: {customer.first_name}" in m["text"]]
        assert staff == [negative["text"], handoff["text"]]  # no routine mirrors: the answer, the positive review
        bot.emulator.reply_to(MEI, handoff, "No, sorry: mango snow ice only.")
        answer = bot.emulator.wait_for_message(customer.id, "mango snow ice", after=reply["message_id"])
        assert answer["text"] == "From our staff: No, sorry: mango snow ice only."
        with bot.store() as store:
            texts = {e.text for e in store.examples.all()} | {e.question for e in store.faq.all()}
        assert "Do you sell durian snow ice?" not in texts  # neither a training example nor a new FAQ entry
        assert "passed it to our staff" in bot.say(customer, "Do you sell durian snow ice?")["text"]  # no memory
    finally:
        runtime.answer_threshold = saved
    assert "may help improve the bot" in bot.command(customer, "optin")["text"]
    after = bot.cursor(STAFF_CHAT)
    bot.say(customer, "Lovely taro tea, thanks")
    bot.wait_mirror("Lovely taro tea, thanks", after=after)  # mirrored as usual again


def test_a_customer_who_blocks_the_bot_before_its_reply_is_marked_not_reported_as_an_error(bot: BotHarness) -> None:
    customer = type(ALICE)(1096, "Quick blocker", "en")
    bot.say(customer, "Hello")
    after = bot.cursor(STAFF_CHAT)
    bot.emulator.fail_next("sendMessage", 403, description="Forbidden: bot was blocked by the user",
                           chat_id=customer.id)  # not a late staff mirror of an earlier test's message
    bot.emulator.send_text(customer, "The oolong was nice today")  # blocked between writing and the reply
    assert isinstance(bot.take_errors(at_least=1)[0], Forbidden)
    with bot.store() as store:
        assert store.customers.get(customer.id).blocked_at is not None
    bot.wait_mirror("The oolong was nice today", after=after)  # staff still see the review
    staff = [m["text"] for m in bot.emulator.messages(STAFF_CHAT) if m["message_id"] > after]
    assert not any("Forbidden" in text for text in staff), staff  # not an error notice: a customer's choice


def test_blocking_and_unblocking_the_bot_is_known_from_telegrams_chat_member_update(bot: BotHarness) -> None:
    stranger = type(ALICE)(1094, "Never wrote", "en")
    bot.emulator.block_bot(stranger)  # nothing stored about them: nothing to mark, and no error
    customer = type(ALICE)(1095, "Blocks early", "en")
    bot.say(customer, "Hello")
    bot.emulator.block_bot(customer)  # Telegram tells the bot at once (my_chat_member: kicked)
    bot.wait_until(lambda store: store.customers.get(customer.id).blocked_at is not None)
    bot.emulator.unblock_bot(customer)  # and when they restart it (member)
    bot.wait_until(lambda store: store.customers.get(customer.id).blocked_at is None)
