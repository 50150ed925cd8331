"""Human takeover in Telegram: the customer's messages while staff talk with them, ▶ resume and /resume.

While a customer is taken over (shop/takeover.py) their texts are stored with the action "taken_over" and
mirrored to staff under a "you are talking to them" marker with one button, ▶ resume the bot
("t1:r:<decision id>", bot/takeover_callbacks.py); a sticker, photo or voice is named to staff; the bot
sends them nothing. /resume in the staff chat
(replying to a mirror of that customer, or /resume <customer id>) ends it too. Every ▶ press is checked
here: the presser is staff, the data parses, the mirror is the decision's own, the customer is still
taken over; anything else is refused and changes nothing.
"""

from __future__ import annotations

import logging

from telegram import Message, Update, User
from telegram.constants import ParseMode
from telegram.ext import CallbackQueryHandler

from bot import clock, staff_view, takeover_callbacks
from bot.callbacks import CallbackDataError
from bot.context import BotContext
from bot.handlers.common import PrefixedButtons, answer_press, display_name, message_of, press_of
from bot.handlers.staff import claim_mirror, mirrored_decision, set_buttons
from bot.services import Services
from shop import takeover
from shop.texts import staff_text
from storage.records import Customer, NotFoundError

log = logging.getLogger(__name__)


def is_quiet(customer: Customer) -> bool:
    """Whether the bot must not answer this customer now: a staff member is talking with them."""
    return takeover.taken_over(customer, clock.now())


async def note_media(context: BotContext, user: User, kind: str) -> None:
    """A taken-over customer sent a sticker, photo, voice…: tell staff (the bot says nothing to them)."""
    settings = context.services.settings
    if settings.roles.staff_chat_id:
        await context.bot.send_message(settings.roles.staff_chat_id, staff_text(
            settings, "takeover_media", who=staff_view.user_link(user.id, display_name(user)), kind=staff_text(settings, f"media_{kind}")),
            parse_mode=ParseMode.HTML)


async def on_press(update: Update, context: BotContext) -> None:
    """▶ under a takeover mirror: the bot answers that customer again."""
    query, services = press_of(update), context.services
    settings = services.settings

    async def refuse(key: str) -> None:
        await answer_press(query, staff_text(settings, key), show_alert=True)

    if not settings.is_staff(query.from_user.id):
        log.warning("user %s (not staff) pressed %r", query.from_user.id, query.data)
        await refuse("not_allowed")
        return
    try:
        decision_id = takeover_callbacks.decode(query.data)
    except CallbackDataError as error:
        log.warning("refused takeover button data from user %s: %s", query.from_user.id, error)
        await refuse("forged")
        return
    try:
        decision = services.store.decisions.get(decision_id)
    except NotFoundError:
        await refuse("unknown_decision")
        return
    message = query.message
    if isinstance(message, Message) and decision.staff_message_id is None:  # its mirror's send may not have returned
        decision = claim_mirror(services, message, pressed=decision.id) or decision
    if not isinstance(message, Message) or (message.chat.id, message.message_id) != (
            decision.staff_chat_id, decision.staff_message_id):
        await refuse("wrong_message")
        return
    customer_id = takeover.customer_of(services.store, decision.id)
    if customer_id is None or not takeover.resume(services.store, customer_id, clock.now()):
        await refuse("resume_not_taken")  # stale: it ended meanwhile (time, another ▶, /resume)
        return
    log.info("staff %s resumed the bot for customer %s", query.from_user.id, customer_id)
    await answer_press(query, staff_text(settings, "resumed", who=customer_id))
    await set_buttons(query, None)


def _customer_named(services: Services, message: Message, args: list[str]) -> int | None:
    """The customer a /resume means: the one whose mirror it replies to, else the id given."""
    target = message.reply_to_message
    if target is not None:
        decision = mirrored_decision(services, target)
        if decision is not None:
            return takeover.customer_of(services.store, decision.id)
    if len(args) == 1 and args[0].isascii() and args[0].isdigit() and len(args[0]) <= 18:
        return int(args[0])
    return None


async def resume_command(update: Update, context: BotContext) -> None:
    """/resume in the staff chat (staff only): the bot answers that customer again."""
    message, services = message_of(update), context.services
    settings = services.settings
    if message.from_user is None or not settings.is_staff(message.from_user.id):
        return
    customer_id = _customer_named(services, message, list(context.args or []))
    if customer_id is None:
        await message.reply_text(staff_text(settings, "resume_usage"))
        return
    if not takeover.resume(services.store, customer_id, clock.now()):
        await message.reply_text(staff_text(settings, "resume_not_taken"))
        return
    log.info("staff %s resumed the bot for customer %s", message.from_user.id, customer_id)
    await message.reply_text(staff_text(settings, "resumed", who=customer_id))


def button_handler() -> CallbackQueryHandler[BotContext, None]:
    """The handler of ▶ resume; bot/app.py registers it before the staff buttons."""
    return PrefixedButtons(on_press, takeover_callbacks.VERSION)
