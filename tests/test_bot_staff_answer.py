""""✍ write the answer" end to end: typed answer, /cancel, ✖, timeout, replying to another mirror meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import callbacks
from tests.botkit import ALICE, BOB, MEI, STAFF_CHAT, XIAO, BotHarness, bot_settings, buttons

TIMEOUT_S = 3.0


pytestmark = pytest.mark.usefixtures("no_bot_errors")

@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[BotHarness]:
    settings = bot_settings(tmp_path_factory.mktemp("answer"), tiny_base)
    with BotHarness(settings, answer_timeout_s=TIMEOUT_S) as harness:
        yield harness



def start_writing(bot: BotHarness, mirror: dict, decision_id: int) -> dict:
    """Press ✍ as Mei; return the ForceReply prompt."""
    after = bot.cursor(STAFF_CHAT)
    bot.press(MEI, mirror, callbacks.encode(decision_id, "ans"))
    prompt = bot.emulator.wait_for_message(STAFF_CHAT, "type the answer", after=after)
    assert prompt["reply_markup"]["force_reply"] is True and prompt["reply_markup"]["selective"] is True
    assert list(buttons(bot.staff_message(mirror["message_id"]))) == ["✖ cancel"]
    return prompt


def test_typed_answer_reaches_the_customer_and_becomes_an_faq_entry(bot: BotHarness) -> None:
    question = "Can I bring my dog inside?"
    reply, mirror, decision = bot.ask(ALICE, question)
    prompt = start_writing(bot, mirror, decision.id)
    bot.emulator.reply_to(MEI, prompt, "Dogs are welcome on the terrace 🐶")
    answer = bot.emulator.wait_for_message(ALICE.id, "terrace", after=reply["message_id"])
    assert answer["text"] == "From our staff: Dogs are welcome on the terrace 🐶"
    bot.emulator.wait_for(lambda m, p: m == "deleteMessage" and p["message_id"] == prompt["message_id"])
    final = bot.staff_message(mirror["message_id"])
    assert final["text"].endswith("✔ answered by Mei: Dogs are welcome on the terrace 🐶")
    assert final["reply_markup"] is None
    with bot.store() as store:
        [correction] = [c for c in store.corrections.all() if c.decision_id == decision.id]
        assert correction.kind == "answer" and correction.answer_text == "Dogs are welcome on the terrace 🐶"
        assert store.faq.get(correction.new_label, "en").question == question
    assert bot.say(BOB, question)["text"] == "Dogs are welcome on the terrace 🐶"


def test_a_question_taken_for_a_review_is_answered_and_learnt(bot: BotHarness) -> None:
    text = "delivery to the office tower maybe"
    bot.services.runtime.remember(text, "review", "neutral")  # the bot acknowledges it as a review
    reply, mirror, decision = bot.ask(BOB, text)
    assert decision.kind == "review" and reply["text"].startswith("Thanks for your feedback")
    bot.press(MEI, mirror, callbacks.encode(decision.id, "no"))
    bot.emulator.wait_for(lambda m, p: m == "editMessageReplyMarkup" and p["message_id"] == mirror["message_id"])
    assert "✍ a question: write the answer" in buttons(bot.staff_message(mirror["message_id"]))
    prompt = start_writing(bot, bot.staff_message(mirror["message_id"]), decision.id)
    bot.emulator.reply_to(MEI, prompt, "We deliver within 3 km, order by phone")
    answer = bot.emulator.wait_for_message(BOB.id, "3 km", after=reply["message_id"])
    assert answer["text"] == "From our staff: We deliver within 3 km, order by phone"
    with bot.store() as store:
        [example] = [e for e in store.examples.all() if e.decision_id == decision.id]
        assert example.task == "faq"  # a question after all: teaches FAQ retrieval and the router
    assert bot.say(ALICE, text)["text"] == "We deliver within 3 km, order by phone"  # at once, from memory


@pytest.mark.parametrize("how", ["command", "button"])
def test_cancel_puts_the_buttons_back_and_stores_nothing(bot: BotHarness, how: str) -> None:
    _, mirror, decision = bot.ask(XIAO, f"可以带自己的杯子吗？({how})")
    start_writing(bot, mirror, decision.id)
    if how == "command":
        sent = bot.emulator.send_command(MEI, "cancel", chat_id=STAFF_CHAT)
        bot.emulator.wait_for_message(STAFF_CHAT, "Cancelled.", after=sent["message_id"])
    else:
        assert bot.press(MEI, bot.staff_message(mirror["message_id"]),
                         callbacks.encode(decision.id, "x"))["text"] == "Cancelled."
    bot.emulator.wait_for(lambda m, p: m == "editMessageReplyMarkup" and p["message_id"] == mirror["message_id"]
                          and "ans" in str(p["reply_markup"]))
    assert "✍ write the answer" in buttons(bot.staff_message(mirror["message_id"]))
    customer_cursor, staff_cursor = bot.cursor(XIAO.id), bot.cursor(STAFF_CHAT)
    bot.emulator.send_text(MEI, "lunch anyone?", chat_id=STAFF_CHAT)  # not an answer any more
    settle(bot)
    with bot.store() as store:
        assert store.decisions.get(decision.id).status == "pending"
        assert not [c for c in store.corrections.all() if c.decision_id == decision.id]
    assert (bot.cursor(XIAO.id), bot.cursor(STAFF_CHAT)) == (customer_cursor, staff_cursor)


def test_writing_times_out_and_puts_the_buttons_back(bot: BotHarness) -> None:
    _, mirror, decision = bot.ask(BOB, "Do you have oat milk?")
    prompt = start_writing(bot, mirror, decision.id)
    notice = bot.emulator.wait_for_message(STAFF_CHAT, "No answer from Mei", after=prompt["message_id"],
                                           timeout=TIMEOUT_S + 15)
    assert "Press ✍ again when ready." in notice["text"]
    assert "✍ write the answer" in buttons(bot.staff_message(mirror["message_id"]))
    assert db_state_pending(bot, decision.id)


def test_replying_to_another_mirror_while_writing_answers_that_one(bot: BotHarness) -> None:
    reply_a, mirror_a, first = bot.ask(ALICE, "Is there wifi?")
    reply_b, mirror_b, second = bot.ask(BOB, "Can I pay by card?")
    start_writing(bot, mirror_a, first.id)
    bot.emulator.reply_to(MEI, mirror_b, "Yes, all cards and WeChat Pay.")
    bot.emulator.wait_for_message(BOB.id, "all cards", after=reply_b["message_id"])
    sent = bot.emulator.send_text(MEI, "Yes, the password is on the receipt.", chat_id=STAFF_CHAT)
    bot.emulator.wait_for_message(ALICE.id, "password", after=reply_a["message_id"])
    assert sent["message_id"] > 0
    with bot.store() as store:
        assert store.decisions.get(first.id).status == "answered_by_staff"
        assert store.decisions.get(second.id).status == "answered_by_staff"


def settle(bot: BotHarness) -> None:
    """Wait until the bot has fetched every update and had time to handle it."""
    deadline = time.monotonic() + 10
    while bot.emulator.pending_updates() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)


def db_state_pending(bot: BotHarness, decision_id: int) -> bool:
    with bot.store() as store:
        return store.decisions.get(decision_id).status == "pending"


def test_a_prompt_that_cannot_be_sent_keeps_the_buttons_and_says_why(bot: BotHarness) -> None:
    _, mirror, decision = bot.ask(BOB, "Can I pay with a foreign card?")
    bot.emulator.fail_next("sendMessage", status=400,
                           description="Bad Request: not enough rights to send text messages to the chat")
    answer = bot.press(MEI, mirror, callbacks.encode(decision.id, "ans"))
    assert answer["show_alert"] is True and "not enough rights" in answer["text"].lower()
    assert buttons(bot.staff_message(mirror["message_id"])) == buttons(mirror)
    with bot.store() as store:
        assert store.decisions.get(decision.id).status == "pending"
    start_writing(bot, mirror, decision.id)  # pressing ✍ again works
    after = bot.cursor(STAFF_CHAT)
    bot.emulator.send_command(MEI, "cancel", chat_id=STAFF_CHAT)
    bot.emulator.wait_for_message(STAFF_CHAT, "Cancelled", after=after)
