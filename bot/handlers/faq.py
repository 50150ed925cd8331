"""/faq: the owner (or staff, with roles.faq_editors = "staff") sees the shop's FAQ in their private chat, and
the buttons that do not start typing (the list's pages, an entry, its history, retiring it).

    /faq            the list, a page of buttons at a time      /faq <name>   one entry
    entry buttons   ✏ question / answer per language, ➕ a language it lacks, ➕ another wording,
                    📜 history, 🗄 retire (asks first), ↩ list

Typing a new text is bot/handlers/faq_edit.py. Every press is checked here (`checked_press`): the presser may
edit the FAQ, the data parses (bot/faq_callbacks.py), it was pressed in their private chat, and its entry still
exists. The changes themselves are shop/knowledge/editing.py's.
"""

from __future__ import annotations

import functools
import itertools
import logging
from dataclasses import dataclass, replace
from typing import Any

from telegram import CallbackQuery, Message, Update, User
from telegram.constants import ChatType
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler

from bot import faq_callbacks, faq_view
from bot.callbacks import CallbackDataError
from bot.context import BotContext
from bot.faq_callbacks import FaqAction, FaqCallback
from bot.faq_view import View
from bot.handlers.common import PrefixedButtons, answer_press, message_of, press_of, user_language, user_of
from bot.limits import MAX_TEXT, utf16_cut
from bot.services import Services
from shop.knowledge.editing import FaqProblem, Knowledge
from shop.texts import faq_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaqPress:
    """A checked /faq press: the query, its button, the entry's key (if it names one) and the reader's language."""

    query: CallbackQuery
    message: Message  # the pressed one, in the editor's private chat
    button: FaqCallback
    key: str | None
    language: str

    @property
    def editor(self) -> User:
        """Who pressed."""
        return self.query.from_user


def knowledge(services: Services) -> Knowledge:
    """The FAQ use cases on this shop's store, refreshing this bot's index and correction memory."""
    return Knowledge(services.settings, services.store, services.request_index_refresh, services.reload_memory)


def refusal(services: Services) -> str:
    """The refusal's text name for someone who may not edit the FAQ."""
    return "refused_staff" if services.settings.roles.faq_editors == "staff" else "refused"


def _key_of(services: Services, token: str) -> str | None:
    return next((key for key in services.store.faq.keys(include_retired=True)
                 if faq_callbacks.entry_token(key) == token), None)


def _entry_view(services: Services, language: str, key: str) -> View | None:
    rows = services.store.faq.entry(key)
    if not rows:
        return None
    return faq_view.entry_view(services.settings, language, rows, len(services.store.faq.phrasings(key)),
                               services.store.faq.changes(key, limit=faq_view.HISTORY_LINES))


def entry_or_list(services: Services, language: str, key: str) -> View:
    """The entry as it is now, or the list if it has gone."""
    return _entry_view(services, language, key) or _list_view(services, language, 0)


def _list_view(services: Services, language: str, page: int) -> View:
    entries = [list(rows) for _, rows in itertools.groupby(services.store.faq.all(), key=lambda row: row.key)]
    return faq_view.list_view(services.settings, language, entries, page)


def with_notice(notice: str, view: View) -> View:
    """`view` with a first line saying what just happened."""
    return replace(view, text=utf16_cut(f"{notice}\n\n{view.text}", MAX_TEXT))


async def command(update: Update, context: BotContext) -> None:
    """/faq: the list; /faq <name>: one entry (a retired one too, with its history)."""
    services, message, user = context.services, message_of(update), user_of(update)
    language = user_language(services, user)
    say = functools.partial(faq_text, services.settings, language)
    if not services.settings.may_edit_faq(user.id):
        log.warning("user %s tried /faq", user.id)
        await message.reply_text(say(refusal(services)))
        return
    if message.chat.type != ChatType.PRIVATE:
        await message.reply_text(say("private_only"))
        return
    args = context.args or []
    if args:
        view = _entry_view(services, language, args[0]) or _entry_view(services, language, args[0].lower())
        if view is None:
            await message.reply_text(say("unknown_key", key=args[0]))
            return
    else:
        view = _list_view(services, language, 0)
    await message.reply_text(view.text, reply_markup=view.markup)


