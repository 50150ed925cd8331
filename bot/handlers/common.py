"""Small lookups shared by the customer, staff and owner handlers, and the typed accessors with which each
handler states which part of the update it needs (`message_of`, `user_of`, `press_of`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Bot, CallbackQuery, Message, ReplyParameters, Update, User
from telegram.error import Forbidden, TelegramError
from telegram.ext import CallbackQueryHandler

from bot.context import BotContext
from bot.limits import MAX_CALLBACK_ANSWER, utf16_cut
from bot.services import Services
from bot.staff_view import QuestionLookup
from shop.texts import pick_language, staff_text
from storage.records import Message as StoredMessage
from storage.records import NotFoundError

log = logging.getLogger(__name__)


class UnexpectedUpdate(LookupError):
    """An update without the part its handler needs: the handler's registration (bot/app.py) should have
    kept it away."""

    def __init__(self, update: Update, part: str) -> None:
        super().__init__(f"update {update.update_id} has no {part}, which its handler is registered to need")
        self.update = update


def message_of(update: Update) -> Message:
    """The update's message (new, edited or a channel post); for handlers whose filters let only messages in."""
    message = update.effective_message
    if message is None:
        raise UnexpectedUpdate(update, "message")
    return message


def user_of(update: Update) -> User:
    """Who sent the update; for handlers that cannot act without knowing (every private message has one)."""
    user = update.effective_user
    if user is None:
        raise UnexpectedUpdate(update, "user")
    return user


def press_of(update: Update) -> CallbackQuery:
    """The update's button press; for CallbackQueryHandler callbacks."""
    query = update.callback_query
    if query is None:
        raise UnexpectedUpdate(update, "callback query")
    return query


def user_language(services: Services, user: User | None, text: str | None = None) -> str:
    """The language to answer this user in (see texts.pick_language; the stored one is read only if needed)."""
    if user is None:
        return services.settings.default_language
    return pick_language(services.settings, user.language_code, text, lambda: services.store.customers.language_of(user.id))


def display_name(user: User | None) -> str:
    """A short human name for a Telegram user."""
    if user is None:
        return "?"
    return user.first_name or user.username or str(user.id)


def faq_lookup(services: Services) -> QuestionLookup:
    """key -> the entry's question in the staff language (None for an unknown key)."""
    language = services.settings.default_language

    def lookup(key: str) -> str | None:
        try:
            return services.store.faq.get(key, language).question
        except NotFoundError:
            return None

    return lookup


def mark_blocked(services: Services, customer_id: int, blocked: bool = True, why: object = "") -> bool:
    """Record that the customer blocked (or unblocked) the bot: nothing is sent to a blocked one until they
    write again. False when they were never stored as a customer (nothing to mark)."""
    try:
        services.store.customers.set_blocked(customer_id, blocked)
    except NotFoundError:
        return False
    log.info("customer %s %s the bot%s", customer_id, "blocked" if blocked else "unblocked", f" ({why})" if why else "")
    return True


async def send_to_customer(services: Services, bot: Bot, message: StoredMessage, text: str) -> str | None:
    """Send `text` to the customer, quoting their message; returns None, or the problem if it failed.

    A customer who blocked the bot (403) is marked so and skipped until they write again.
    """
    if services.store.customers.get(message.customer_id).blocked_at is not None:
        return staff_text(services.settings, "customer_blocked")
    try:
        await bot.send_message(message.chat_id, text, reply_parameters=ReplyParameters(
            message.telegram_message_id, allow_sending_without_reply=True))
    except Forbidden as error:
        mark_blocked(services, message.customer_id, why=error)
        return staff_text(services.settings, "customer_blocked")
    except TelegramError as error:
        log.warning("could not deliver to customer chat %s: %s", message.chat_id, error)
        return str(error)
    return None


def message_html(message: Message) -> str:
    """A message's text as HTML (its formatting kept), for editing it with one more line."""
    return "" if message.text is None else message.text_html


class PrefixedButtons(CallbackQueryHandler[BotContext, Any]):
    """A CallbackQueryHandler for presses whose data starts with "<prefix>:", and only those: PTB lets a press
    without any data through every pattern, and such a press is the staff buttons' handler's to refuse."""

    def __init__(self, callback: Callable[[Update, BotContext], Coroutine[Any, Any, Any]], prefix: str,
                 pattern: str | re.Pattern[str] | None = None) -> None:
        super().__init__(callback, pattern=pattern or rf"^{prefix}:")  # a narrower pattern (a conversation's step)
        self.prefix = prefix

    def check_update(self, update: object) -> bool | object | None:
        """Only a press carrying our prefix."""
        query = update.callback_query if isinstance(update, Update) else None
        if query is None or not isinstance(query.data, str) or not query.data.startswith(f"{self.prefix}:"):
            return None
        return super().check_update(update)


async def answer_press(query: CallbackQuery, text: str | None = None, show_alert: bool = False) -> None:
    """Answer a button press; a late or failed answer costs only the pop-up (logged), never the work."""
    try:
        await query.answer(None if text is None else utf16_cut(text, MAX_CALLBACK_ANSWER), show_alert=show_alert)
    except TelegramError as error:
        log.warning("could not answer the press of user %s: %s", query.from_user.id, error)


async def tell(update: Update, text: str) -> None:
    """Say `text` to whoever sent the update: as the answer to their press, else as a reply to their message."""
    if update.callback_query is not None:
        await answer_press(update.callback_query, text)
    elif update.effective_message is not None:
        await update.effective_message.reply_text(text)


def user_data_of(context: BotContext) -> dict[Any, Any]:
    """The user's own data in a per-user conversation: every update such a conversation handles has a user."""
    user_data = context.user_data
    if user_data is None:
        raise RuntimeError("a per-user conversation got an update without a user")
    return user_data
