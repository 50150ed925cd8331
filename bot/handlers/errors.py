"""The one error handler: log first (with the traceback), then tell the staff chat briefly.

A customer who blocked the bot (403 on a reply in their private chat) is not an error: they are
marked, so nothing more is sent to them until they write again.
"""

from __future__ import annotations

import html
import logging
import time

from telegram import Update
from telegram.constants import ChatType, ParseMode
from telegram.error import Forbidden

from bot.context import BotContext
from bot.handlers.common import mark_blocked
from shop.texts import staff_text

log = logging.getLogger(__name__)
NOTICE_INTERVAL_S = 30.0  # at most one staff-chat notice per this many seconds (outages raise many)


def _describe(update: object) -> str:
    if isinstance(update, Update):
        chat = update.effective_chat.id if update.effective_chat else None
        user = update.effective_user.id if update.effective_user else None
        return f"update {update.update_id} (chat {chat}, user {user})"
    return repr(update)[:200]


def _blocked_by_customer(update: object, error: BaseException | None) -> int | None:
    """The customer's id when `error` is Telegram refusing a reply in their private chat, else None."""
    if not isinstance(error, Forbidden) or not isinstance(update, Update):
        return None
    chat, user = update.effective_chat, update.effective_user
    return user.id if chat is not None and chat.type == ChatType.PRIVATE and user is not None else None


async def on_error(update: object, context: BotContext) -> None:
    """Log the error, then post a one-line notice in the staff chat (never raises)."""
    error = context.error
    services = context.bot_data.services
    customer_id = _blocked_by_customer(update, error)
    if services is not None and customer_id is not None and mark_blocked(services, customer_id, why=error):
        return  # a customer's choice, not an error (one never stored is an ordinary error below)
    log.error("error while handling %s", _describe(update), exc_info=error)
    if services is not None:
        services.metrics.errors += 1  # shown by /status
    if services is None or not services.settings.roles.staff_chat_id:
        return
    now = time.monotonic()
    if now - context.bot_data.last_error_notice < NOTICE_INTERVAL_S:
        return
    context.bot_data.last_error_notice = now
    summary = f"{type(error).__name__}: {error}"[:300]
    try:
        await context.bot.send_message(services.settings.roles.staff_chat_id,
                                       staff_text(services.settings, "error_notice", error=html.escape(summary)),
                                       parse_mode=ParseMode.HTML)
    except Exception:  # the error handler must not fail
        log.exception("could not tell the staff chat about the error")