async def checked_press(update: Update, context: BotContext) -> FaqPress | None:
    """The checked press, or None after answering why it does nothing."""
    query, services = press_of(update), context.services
    user = query.from_user
    language = user_language(services, user)

    async def refuse(name: str) -> None:
        await answer_press(query, faq_text(services.settings, language, name), show_alert=True)

    if not services.settings.may_edit_faq(user.id):
        log.warning("user %s (not an FAQ editor) pressed %r", user.id, query.data)
        await refuse(refusal(services))
        return None
    try:
        button = faq_callbacks.decode(query.data)
    except CallbackDataError as error:
        log.warning("refused /faq button data from user %s: %s", user.id, error)
        await refuse(error.reason)
        return None
    message = query.message
    if not isinstance(message, Message) or message.chat.id != user.id:  # an inaccessible one, or another chat
        await refuse("not_here")
        return None
    key = None
    if button.token is not None:
        key = _key_of(services, button.token)
        if key is None:
            await refuse("gone")
            return None
    if button.language is not None and button.language not in services.settings.shop.languages:
        await refuse("stale")
        return None
    return FaqPress(query, message, button, key, language)


async def _show(query: CallbackQuery, view: View) -> None:
    """Turn the pressed message into `view`."""
    try:
        await query.edit_message_text(view.text, reply_markup=view.markup)
    except BadRequest as error:
        if "not modified" not in str(error):
            raise


async def on_button(update: Update, context: BotContext) -> None:
    """A /faq button that does not start typing: a list page, an entry, its history, retiring it."""
    press = await checked_press(update, context)
    if press is None:
        return
    services, query, key, language = context.services, press.query, press.key, press.language
    settings, action = services.settings, press.button.action
    if action == FaqAction.LIST:
        await answer_press(query)
        await _show(query, _list_view(services, language, press.button.page))
        return
    if action == FaqAction.CANCEL:  # ✖ on a prompt whose typing is over already
        await answer_press(query, faq_text(settings, language, "cancelled"))
        await drop_buttons(context, press.message.chat.id, press.message.message_id)
        return
    assert key is not None, "every other action names an entry"  # faq_callbacks.decode
    try:
        if action == FaqAction.RETIRE:
            knowledge(services).live(key)
            view = faq_view.retire_view(settings, language, key)
        elif action == FaqAction.RETIRE_YES:
            knowledge(services).retire(key, press.editor.id)
            log.info("faq: %s retired %r", press.editor.id, key)
            view = with_notice(faq_text(settings, language, "retired_done", key=key),
                               entry_or_list(services, language, key))
        elif action == FaqAction.HISTORY:
            view = faq_view.history_view(settings, language, key, services.store.faq.changes(key))
        else:  # SHOW (typing actions are the conversation's)
            view = entry_or_list(services, language, key)
    except FaqProblem as problem:
        await answer_press(query, faq_text(settings, language, problem.reason, **problem.values), show_alert=True)
        return
    await answer_press(query)
    await _show(query, view)


async def drop_buttons(context: BotContext, chat_id: int, message_id: int | None) -> None:
    """Take the buttons off a message (a prompt answered, a ✖ pressed); a message gone is fine."""
    if message_id is None:
        return
    try:
        await context.bot.edit_message_reply_markup(chat_id, message_id, reply_markup=None)
    except BadRequest as error:
        log.info("could not remove the buttons of /faq prompt %s: %s", message_id, error)


def button_handler() -> CallbackQueryHandler[BotContext, Any]:
    """The handler of /faq buttons that do not start typing (bot/app.py adds it before the staff buttons')."""
    return PrefixedButtons(on_button, faq_callbacks.VERSION)
