"""The quiet staff chat end to end: the mirror policy, /review's order and buttons, the daily digest, and the
unpromoted sentiment candidate's pre-selected guess (a candidate-negative rings, the others wait)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.handlers import review
from storage.records import Decision
from tests.botkit import (
    ALICE,
    EVE,
    MEI,
    STAFF_CHAT,
    BotHarness,
    bot_settings,
    button_data,
    buttons,
    linked,
    press_raw,
    publish_refused_sentiment,
)

pytestmark = pytest.mark.usefixtures("no_bot_errors")
QUIET = {"mirror": "policy", "sample_rate": 0.0, "digest_time": ""}


@pytest.fixture
def bot(tmp_path: Path, tiny_base: Path) -> Iterator[BotHarness]:
    with BotHarness(bot_settings(tmp_path, tiny_base, staff=QUIET)) as harness:
        yield harness


def _staff_texts(bot: BotHarness, after: int = 0) -> list[str]:
    return [m.get("text", "") for m in bot.emulator.messages(STAFF_CHAT) if m["message_id"] > after]


def _decision_of(bot: BotHarness, text: str) -> Decision:
    def probe(store):  # type: ignore[no-untyped-def]
        row = store.db.execute("select decisions.id from decisions join messages on messages.id ="
                               " decisions.message_id where messages.text = ?", [text]).fetchone()
        return store.decisions.get(row[0]) if row else None
    return bot.wait_until(probe)


def _waiting(bot: BotHarness, text: str, alternatives: list[tuple[str, float]]) -> int:
    """A pending review decision nobody has seen yet (as the policy leaves a confident one)."""
    with bot.store() as store:
        store.customers.touch(ALICE.id, "en")
        message = store.messages.add(ALICE.id, ALICE.id, int(time.time() * 1000) % 10**9, text)
        return store.decisions.add(message.id, "review", alternatives[0][0], alternatives[0][1], "acknowledged",
                                   alternatives=alternatives).id


def _review(bot: BotHarness, expected: int) -> list[dict]:
    """Send /review as staff; the mirrors it posted (after its intro line), once the bot has stored where each went
    (Telegram shows a mirror before the bot's send of it returns)."""
    after = bot.cursor(STAFF_CHAT)
    bot.command(MEI, "review", chat_id=STAFF_CHAT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        posted = [m for m in bot.emulator.messages(STAFF_CHAT) if m["message_id"] > after and m.get("reply_markup")]
        if len(posted) >= expected:
            ids = [m["message_id"] for m in posted]
            bot.wait_until(lambda store: all(linked(store, i) for i in ids))  # noqa: B023 (used at once)
            return posted
        time.sleep(0.05)
    raise AssertionError(f"/review posted fewer than {expected} mirrors: {_staff_texts(bot, after)}")


def test_policy_mirrors_handoffs_not_confident_decisions(bot: BotHarness) -> None:
    bot.services.runtime.remember("The taro latte was lovely", "review", "positive")
    after = bot.cursor(STAFF_CHAT)
    bot.say(ALICE, "The taro latte was lovely")  # confident (staff's own earlier label): waits for /review
    _reply, _mirror, handoff = bot.ask(ALICE, "Do you deliver to the airport?")  # a handoff: mirrored, ringing
    assert handoff.action == "handoff"
    quiet = _decision_of(bot, "The taro latte was lovely")
    assert quiet.staff_message_id is None and quiet.status == "pending"
    assert not any("taro latte" in text for text in _staff_texts(bot, after))
    _, sent = bot.emulator.wait_for(lambda m, p: m == "sendMessage" and "airport" in p.get("text", ""))
    assert not sent.get("disable_notification")


def test_review_shows_the_queue_in_score_order_and_its_buttons_work(bot: BotHarness) -> None:
    sure = _waiting(bot, "sure one", [("positive", 0.9), ("neutral", 0.05), ("negative", 0.05)])  # margin .85
    close = _waiting(bot, "close one", [("positive", 0.5), ("neutral", 0.45), ("negative", 0.05)])  # .05
    middle = _waiting(bot, "middle one", [("neutral", 0.7), ("positive", 0.2), ("negative", 0.1)])  # .5
    closest = _waiting(bot, "closest one", [("positive", 0.41), ("neutral", 0.4), ("negative", 0.19)])  # .01
    posted = _review(bot, 3)
    assert [m["text"].split("“")[1].split("”")[0] for m in posted] == ["closest one", "close one", "middle one"]
    with bot.store() as store:
        assert [store.decisions.get(d).staff_message_id for d in (closest, close, middle)] == \
            [m["message_id"] for m in posted]
        assert store.decisions.get(sure).staff_message_id is None
    answer = bot.press(MEI, posted[0], button_data(posted[0], "✅"))
    assert answer.get("text") and bot.wait_until(lambda s: s.decisions.get(closest).status == "confirmed")
    bot.press(MEI, posted[1], button_data(posted[1], "❌"))
    bot.emulator.wait_for(lambda m, p: m == "editMessageReplyMarkup" and p["message_id"] == posted[1]["message_id"])
    relabel = bot.staff_message(posted[1]["message_id"])
    bot.press(MEI, relabel, button_data(relabel, "😞"))
    assert bot.wait_until(lambda s: s.decisions.get(close).status == "corrected")
    refused = bot.press(EVE, posted[2], button_data(posted[2], "✅"))  # not staff: refused, nothing changes
    assert refused.get("show_alert")
    with bot.store() as store:
        assert store.decisions.get(middle).status == "pending"
    assert "sure one" in _review(bot, 1)[0]["text"]  # what is left, after the shown ones
    reply = bot.command(MEI, "review", chat_id=STAFF_CHAT)
    assert "Nothing is waiting" in reply["text"]
    assert "only staff" in bot.command(EVE, "review", chat_id=STAFF_CHAT)["text"]


def test_daily_digest_counts_the_waiting_decisions(bot: BotHarness) -> None:
    for n in range(3):
        _waiting(bot, f"waiting {n}", [("positive", 0.8), ("neutral", 0.2)])
    after = bot.cursor(STAFF_CHAT)
    bot.app.job_queue.run_once(review.digest, 0)
    digest = bot.emulator.wait_for_message(STAFF_CHAT, "Daily digest", after=after)
    assert "3 of the bot's decisions are waiting" in digest["text"]


def _publish_candidate(bot: BotHarness, version: str, favoured: str) -> None:
    """A real sentiment adapter that always says `favoured`, refused by the gate and loaded aside by the bot."""
    publish_refused_sentiment(bot.settings, version, favoured)
    bot.run(bot.services.reload_adapters(), timeout=60)


def test_unpromoted_candidate_preselects_its_guess_and_a_negative_rings(bot: BotHarness) -> None:
    _publish_candidate(bot, "s-neg", "negative")
    _reply, mirror, decision = bot.ask(ALICE, "The pearls were hard and cold")
    assert decision.label is None and decision.alternatives[0][0] == "negative"
    assert "unpromoted model" in mirror["text"] and "not passed the gate" in mirror["text"]
    _, sent = bot.emulator.wait_for(lambda m, p: m == "sendMessage" and "pearls were hard" in p.get("text", ""))
    assert not sent.get("disable_notification")  # a candidate-negative rings at once
    forged = press_raw(bot, MEI, mirror, f"v1:{decision.id}:lab:furious")  # not a label: refused
    assert forged.get("show_alert")
    with bot.store() as store:
        assert store.decisions.get(decision.id).status == "pending"
    bot.press(MEI, mirror, button_data(mirror, "✅ negative"))  # one tap confirms the guess
    assert bot.wait_until(lambda s: s.decisions.get(decision.id).status != "pending")
    with bot.store() as store:
        assert [(c.kind, c.new_label) for c in store.corrections.all() if c.decision_id == decision.id] == \
            [("label", "negative")]
    stale = press_raw(bot, MEI, mirror, button_data(mirror, "✅ negative"))  # pressed again: already done
    assert stale.get("show_alert")
    with bot.store() as store:
        assert len([c for c in store.corrections.all() if c.decision_id == decision.id]) == 1

    _publish_candidate(bot, "s-pos", "positive")  # the newest unpromoted one is used
    bot.say(ALICE, "The brown sugar milk was nice")
    quiet = _decision_of(bot, "The brown sugar milk was nice")
    assert quiet.alternatives[0][0] == "positive" and quiet.staff_message_id is None  # waits in the queue
    posted = _review(bot, 1)
    assert "brown sugar" in posted[0]["text"] and "✅ positive" in buttons(posted[0])
