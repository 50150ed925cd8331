"""Human takeover and business hours end to end (real PTB, emulator, tiny model): after a staff answer the bot
is quiet for that customer (their messages mirrored with the marker) and resumes on time, on ▶ and on /resume;
out of hours a handoff names the opening time and a negative review's alert waits for opening (or rings at once)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot import callbacks, clock, takeover_callbacks
from bot.handlers import after_hours
from sandbox.emulator import FakeUser, as_api_message
from shop import hours
from tests.botkit import BOB, EVE, MEI, STAFF_CHAT, BotHarness, bot_settings, button_data, buttons, press_raw

pytestmark = pytest.mark.usefixtures("no_bot_errors")

SHOP = ZoneInfo("Asia/Shanghai")
WEEK = ["10:00-22:00"] * 6 + ["closed"]  # Monday .. Saturday; closed on Sunday
WEDNESDAY_NOON = datetime(2026, 12, 2, 12, 0, tzinfo=SHOP)
MARKER = "You are talking to them"
_ids = iter(range(7000, 8000))


def customer(name: str = "Cam", language: str = "en") -> FakeUser:
    """A customer no other test has talked to (so no takeover of theirs is running)."""
    return FakeUser(next(_ids), name, language)


class MovableClock:
    """bot.clock.now, running from a chosen moment; `move_to` / `advance` jump."""

    def __init__(self, start: datetime) -> None:
        self.set_at(start)

    def set_at(self, moment: datetime) -> None:
        self.base, self.started = moment.astimezone(UTC), time.monotonic()

    def advance(self, delta: timedelta) -> None:
        self.set_at(self() + delta)

    def __call__(self) -> datetime:
        return self.base + timedelta(seconds=time.monotonic() - self.started)


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[BotHarness]:
    settings = bot_settings(tmp_path_factory.mktemp("takeover"), tiny_base, conversation={"takeover_minutes": 10},
                            shop={"hours": WEEK})
    with BotHarness(settings, flood_limits=False) as harness:  # many staff-chat messages a minute here
        yield harness


@pytest.fixture
def moved(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    """The bot's clock, starting inside opening hours (a Wednesday noon in Shanghai)."""
    moving = MovableClock(WEDNESDAY_NOON)
    monkeypatch.setattr(clock, "now", moving)
    return moving


def staff_reply(bot: BotHarness, user: FakeUser, question: str, answer: str) -> tuple[dict, int]:
    """The customer asks (handed off), Mei replies to the mirror; returns (the mirror as edited, decision id)."""
    reply, mirror, decision = bot.ask(user, question)
    bot.emulator.reply_to(MEI, mirror, answer)
    bot.emulator.wait_for_message(user.id, answer, after=reply["message_id"])
    bot.emulator.wait_for(lambda m, p: m == "editMessageText" and p["message_id"] == mirror["message_id"])
    return bot.staff_message(mirror["message_id"]), decision.id


def quiet_turn(bot: BotHarness, user: FakeUser, text: str) -> dict:
    """The customer writes during a takeover: staff get the marked mirror, the customer gets nothing."""
    after = bot.cursor(STAFF_CHAT)
    sent = bot.emulator.send_text(user, text)
    mirror, decision = bot.wait_mirror(text, after=after)
    assert (decision.action, decision.status) == ("taken_over", "answered_by_staff")  # staff's: never in /review
    assert MARKER in mirror["text"] and list(buttons(mirror)) == ["▶ Resume the bot"]
    [(_, call)] = [c for c in bot.emulator.calls("sendMessage") if c[1]["chat_id"] == STAFF_CHAT
                   and text in c[1]["text"]]
    assert call["disable_notification"] is False  # staff are in this conversation: it rings
    time.sleep(0.3)
    assert [m for m in bot.emulator.messages(user.id) if m["message_id"] > sent["message_id"]] == []
    return mirror


def answered(bot: BotHarness, user: FakeUser, text: str) -> dict:
    """The customer writes and the bot answers (no takeover)."""
    reply, mirror, decision = bot.ask(user, text)
    assert decision.action != "taken_over" and MARKER not in mirror["text"]
    return reply


def slash_resume(bot: BotHarness, args: str = "", reply_to: dict | None = None) -> dict:
    """Mei sends /resume in the staff chat (replying to a mirror, if given); returns the bot's answer."""
    emulator = bot.emulator
    if reply_to is None:
        return bot.command(MEI, "resume", args, chat_id=STAFF_CHAT)
    text = f"/resume {args}".rstrip()
    with emulator._cond:  # a command that replies to a message: emulator internals, as tests/botkit.press_raw
        target = as_api_message(emulator._known(reply_to), nested=False)
        sent = emulator._user_message(MEI, STAFF_CHAT, text=text, reply_to_message=target,
                                      entities=[{"type": "bot_command", "offset": 0, "length": 7}])
    return emulator.wait_for_message(STAFF_CHAT, after=sent["message_id"])


