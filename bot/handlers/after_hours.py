"""Business hours in Telegram: a negative review out of hours waits for opening time to ring.

Out of hours (shop/hours.py) a negative review's mirror arrives silently and its alert is queued in the
database; the repeating job `send_queued_alerts` (bot/jobs.py) sends each queued alert to the staff chat
once the shop is open, as a ringing reply to the mirror. `[shop] ring_negative_out_of_hours = true` rings
at once instead. What an out-of-hours handoff tells the customer is `shop.hours.handoff_text`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from telegram import Bot
from telegram.error import BadRequest, TelegramError

from bot import clock
from bot.context import BotContext
from bot.handlers import staff
from bot.services import Services
from bot.staff_view import Customer
from shop import hours
from shop.texts import staff_text
from storage.records import Decision, FaqEntry, NotFoundError
from vocabulary import MessageKind

log = logging.getLogger(__name__)


async def post_mirror(context: BotContext, decision: Decision, text: str, customer: Customer,
                      answer: FaqEntry | None) -> None:
    """Mirror a decision to staff; out of hours a negative review's mirror is silent and its alert queued."""
    services = context.services
    now = clock.now()
    if decision.kind == MessageKind.REVIEW and decision.label == "negative" and not hours.rings_now(services.settings, now):
        hours.queue_alert(services.store, decision.id, now)
        await staff.post_mirror(context, decision, text, customer, answer, notify=False)
        return
    await staff.post_mirror(context, decision, text, customer, answer)


async def flush_alerts(bot: Bot, services: Services, now: datetime) -> int:
    """Send the queued alerts if the shop is open at `now`; returns how many were sent."""
    settings, store = services.settings, services.store
    chat_id = settings.roles.staff_chat_id
    if not chat_id:
        return 0
    sent = 0
    zone = ZoneInfo(settings.schedule.timezone)
    for item in hours.due_alerts(settings, store, now):
        try:
            decision = store.decisions.get(item["decision_id"])
        except NotFoundError:
            hours.drop_alert(store, item["decision_id"])
            continue
        at = f"{datetime.fromisoformat(item['at']).astimezone(zone):%Y-%m-%d %H:%M}"
        try:
            await bot.send_message(chat_id, staff_text(settings, "negative_waiting", at=at),
                                   reply_to_message_id=decision.staff_message_id)
        except BadRequest as error:  # e.g. its mirror was deleted: the alert alone, without the reply
            log.warning("queued alert for decision %s: %s; sending it without the mirror", decision.id, error)
            try:
                await bot.send_message(chat_id, staff_text(settings, "negative_waiting", at=at))
            except TelegramError as again:
                log.warning("queued alert for decision %s not sent (kept for next time): %s", decision.id, again)
                continue
        except TelegramError as error:  # kept: the next run tries again
            log.warning("queued alert for decision %s not sent (kept for next time): %s", decision.id, error)
            continue
        hours.drop_alert(store, decision.id)
        sent += 1
    if sent:
        log.info("sent %d negative-review alert(s) queued while the shop was closed", sent)
    return sent


async def send_queued_alerts(context: BotContext) -> None:
    """JobQueue callback: at opening time, the alerts that waited."""
    await flush_alerts(context.bot, context.services, clock.now())
