"""The one error handler: log first (with the traceback), then tell the staff chat briefly."""

from __future__ import annotations

import html
import logging
import time

from telegram import Update
from telegram.constants import ParseMode

from bot.context import BotContext
from bot.texts import staff_text

log = logging.getLogger(__name__)
NOTICE_INTERVAL_S = 30.0  # at most one staff-chat notice per this many seconds (outages raise many)


def _describe(update: object) -> str:
    if isinstance(update, Update):
        chat = update.effective_chat.id if update.effective_chat else None
        user = update.effective_user.id if update.effective_user else None
        return f"update {update.update_id} (chat {chat}, user {user})"
    return repr(update)[:200]


async def on_error(update: object, context: BotContext) -> None:
    """Log the error, then post a one-line notice in the staff chat (never raises)."""
    error = context.error
    log.error("error while handling %s", _describe(update), exc_info=error)
    services = context.bot_data.services
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
    except Exception:  # noqa: BLE001 - the error handler must not fail
        log.exception("could not tell the staff chat about the error")