def test_after_a_staff_reply_the_bot_is_quiet_then_resumes_when_the_time_passes(bot: BotHarness,
                                                                                 moved: MovableClock) -> None:
    cam = customer()
    edited, _ = staff_reply(bot, cam, "Do you sell gift cards?", "Yes, at the counter!")
    assert "The bot stays quiet for this customer for 10 min" in edited["text"]
    with bot.store() as store:
        taken = store.customers.get(cam.id)
        assert taken.taken_over_by == MEI.id
        assert datetime.fromisoformat(taken.takeover_until) > moved() + timedelta(minutes=9)

    quiet_turn(bot, cam, "How much can I put on one?")
    answered(bot, BOB, "Can I pay by card?")  # other customers are not affected
    quiet_turn(bot, cam, "Thanks!")
    after = bot.cursor(STAFF_CHAT)
    sticker = bot.emulator.send_sticker(cam)  # not even "I can only read text": staff hear of it instead
    assert "Cam sent a sticker" in bot.emulator.wait_for_message(STAFF_CHAT, after=after)["text"]
    time.sleep(0.3)
    assert [m for m in bot.emulator.messages(cam.id) if m["message_id"] > sticker["message_id"]] == []

    moved.advance(timedelta(minutes=11))
    assert "passed it to our staff" in answered(bot, cam, "Do you deliver to the office?")["text"]


def test_each_staff_message_extends_the_takeover(bot: BotHarness, moved: MovableClock) -> None:
    cam = customer()
    staff_reply(bot, cam, "Is the terrace open?", "Yes, until 21:00.")
    moved.advance(timedelta(minutes=8))
    mirror = quiet_turn(bot, cam, "Can I bring my dog?")
    bot.emulator.reply_to(MEI, mirror, "Of course!")  # a reply to the marked mirror is relayed, not learnt
    bot.emulator.wait_for_message(cam.id, "Of course!")
    bot.emulator.wait_for_message(STAFF_CHAT, "Sent to the customer")
    moved.advance(timedelta(minutes=8))  # 16 min after the first answer, 8 after the last one
    quiet_turn(bot, cam, "Great, see you")
    with bot.store() as store:
        assert not any(c.answer_text == "Of course!" for c in store.corrections.all())


def test_resume_button_and_forged_or_stale_presses(bot: BotHarness, moved: MovableClock) -> None:
    cam = customer("小美", "zh-hans")
    staff_reply(bot, cam, "你们有会员卡吗？", "有的，在柜台办理。")
    mirror = quiet_turn(bot, cam, "要多少钱？")
    data = button_data(mirror, "▶")
    decision_id = takeover_callbacks.decode(data)

    def still_quiet() -> bool:
        with bot.store() as store:
            return store.customers.get(cam.id).takeover_until is not None

    assert bot.press(EVE, mirror, data)["text"] == "Sorry, only staff can use these buttons."
    for forged in ("t1:r:0", "t1:r:01", "t1:x:5", "t1:r:", "t1:r:5:5", "t1:" + "9" * 70, "t2:r:5"):
        assert press_raw(bot, MEI, mirror, forged)["show_alert"] is True
    assert press_raw(bot, MEI, mirror, "t1:r:999999")["text"].startswith("I can't find")
    other = bot.ask(BOB, "Do you have oat milk?")[2]
    assert press_raw(bot, MEI, mirror, takeover_callbacks.encode(other.id))["text"] == (
        "This button doesn't belong to this message.")
    assert press_raw(bot, MEI, mirror, callbacks.encode(decision_id, "ok"))["show_alert"] is True  # no ✅ here
    assert still_quiet()

    assert bot.press(MEI, mirror, data)["text"] == f"▶ The bot answers {cam.id} again."
    assert not still_quiet()
    bot.emulator.wait_for(lambda m, p: m == "editMessageReplyMarkup" and p["message_id"] == mirror["message_id"])
    assert press_raw(bot, MEI, mirror, data)["text"] == "The bot isn't paused for this customer."  # stale
    assert "店员" in answered(bot, cam, "几点关门？")["text"]


def test_resume_command_replying_to_a_mirror_or_naming_the_customer(bot: BotHarness, moved: MovableClock) -> None:
    cam = customer()
    edited, _ = staff_reply(bot, cam, "Do you have a toilet?", "Yes, at the back.")
    assert slash_resume(bot, reply_to=edited)["text"] == f"▶ The bot answers {cam.id} again."
    answered(bot, cam, "Is there wifi?")
    assert slash_resume(bot, str(cam.id))["text"] == "The bot isn't paused for this customer."

    reply, mirror, _ = bot.ask(cam, "Can I book a table?")  # an FAQ pick on a handed-off question
    bot.press(MEI, mirror, button_data(mirror, "📖"))
    bot.emulator.wait_for_message(cam.id, after=reply["message_id"])
    quiet_turn(bot, cam, "For four people")
    assert slash_resume(bot, str(cam.id))["text"] == f"▶ The bot answers {cam.id} again."
    answered(bot, cam, "For tonight")
    assert "Reply /resume" in slash_resume(bot, "nobody")["text"]


