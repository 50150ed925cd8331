"""Suggested FAQ entries end to end on the emulator: questions staff had to handle → /report with a button per
suggestion → the owner's draft → ✅ → an FAQ entry the next customer is answered from; everyone else, forged and
stale presses refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.emulator import FakeUser
from storage.store import Store
from tests.botkit import ALICE, BOB, BOSS, EVE, MEI, XIAO, BotHarness, bot_settings, buttons, press_raw

pytestmark = pytest.mark.usefixtures("no_bot_errors")

DAN = FakeUser(1005, "Dan", "en")  # asks after the entry was added
ANSWER = "Show your receipt at the counter and we'll give you a parking coupon."
QUESTIONS = ((ALICE, "Do you have parking coupons?"), (BOB, "Where do I get a parking coupon?"),
             (XIAO, "Is parking free with a coupon?"))


@pytest.fixture
def bot(tmp_path: Path, tiny_base: Path) -> Iterator[BotHarness]:
    """Three customers asked about parking coupons (handed off: the tiny model is never sure); staff answered one.

    The tiny random model embeds every text almost alike, so the three are one cluster.
    """
    with BotHarness(bot_settings(tmp_path, tiny_base)) as harness:
        for number, (user, text) in enumerate(QUESTIONS):
            reply, mirror, decision = harness.ask(user, text)
            assert decision.action == "handoff"
            if number == 0:
                harness.emulator.reply_to(MEI, mirror, ANSWER)
                harness.emulator.wait_for_message(user.id, "parking coupon", after=reply["message_id"])
        yield harness


def report_with_button(bot: BotHarness) -> tuple[dict, str]:
    """/report as the owner: the report message and its one suggestion button's data."""
    report = bot.command(BOSS, "report")
    assert "1. 3 customers asked about “" in report["text"] and f"staff answered: “{ANSWER}”" in report["text"]
    [(label, data)] = buttons(report).items()
    assert label.startswith("💡 1. ") and data.startswith("sg1:") and data.endswith(":1:d")
    return report, data


def staff_keys(store: Store) -> list[str]:
    """The FAQ entries staff (and owners) made, not the shop's seeded ones."""
    return [key for key in store.faq.keys() if key.startswith("staff-")]  # noqa: SIM118 - a query, not a dict view


def wait_for_edit(bot: BotHarness, chat_id: int, message_id: int, contains: str, timeout: float = 20) -> dict:
    """The message once an edit has put `contains` into it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = next(m for m in bot.emulator.messages(chat_id) if m["message_id"] == message_id)
        if contains in message["text"]:
            return message
        time.sleep(0.05)
    raise TimeoutError(f"message {message_id} never contained {contains!r}")


def test_the_owner_turns_a_suggestion_into_an_faq_entry_the_next_customer_gets(bot: BotHarness) -> None:
    report, data = report_with_button(bot)
    assert bot.press(BOSS, report, data).get("text") is None
    draft = bot.emulator.wait_for_message(BOSS.id, "Draft FAQ entry 1", after=report["message_id"])
    question = draft["text"].splitlines()[1].removeprefix("Question: ")
    assert question in dict(QUESTIONS).values() and f"Answer: {ANSWER}" in draft["text"]
    assert list(buttons(draft)) == ["✅ Add it", "✖ Discard"]
    add = buttons(draft)["✅ Add it"]
    bot.press(BOSS, draft, add)
    done = wait_for_edit(bot, BOSS.id, draft["message_id"], "Added as FAQ entry")
    assert done["text"].endswith("Added as FAQ entry staff-0001 (2 new phrasings); the bot answers it from now on. "
                                 "Refine it with /faq staff-0001.")
    assert done["reply_markup"] is None
    with bot.store() as store:
        entry = store.faq.get("staff-0001", "en")
        assert (entry.question, entry.answer, entry.source) == (question, ANSWER, "staff")
        phrasings = {e.text for e in store.examples.all(task="faq") if e.label == "staff-0001"}
        assert phrasings == {text for _, text in QUESTIONS}
        assert staff_keys(store) == ["staff-0001"]  # extended, not a second entry with the same question
    deadline = time.monotonic() + 20  # the FAQ index is rebuilt in the background
    while bot.services.runtime.serving.index.keys.count("staff-0001") < 3:
        assert time.monotonic() < deadline, "the FAQ index was not refreshed"
        time.sleep(0.05)
    assert bot.say(DAN, QUESTIONS[1][1])["text"] == ANSWER  # a customer asking it gets the answer
    assert press_raw(bot, BOSS, draft, add)["text"] == "This suggestion was already handled."  # pressed twice


def test_a_suggestion_is_refused_to_everyone_but_the_owner_and_to_forged_or_stale_data(bot: BotHarness) -> None:
    report, data = report_with_button(bot)
    for user in (EVE, MEI):  # a customer, staff
        answer = bot.press(user, report, data)
        assert answer["text"] == "Only the shop owner can use these buttons." and answer["show_alert"] is True
    tag = data.split(":")[1]
    for forged in ("sg1:", "sg1:zzzzzzzz:1:d", f"sg1:{tag}:1:add", f"sg1:{tag}:01:d", f"sg1:{tag}:1:d:x", "sg1:" + "0" * 60):
        assert press_raw(bot, BOSS, report, forged)["text"] == "This button is not valid."
    assert press_raw(bot, BOSS, report, f"sg1:{tag}:2:d")["text"] == "This button is not valid."  # no suggestion 2
    stale = "This suggestion is from an older report: use the buttons under the latest one."
    assert press_raw(bot, BOSS, report, "sg1:00000000:1:ok")["text"] == stale
    bot.say(DAN, "Can I park for free with a coupon?")  # a newer report has other suggestions
    newer = bot.command(BOSS, "report")
    assert "1. 4 customers asked about" in newer["text"]
    assert bot.press(BOSS, report, data)["text"] == stale  # last report's button
    with bot.store() as store:
        assert staff_keys(store) == ["staff-0001"] and not any(
            e.label == "staff-0001" and e.source == "correction" for e in store.examples.all(task="faq"))
    assert not [m for m in bot.emulator.messages(BOSS.id) if "Draft FAQ entry" in (m.get("text") or "")]
