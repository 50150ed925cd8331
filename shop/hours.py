"""Business hours without Telegram: is the shop open, when does it open next, what a customer is told out of
hours, and the negative-review alerts that wait for opening time.

The hours are `shop.hours` (Monday first) in the shop's time zone, `schedule.timezone`; no hours: always
open. The waiting alerts are a list of decision ids in `scheduler_state["queued_alerts"]`, so a restart
keeps them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from settings import Settings
from shop.texts import customer_text
from storage.clock import to_timestamp
from storage.store import Store

ALERTS_KEY = "queued_alerts"


def _local(settings: Settings, now: datetime) -> datetime:
    return now.astimezone(ZoneInfo(settings.schedule.timezone))


def is_open(settings: Settings, now: datetime) -> bool:
    """Whether the shop is open at `now` (always, without configured hours)."""
    hours = settings.shop.opening_hours
    if not hours:
        return True
    local = _local(settings, now)
    day = hours[local.weekday()]
    if day is None:
        return False
    opens, closes = day
    moment = local.time().replace(tzinfo=None)
    return opens <= moment and (closes is None or moment < closes)


def next_opening(settings: Settings, now: datetime) -> datetime | None:
    """When the shop opens next, in its time zone; None while it is open (or always is)."""
    if is_open(settings, now):
        return None
    local = _local(settings, now)
    hours = settings.shop.opening_hours
    for ahead in range(8):
        date = local.date() + timedelta(days=ahead)
        day = hours[date.weekday()]
        if day is not None and (opening := datetime.combine(date, day[0], local.tzinfo)) > local:
            return opening
    return None  # unreachable: settings refuse hours that close every day


def when_text(settings: Settings, language: str, opening: datetime, now: datetime) -> str:
    """"today at 10:00" / "tomorrow at 10:00" / "on Monday at 10:00" (今天10:00 / 明天10:00 / 周一10:00)."""
    days = (opening.date() - _local(settings, now).date()).days
    time = f"{opening:%H:%M}"
    if days == 0:
        return customer_text(settings, language, "when_today", time=time)
    if days == 1:
        return customer_text(settings, language, "when_tomorrow", time=time)
    day = customer_text(settings, language, "weekdays").split(",")[opening.weekday()]
    return customer_text(settings, language, "when_day", day=day, time=time)


def handoff_text(settings: Settings, language: str, now: datetime) -> str:
    """What a customer whose question goes to staff is told: out of hours, when staff will answer."""
    opening = next_opening(settings, now)
    if opening is None:
        return customer_text(settings, language, "handoff")
    return customer_text(settings, language, "handoff_closed", when=when_text(settings, language, opening, now))


def rings_now(settings: Settings, now: datetime) -> bool:
    """Whether a negative review's alert rings at once (open, or `shop.ring_negative_out_of_hours`)."""
    return settings.shop.ring_negative_out_of_hours or is_open(settings, now)


def queue_alert(store: Store, decision_id: int, now: datetime) -> None:
    """Keep a negative review's alert for opening time."""
    with store.transaction():
        queued = [item for item in store.state.get(ALERTS_KEY, []) if item["decision_id"] != decision_id]
        store.state.set(ALERTS_KEY, [*queued, {"decision_id": decision_id, "at": to_timestamp(now)}])


def queued_alerts(store: Store) -> list[dict]:
    """The waiting alerts, oldest first: {"decision_id": …, "at": stored UTC time it came in}."""
    return list(store.state.get(ALERTS_KEY, []))


def due_alerts(settings: Settings, store: Store, now: datetime) -> list[dict]:
    """The waiting alerts to send now: all of them once the shop is open, none before."""
    return queued_alerts(store) if is_open(settings, now) else []


def drop_alert(store: Store, decision_id: int) -> None:
    """An alert was sent (or its review is gone): take it off the queue."""
    with store.transaction():
        store.state.set(ALERTS_KEY, [item for item in store.state.get(ALERTS_KEY, [])
                                     if item["decision_id"] != decision_id])