def test_typed_answer_starts_a_takeover(bot: BotHarness, moved: MovableClock) -> None:
    cam = customer()
    reply, mirror, decision = bot.ask(cam, "Can you make it sugar free?")
    after = bot.cursor(STAFF_CHAT)
    bot.press(MEI, mirror, callbacks.encode(decision.id, "ans"))
    prompt = bot.emulator.wait_for_message(STAFF_CHAT, "type the answer", after=after)
    bot.emulator.reply_to(MEI, prompt, "Any drink, 0% sugar.")
    bot.emulator.wait_for_message(cam.id, "0% sugar", after=reply["message_id"])
    quiet_turn(bot, cam, "Even the taro one?")


@pytest.mark.parametrize(("moment", "user", "expected"), [
    (datetime(2026, 12, 2, 23, 0, tzinfo=SHOP), FakeUser(0, "Ann", "en"), "they'll reply here tomorrow at 10:00"),
    (datetime(2026, 12, 2, 8, 30, tzinfo=SHOP), FakeUser(0, "Ann", "en"), "they'll reply here today at 10:00"),
    (datetime(2026, 12, 5, 22, 30, tzinfo=SHOP), FakeUser(0, "Ann", "en"), "they'll reply here on Monday at 10:00"),
    (datetime(2026, 12, 2, 23, 0, tzinfo=SHOP), FakeUser(0, "小美", "zh-hans"), "店员明天10:00回复您"),
])
def test_an_out_of_hours_handoff_says_when_staff_will_reply(bot: BotHarness, moved: MovableClock, moment: datetime,
                                                            user: FakeUser, expected: str) -> None:
    moved.set_at(moment)
    user = FakeUser(next(_ids), user.first_name, user.language_code)
    assert expected in bot.say(user, "你们可以开发票吗？" if user.first_name == "小美" else "Do you do invoices?")["text"]


def test_inside_hours_a_handoff_is_as_before(bot: BotHarness, moved: MovableClock) -> None:
    assert bot.say(customer(), "Do you do invoices?")["text"] == (
        "Good question! I've passed it to our staff, and they'll reply here shortly 🙏")


def negative_review(bot: BotHarness, user: FakeUser, text: str) -> tuple[dict, int]:
    bot.services.runtime.remember(text, "review", "negative")
    _, mirror, decision = bot.ask(user, text)
    return mirror, decision.id


def staff_call(bot: BotHarness, text: str) -> dict:
    [(_, call)] = [c for c in bot.emulator.calls("sendMessage") if c[1]["chat_id"] == STAFF_CHAT
                   and text in c[1]["text"]]
    return call


def test_a_negative_review_out_of_hours_waits_for_opening_time(bot: BotHarness, moved: MovableClock) -> None:
    moved.set_at(datetime(2026, 12, 2, 23, 0, tzinfo=SHOP))
    mirror, decision_id = negative_review(bot, customer(), "The tea was cold and the staff rude")
    assert staff_call(bot, "The tea was cold and the staff rude")["disable_notification"] is True
    with bot.store() as store:  # in the database: a restart keeps it
        assert [item["decision_id"] for item in hours.queued_alerts(store)] == [decision_id]

    moved.set_at(datetime(2026, 12, 3, 7, 0, tzinfo=SHOP))
    assert bot.run(after_hours.flush_alerts(bot.app.bot, bot.services, moved())) == 0  # still closed
    moved.set_at(datetime(2026, 12, 3, 10, 1, tzinfo=SHOP))
    bot.run(after_hours.flush_alerts(bot.app.bot, bot.services, moved()))  # (the minutely job may be first)
    alert = bot.emulator.wait_for_message(STAFF_CHAT, "negative review came in while the shop was closed")
    assert "2026-12-02 23:00" in alert["text"]
    assert alert["reply_to_message"]["message_id"] == mirror["message_id"]
    with bot.store() as store:
        assert hours.queued_alerts(store) == []


def test_inside_hours_a_negative_review_rings_at_once(bot: BotHarness, moved: MovableClock) -> None:
    negative_review(bot, customer(), "Waited forty minutes for one drink")
    assert staff_call(bot, "Waited forty minutes for one drink")["disable_notification"] is False
    with bot.store() as store:
        assert hours.queued_alerts(store) == []


def test_configured_to_ring_out_of_hours(tmp_path: Path, tiny_base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now", MovableClock(datetime(2026, 12, 6, 12, 0, tzinfo=SHOP)))  # a Sunday: closed
    settings = bot_settings(tmp_path, tiny_base, shop={"hours": WEEK, "ring_negative_out_of_hours": True})
    with BotHarness(settings, flood_limits=False) as harness:
        negative_review(harness, customer(), "Sticky tables, never again")
        assert staff_call(harness, "Sticky tables, never again")["disable_notification"] is False
        with harness.store() as store:
            assert hours.queued_alerts(store) == []
        assert harness.take_errors(timeout=0) == []
