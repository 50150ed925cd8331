"""The owner's buttons under the weekly report's suggested FAQ entries, and the draft each one opens.

Button data is "sg1:<tag>:<n>:<action>" (at most 64 bytes): the report's suggestion tag (8 hex
characters, see shop.report.suggested), the suggestion's number, and d (show the draft), ok (✅ add
it as an FAQ entry) or x (✖ discard it). Parsing is strict; everything else (the questions, the
answer) is looked up server-side, and only owners may press. A press on an older report's buttons
(another tag), on a suggestion already added or discarded, or with forged data is refused with a
short answer and changes nothing.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from enum import StrEnum

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler

from bot.callbacks import CallbackDataError
from bot.context import BotContext
from bot.handlers.common import PrefixedButtons, answer_press, press_of, user_language
from bot.limits import MAX_CALLBACK_DATA, MAX_TEXT, utf16_cut
from settings import Settings
from shop.formatting import shorten
from shop.report.suggested import Draft, SuggestionBook, SuggestionError
from shop.report.weekly import WeeklyReport
from shop.texts import owner_text

log = logging.getLogger(__name__)
PREFIX = "sg1"
_SHAPE = re.compile(rf"{PREFIX}:([0-9a-f]{{8}}):([1-9][0-9]?):(d|ok|x)")


class SuggestAction(StrEnum):
    """What a suggestion button does; the value travels in callback_data."""

    DRAFT = "d"  # show the draft entry
    ADD = "ok"  # ✅ add it
    DISCARD = "x"  # ✖ discard it


@dataclass(frozen=True)
class SuggestPress:
    """A parsed suggestion button."""

    tag: str
    number: int
    action: SuggestAction


def encode(tag: str, number: int, action: SuggestAction) -> str:
    """The callback_data of a suggestion button; ValueError for anything `decode` would refuse."""
    data = f"{PREFIX}:{tag}:{number}:{action}"
    if len(data.encode()) > MAX_CALLBACK_DATA or _SHAPE.fullmatch(data) is None:
        raise ValueError(f"not valid suggestion button data: {data!r}")
    return data


def decode(data: object) -> SuggestPress:
    """Parse callback_data strictly; CallbackDataError("forged") otherwise."""
    match = _SHAPE.fullmatch(data) if isinstance(data, str) and len(data) <= MAX_CALLBACK_DATA else None
    if match is None:
        raise CallbackDataError("forged", data)
    tag, number, action = match.groups()
    return SuggestPress(tag, int(number), SuggestAction(action))


def report_keyboard(settings: Settings, language: str, report: WeeklyReport) -> InlineKeyboardMarkup | None:
    """One button per suggested entry under the report (None without suggestions)."""
    if not report.suggestions or report.suggestion_tag is None:
        return None
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(owner_text(settings, language, "suggest_button", n=number, label=shorten(s.label, 30)),
                              callback_data=encode(report.suggestion_tag, number, SuggestAction.DRAFT))]
        for number, s in enumerate(report.suggestions, 1)])


def _draft_text(settings: Settings, language: str, draft: Draft) -> str:
    say = functools.partial(owner_text, settings, language)
    phrasings = say("list_sep").join(f"“{shorten(p, 60)}”" for p in draft.phrasings[:10]) or "–"
    return utf16_cut(say("draft", n=draft.number, question=draft.question,
                         answer=draft.answer if draft.answer is not None else say("draft_no_answer"),
                         phrasings=phrasings), MAX_TEXT)


def _draft_keyboard(settings: Settings, language: str, tag: str, draft: Draft) -> InlineKeyboardMarkup:
    say = functools.partial(owner_text, settings, language)
    buttons = [] if draft.answer is None else [  # without an answer there is nothing to add yet: only discard
        InlineKeyboardButton(say("draft_add"), callback_data=encode(tag, draft.number, SuggestAction.ADD))]
    buttons.append(InlineKeyboardButton(say("draft_discard"),
                                        callback_data=encode(tag, draft.number, SuggestAction.DISCARD)))
    return InlineKeyboardMarkup([buttons])


async def _conclude(query: CallbackQuery, context: BotContext, text: str) -> None:
    """Add the outcome to the draft and take its buttons away (or send it, if the draft can't be edited)."""
    message = query.message
    if isinstance(message, Message) and message.text:
        try:
            await query.edit_message_text(utf16_cut(f"{message.text}\n\n{text}", MAX_TEXT), reply_markup=None)
            return
        except BadRequest as error:  # deleted meanwhile, or too old to edit
            log.warning("could not edit the draft message: %s", error)
    await context.bot.send_message(query.from_user.id, text)


async def on_press(update: Update, context: BotContext) -> None:
    """A suggestion button: show its draft, add it as an FAQ entry, or discard it (owners only)."""
    query, services = press_of(update), context.services
    settings = services.settings
    language = user_language(services, query.from_user)
    say = functools.partial(owner_text, settings, language)
    if not settings.is_owner(query.from_user.id):
        log.warning("user %s (not an owner) pressed %r", query.from_user.id, query.data)
        await answer_press(query, say("sg_owner_only"), show_alert=True)
        return
    try:
        press = decode(query.data)
    except CallbackDataError as error:
        log.warning("refused suggestion button data from user %s: %s", query.from_user.id, error)
        await answer_press(query, say("sg_forged"), show_alert=True)
        return
    book = SuggestionBook(services.store, services.runtime.remember, services.request_index_refresh)
    try:
        if press.action == SuggestAction.DRAFT:
            draft = book.draft(press.tag, press.number)
            await answer_press(query)
            await context.bot.send_message(query.from_user.id, _draft_text(settings, language, draft),
                                           reply_markup=_draft_keyboard(settings, language, press.tag, draft))
        elif press.action == SuggestAction.ADD:
            key, count = book.add(press.tag, press.number, query.from_user.id)
            await answer_press(query)
            await _conclude(query, context, say("draft_added", entry=key, count=count))
        else:
            book.discard(press.tag, press.number)
            await answer_press(query)
            await _conclude(query, context, say("draft_discarded"))
    except SuggestionError as error:
        reason = "forged" if error.reason == "unknown" else error.reason
        await answer_press(query, say(f"sg_{reason}"), show_alert=True)


def button_handler() -> CallbackQueryHandler[BotContext, None]:
    """The handler of the suggestion buttons; bot/app.py registers it before the staff buttons."""
    return PrefixedButtons(on_press, PREFIX)
