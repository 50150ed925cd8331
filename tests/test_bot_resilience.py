"""Resilience: Telegram 429 and 5xx retried, errors logged and reported to staff, slow messages block no one.

Uses a stub runtime (same interface as ModelRuntime) to make the model slow or fail on demand.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from serving.prediction import Prediction
from tests.botkit import ALICE, BOB, STAFF_CHAT, XIAO, BotHarness, bot_settings

ANSWER = "We are open 10:00 to 22:00 every day."


class StubRuntime:
    """decide(): the opening-hours answer; "boom" raises; "slow ..." waits for `release`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.slow_started = threading.Event()
        self.serving = SimpleNamespace(version="stub", versions={}, encoder=None)

    def decide(self, text: str) -> Prediction:
        if text == "boom":
            raise RuntimeError("model exploded")
        if text.startswith("slow"):
            self.slow_started.set()
            self.release.wait(20)
        return Prediction("question", "opening_hours", 0.9, True, (("opening_hours", 0.9),), "model", "stub", 0.8)

    def remember(self, text: str, task: str, label: str) -> None:
        """Nothing to remember in a stub."""


@pytest.fixture(scope="module")
def stub() -> StubRuntime:
    return StubRuntime()


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, stub: StubRuntime) -> Iterator[BotHarness]:
    settings = bot_settings(tmp_path_factory.mktemp("resilience"))
    with BotHarness(settings, runtime_factory=lambda s: stub) as harness:
        yield harness


def test_telegram_429_is_retried_after_the_wait(bot: BotHarness) -> None:
    before = len(bot.emulator.calls("sendMessage"))  # the module's bot: other tests wrote to Alice too
    bot.emulator.fail_next("sendMessage", 429, retry_after=1, chat_id=ALICE.id)  # not a late staff mirror
    assert bot.say(ALICE, "When do you open?")["text"] == ANSWER
    failed_then_sent = [p for m, p in bot.emulator.calls("sendMessage")[before:] if p["chat_id"] == ALICE.id]
    assert len(failed_then_sent) == 2 and failed_then_sent[0] == failed_then_sent[1]
    assert bot.take_errors() == []


def test_the_bot_paces_each_chat_instead_of_earning_429s(bot: BotHarness) -> None:
    async def burst() -> None:
        await asyncio.gather(*(bot.app.bot.send_message(STAFF_CHAT, f"burst {n}") for n in range(6)))

    started = time.monotonic()
    bot.run(burst())
    sent = [p for m, p in bot.emulator.calls("sendMessage") if p["text"].startswith("burst")]
    assert len(sent) == 6  # each sent once: no 429 answered and retried
    assert time.monotonic() - started >= 2.5  # 3 at once, then 1/s


def test_network_failures_are_retried(bot: BotHarness) -> None:
    bot.emulator.fail_next("sendMessage", 502, times=2)
    assert bot.say(XIAO, "几点开门").get("text") == "每天 10:00 到 22:00 营业。"
    assert bot.take_errors() == []


def test_an_error_is_logged_and_reported_to_staff(bot: BotHarness, caplog: pytest.LogCaptureFixture) -> None:
    after = bot.cursor(STAFF_CHAT)
    assert bot.say(BOB, "boom")["text"] == "Sorry, something went wrong on my side. Please try again in a moment."
    notice = bot.emulator.wait_for_message(STAFF_CHAT, "hit an error", after=after)
    assert notice["text"] == "⚠ The bot hit an error: RuntimeError: model exploded (details in the log)"
    [error] = bot.take_errors(at_least=1)
    assert isinstance(error, RuntimeError)
    assert any(r.name == "bot.handlers.errors" and r.exc_info for r in caplog.records)


def test_one_slow_message_does_not_hold_up_other_customers(bot: BotHarness, stub: StubRuntime) -> None:
    slow = bot.emulator.send_text(ALICE, "slow: what's in the secret menu?")
    assert stub.slow_started.wait(20)
    assert bot.say(BOB, "opening hours?")["text"] == ANSWER  # answered while Alice's is still thinking
    assert [m for m in bot.emulator.messages(ALICE.id) if m["message_id"] > slow["message_id"]] == []
    stub.release.set()
    assert bot.emulator.wait_for_message(ALICE.id, after=slow["message_id"])["text"] == ANSWER
    assert bot.take_errors() == []
