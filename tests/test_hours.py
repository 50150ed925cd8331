"""Business hours and takeover without Telegram: the `[shop] hours` / `[conversation]` keys, "is it open",
"when do we open next", what an out-of-hours handoff says, the ▶ button's strict codec, and what becomes of a
message staff handle in their conversation (a taken-over decision)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot import takeover_callbacks
from bot.callbacks import CallbackDataError
from settings import ConfigError, Settings, settings_from_dict
from shop import hours, takeover
from shop.report.data import containment_weeks, week_counts
from shop.review_queue import ReviewQueue
from storage.records import Customer
from storage.store import Store

SHOP = ZoneInfo("Asia/Shanghai")
WEEK = ["10:00-22:00"] * 4 + ["10:00-24:00", "09:30-23:00", "closed"]


def shop(**values: object) -> Settings:
    return settings_from_dict({"shop": {"hours": WEEK, **values}}, Path("."), env={})


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """Monday 2026-11-30 + day, in the shop's time zone."""
    return datetime(2026, 11, 30, hour, minute, tzinfo=SHOP) + timedelta(days=day)


def test_hours_are_validated() -> None:
    assert settings_from_dict({}, Path("."), env={}).shop.opening_hours == ()  # default: always open
    for bad, problem in [(["10:00-22:00"] * 6, "must list 7 days"), (["10-22"] * 7, "monday"),
                         (["22:00-10:00"] * 7, "must close after it opens"), (["closed"] * 7, "closes every day"),
                         (["10:00-24:30"] * 7, "HH:MM-HH:MM"), ([10] * 7, "must be a string")]:
        with pytest.raises(ConfigError, match=problem):
            settings_from_dict({"shop": {"hours": bad}}, Path("."), env={})
    with pytest.raises(ConfigError, match=r"conversation\.takeover_minutes"):
        settings_from_dict({"conversation": {"takeover_minutes": -1}}, Path("."), env={})
    with pytest.raises(ConfigError, match=r"conversation\.takeover_minute: unknown key"):
        settings_from_dict({"conversation": {"takeover_minute": 5}}, Path("."), env={})
    assert shop().conversation.takeover_minutes == 15


def test_is_open_and_next_opening() -> None:
    settings = shop()
    assert hours.is_open(settings, at(0, 10)) and hours.is_open(settings, at(0, 21, 59))
    assert not hours.is_open(settings, at(0, 22)) and not hours.is_open(settings, at(0, 9, 59))
    assert hours.is_open(settings, at(4, 23, 59))  # Friday until midnight
    assert not hours.is_open(settings, at(6, 12))  # closed on Sunday
    assert hours.next_opening(settings, at(0, 12)) is None
    assert hours.next_opening(settings, at(0, 8)) == at(0, 10)
    assert hours.next_opening(settings, at(0, 23)) == at(1, 10)
    assert hours.next_opening(settings, at(5, 23, 30)) == at(7, 10)  # Saturday night: Monday
    assert hours.next_opening(settings, at(4, 23).astimezone(UTC)) is None  # any zone in, the shop's out
    always = settings_from_dict({}, Path("."), env={})
    assert hours.is_open(always, at(6, 3)) and hours.next_opening(always, at(6, 3)) is None


def test_out_of_hours_handoff_names_the_opening_time() -> None:
    settings = shop()
    assert "shortly" in hours.handoff_text(settings, "en", at(0, 12))
    assert "today at 10:00" in hours.handoff_text(settings, "en", at(0, 8))
    assert "tomorrow at 10:00" in hours.handoff_text(settings, "en", at(0, 22, 30))
    assert "today at 09:30" in hours.handoff_text(settings, "en", at(5, 0, 30))  # Saturday opens earlier
    assert "on Monday at 10:00" in hours.handoff_text(settings, "en", at(5, 23, 30))
    assert "店员明天10:00回复您" in hours.handoff_text(settings, "zh", at(2, 23))
    assert "店员周一10:00回复您" in hours.handoff_text(settings, "zh", at(5, 23, 30))
    assert "店员明天10:00回复您" in hours.handoff_text(settings, "zh", at(6, 9))  # Sunday: Monday is tomorrow


def test_negative_alerts_ring_inside_hours_or_when_configured() -> None:
    assert hours.rings_now(shop(), at(0, 12)) and not hours.rings_now(shop(), at(0, 23))
    assert hours.rings_now(shop(ring_negative_out_of_hours=True), at(0, 23))


def test_taken_over_until_the_stored_time() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    customer = Customer(1, "en", "", "", False, None, None, (now + timedelta(seconds=1)).isoformat(), 5)
    assert takeover.taken_over(customer, now) and not takeover.taken_over(customer, now + timedelta(seconds=1))
    assert not takeover.taken_over(Customer(1, "en", "", "", False, None), now)


def test_a_taken_over_message_is_handled_by_staff_never_queued_nor_counted_as_a_question(fresh_store: Store) -> None:
    fresh_store.customers.touch(7, "en")
    for n, (text, kind) in enumerate((("How much can I put on a gift card?", "question"), ("Thanks, lovely!", "review"))):
        message = fresh_store.messages.add(7, 7, n + 1, text)
        decision = fresh_store.decisions.add(message.id, kind, None, 0.5, "taken_over")
        assert takeover.handled_by_staff(fresh_store, decision).status == "answered_by_staff"
    queue = ReviewQueue(fresh_store)
    assert queue.waiting_count() == 0 and queue.next(5) == []  # not waiting for feedback in /review or the digest
    week_ago = datetime.now(UTC) - timedelta(days=7)
    assert fresh_store.decisions.staff_questions_since(week_ago) == []  # nor in the suggested FAQ entries
    counts = week_counts(fresh_store, week_ago)  # the bot was not asked it: containment and handoffs leave it out
    assert (counts.questions, counts.containment, counts.handoff_rate) == (0, None, None)
    assert containment_weeks(fresh_store, SHOP, datetime.now(UTC)) == []


def test_resume_button_codec_is_strict() -> None:
    assert takeover_callbacks.encode(42) == "t1:r:42" and takeover_callbacks.decode("t1:r:42") == 42
    for bad in (None, 42, "", "t1:r:0", "t1:r:042", "t1:r:-1", "t1:r:4 ", "t1:R:4", "t1:r", "t1:r:4:5", "v1:4:ok",
                "t1:r:" + "9" * 19, "t1:r:" + "9" * 70, "t1:r:４２"):
        with pytest.raises(CallbackDataError):
            takeover_callbacks.decode(bad)
    with pytest.raises(ValueError):
        takeover_callbacks.encode(0)
