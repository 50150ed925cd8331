"""Owner commands end to end: refused to everyone else; /status, /retrain, /rollback, /report for owners."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import bot.services as bot_services
from tests.botkit import ALICE, BOSS, MEI, STAFF_CHAT, BotHarness, bot_settings, publish_promoted

OWNER_COMMANDS = ("status", "retrain", "rollback", "report")


pytestmark = pytest.mark.usefixtures("no_bot_errors")

@pytest.fixture
def bot(tmp_path: Path, tiny_base: Path) -> Iterator[BotHarness]:
    """A fresh bot per test: the tests change adapters, runs and the owner's chat."""
    with BotHarness(bot_settings(tmp_path, tiny_base)) as harness:
        yield harness



@pytest.fixture
def fake_training(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Replace the training child process: set "result", optionally block on "release"."""
    import training.pipeline

    calls: dict = {"triggers": [], "result": {"status": "refused", "reasons": ["sentiment: refused s-1"]}}

    def run_retrain(settings, trigger):
        calls["triggers"].append(trigger)
        if "release" in calls:
            calls["release"].wait(20)
        return calls["result"]

    monkeypatch.setattr(training.pipeline, "run_retrain", run_retrain)
    return calls


@pytest.mark.parametrize("user", [ALICE, MEI], ids=["customer", "staff"])
def test_owner_commands_are_refused_to_everyone_else(bot: BotHarness, user, fake_training: dict) -> None:
    for command in OWNER_COMMANDS:
        assert bot.command(user, command)["text"] == "Sorry, only the shop owner can use this command."
    sent = bot.emulator.send_command(user, "status", chat_id=STAFF_CHAT)  # not in the staff chat either
    bot.emulator.wait_for_message(STAFF_CHAT, "only the shop owner", after=sent["message_id"])
    assert fake_training["triggers"] == []


def test_status_shows_models_corrections_and_next_retrain(bot: BotHarness) -> None:
    text = bot.command(BOSS, "status")["text"]
    assert "sentiment model: base model" in text and "FAQ model: base model" in text
    assert "Serving: base" in text
    assert "staff corrections so far: 0" in text
    assert "Next scheduled retrain: Sun" in text and "03:00 (Asia/Shanghai)" in text


def test_retrain_runs_in_the_background_and_reports_back(bot: BotHarness, fake_training: dict) -> None:
    fake_training["release"] = threading.Event()
    started = bot.command(BOSS, "retrain")
    assert started["text"].startswith("⏳ Retraining started")
    assert bot.command(BOSS, "retrain")["text"] == "A retrain is already running; please wait for it to finish."
    assert "A retrain is running" in bot.command(BOSS, "status")["text"]  # the bot keeps answering meanwhile
    fake_training["release"].set()
    done = bot.emulator.wait_for_message(BOSS.id, "Retrain finished", after=started["message_id"])
    assert done["text"] == "Retrain finished: refused\nsentiment: refused s-1"
    assert fake_training["triggers"] == ["manual"]


def test_promotion_swaps_in_the_new_adapters(bot: BotHarness, fake_training: dict) -> None:
    fake_training["result"] = {"status": "promoted", "reasons": ["faq: promoted f-2"]}
    before = bot.services.runtime.serving
    started = bot.command(BOSS, "retrain")
    done = bot.emulator.wait_for_message(BOSS.id, "Retrain finished", after=started["message_id"])
    assert done["text"] == "Retrain finished: promoted\nfaq: promoted f-2\nNow serving: base"
    assert bot.services.runtime.serving is not before  # reloaded from the registry and swapped


def test_rollback_with_nothing_to_roll_back(bot: BotHarness) -> None:
    text = bot.command(BOSS, "rollback")["text"]
    assert "sentiment model: nothing to roll back" in text and "FAQ model: nothing to roll back" in text
    assert bot.command(BOSS, "rollback", "everything")["text"].startswith("Usage: /rollback")


def test_rollback_restores_the_previous_adapter(bot: BotHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    publish_promoted(bot, "sentiment", ("sentiment-old", "sentiment-new"))
    serving = bot.services.runtime.serving
    monkeypatch.setattr(bot_services, "_active_serving", lambda settings, encoder: serving)  # fake folders
    assert "sentiment model: sentiment-new (accuracy 90.0%)" in bot.command(BOSS, "status")["text"]
    text = bot.command(BOSS, "rollback", "sentiment")["text"]
    assert text.splitlines() == ["• sentiment model: rolled back to sentiment-old", "Serving: base"]
    with bot.store() as store:
        assert store.adapters.active("sentiment").version == "sentiment-old"


def test_report_summarises_the_week(bot: BotHarness) -> None:
    bot.say(ALICE, "Is the shop open on holidays?")
    text = bot.command(BOSS, "report")["text"]
    assert "Sweet Drops Bubble Tea weekly report" in text
    assert "Questions: " in text and "handed to staff" in text and "Models:" in text
