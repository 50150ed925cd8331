"""/review in the staff chat: the next decisions most worth a human look (shop/review_queue.py), each posted as
a mirror with the usual buttons; and the daily digest telling staff how many decisions wait."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError

from bot.context import BotContext
from bot.handlers import staff
from bot.handlers.common import message_of
from bot.services import Services
from bot.staff_view import Customer
from shop.review_queue import ReviewQueue
from shop.texts import staff_text
from storage.decisions import WaitingDecision
from storage.records import FaqEntry, NotFoundError
from vocabulary import Action, MessageKind

log = logging.getLogger(__name__)


def _answer_of(services: Services, item: WaitingDecision) -> FaqEntry | None:
    decision = item.decision
    if decision.kind != MessageKind.QUESTION or decision.action != Action.ANSWERED or decision.label is None:
        return None
    try:
        return services.store.faq.get(decision.label, item.language or services.settings.default_language)
    except NotFoundError:
        return None


async def command(update: Update, context: BotContext) -> None:
    """Post the next `staff.review_batch` decisions of the queue as mirrors (staff only, in the staff chat)."""
    services, message = context.services, message_of(update)
    settings = services.settings
    user = update.effective_user
    if user is None or not settings.is_staff(user.id):
        await message.reply_text(staff_text(settings, "review_not_allowed"))
        return
    queue = ReviewQueue(services.store)
    waiting = queue.waiting_count()
    batch = queue.next(settings.staff.review_batch)
    if not batch:
        await message.reply_text(staff_text(settings, "review_empty"))
        return
    await message.reply_text(staff_text(settings, "review_intro", shown=len(batch), waiting=waiting))
    for item in batch:  # post_mirror sets the staff message: the buttons work and it leaves the queue
        customer = Customer(item.customer_id, "", item.language or settings.default_language)
        await staff.post_mirror(context, item.decision, item.text, customer, _answer_of(services, item))


async def digest(context: BotContext) -> None:
    """The daily digest: one message to the staff chat saying how many decisions wait for /review."""
    services = context.services
    settings = services.settings
    if not settings.roles.staff_chat_id:
        return
    waiting = ReviewQueue(services.store).waiting_count()
    text = staff_text(settings, "digest", waiting=waiting) if waiting else staff_text(settings, "digest_none")
    try:
        await context.bot.send_message(settings.roles.staff_chat_id, text)
    except TelegramError as error:
        log.warning("could not send the daily digest: %s", error)
