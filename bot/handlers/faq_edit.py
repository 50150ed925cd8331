"""/faq's typing flows: the editor presses ✏ or ➕ and types the new text in their private chat.

    (not typing) --✏ / ➕ pressed--> TYPING --text typed--> END   saved, the entry shown again with a ✔ line
                                       |  --/cancel or ✖----> END   nothing changed
                                       |  --timeout---------> END   "timed out", nothing changed
                                       '--✏ / ➕ on another--> TYPING (that one instead)

A new entry (or a language an entry lacks) is typed in parts: its name, its question, then its answer,
TYPING each time. One conversation per (chat, editor); the presses are checked by bot/handlers/faq.py.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace
from enum import StrEnum

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import CommandHandler, ConversationHandler, MessageHandler, TypeHandler, filters

from bot import faq_callbacks, faq_view
from bot.context import BotContext
from bot.faq_callbacks import FaqAction
from bot.handlers.common import PrefixedButtons, answer_press, message_of, tell, user_data_of, user_language, user_of
from bot.handlers.faq import (
    FaqPress,
    checked_press,
    drop_buttons,
    entry_or_list,
    knowledge,
    refusal,
    with_notice,
)
from bot.limits import MAX_TEXT, utf16_len
from bot.services import Services
from shop.knowledge.editing import FaqProblem
from shop.texts import faq_text

log = logging.getLogger(__name__)

TYPING = 1
DRAFT = "faq_draft"  # user_data key: what this editor is typing
MAX_ANSWER = MAX_TEXT - 96  # room for the wrapper staff answers are sent in ("From our staff: …")
MAX_QUESTION = 500
_TYPING = rf"^{faq_callbacks.VERSION}:({'|'.join(faq_callbacks.TYPING_ACTIONS)})(:|$)"
_CANCEL = rf"^{faq_callbacks.VERSION}:{FaqAction.CANCEL}$"


class Step(StrEnum):
    """What the text typed next is."""

    ANSWER = "answer"  # the new answer of (key, language)
    QUESTION = "question"  # the new question of (key, language)
    PHRASING = "phrasing"  # another wording of key
    KEY = "key"  # the name of a new entry
    NEW_QUESTION = "new_question"  # the question of a new entry (or of a language key lacks)
    NEW_ANSWER = "new_answer"  # then its answer


@dataclass(frozen=True)
class Draft:
    """A typing flow in progress: the step, the entry and language it concerns, and the prompt shown."""

    step: Step
    chat_id: int
    key: str | None = None
    language: str | None = None
    question: str | None = None
    prompt_id: int | None = None


async def _prompt(context: BotContext, draft: Draft, language: str, text: str) -> Draft:
    """Ask for the next text; the draft, remembering the prompt (whose ✖ is removed when it is answered)."""
    view = faq_view.prompt_view(context.services.settings, language, text)
    sent = await context.bot.send_message(draft.chat_id, view.text, reply_markup=view.markup)
    user_data_of(context)[DRAFT] = draft = replace(draft, prompt_id=sent.message_id)
    return draft


def _first_prompt(services: Services, press: FaqPress) -> tuple[Draft, str]:
    """The draft and prompt a typing button starts with (FaqProblem when its entry is gone)."""
    settings, language, key, code = services.settings, press.language, press.key, press.button.language
    say = functools.partial(faq_text, settings, language)
    chat_id, action = press.editor.id, press.button.action
    if action == FaqAction.NEW:
        return Draft(Step.KEY, chat_id), say("prompt_key")
    assert key is not None
    rows = {row.language: row for row in knowledge(services).live(key)}
    if action == FaqAction.PHRASING:
        return Draft(Step.PHRASING, chat_id, key), say("prompt_phrasing", key=key)
    assert code is not None
    name = faq_view.language_name(settings, language, code)
    if code not in rows:  # a language the entry lacks: its question, then its answer
        return Draft(Step.NEW_QUESTION, chat_id, key, code), say("prompt_language_question", key=key, language=name)
    if action == FaqAction.QUESTION:
        return (Draft(Step.QUESTION, chat_id, key, code),
                say("prompt_question", key=key, language=name, current=faq_view.quoted(rows[code].question)))
    return (Draft(Step.ANSWER, chat_id, key, code),
            say("prompt_answer", key=key, language=name, current=faq_view.quoted(rows[code].answer)))


async def begin(update: Update, context: BotContext) -> int:
    """✏ or ➕ pressed: ask for the text."""
    press = await checked_press(update, context)
    user_data = user_data_of(context)
    if press is None:
        return TYPING if DRAFT in user_data else ConversationHandler.END
    services = context.services
    try:
        first = _first_prompt(services, press)
    except FaqProblem as problem:
        await answer_press(press.query, faq_text(services.settings, press.language, problem.reason, **problem.values),
                           show_alert=True)
        return TYPING if DRAFT in user_data else ConversationHandler.END
    previous: Draft | None = user_data.pop(DRAFT, None)
    if previous is not None:
        await drop_buttons(context, previous.chat_id, previous.prompt_id)
    await answer_press(press.query)
    await _prompt(context, first[0], press.language, first[1])
    return TYPING


async def _done(context: BotContext, draft: Draft, language: str, notice: str) -> int:
    """Saved: say so with the entry as it is now, and end the flow."""
    services = context.services
    user_data_of(context).pop(DRAFT, None)
    await drop_buttons(context, draft.chat_id, draft.prompt_id)
    assert draft.key is not None
    view = with_notice(notice, entry_or_list(services, language, draft.key))
    await context.bot.send_message(draft.chat_id, view.text, reply_markup=view.markup)
    return ConversationHandler.END


async def receive(update: Update, context: BotContext) -> int:
    """The text was typed: store it (or ask for the next part of a new entry)."""
    message, services, user = message_of(update), context.services, user_of(update)
    draft: Draft | None = user_data_of(context).get(DRAFT)
    if draft is None:
        return ConversationHandler.END
    language = user_language(services, user)
    say = functools.partial(faq_text, services.settings, language)
    text = message.text or ""
    limit = MAX_ANSWER if draft.step in (Step.ANSWER, Step.NEW_ANSWER) else MAX_QUESTION
    if utf16_len(text.strip()) > limit:
        await message.reply_text(say("too_long", length=utf16_len(text.strip()), limit=limit))
        return TYPING
    if not services.settings.may_edit_faq(user.id):  # the config changed meanwhile
        user_data_of(context).pop(DRAFT, None)
        await message.reply_text(say(refusal(services)))
        return ConversationHandler.END
    try:
        return await _store(context, draft, language, text, user.id)
    except FaqProblem as problem:
        await message.reply_text(say(problem.reason, **problem.values))
        if problem.reason == "gone":
            user_data_of(context).pop(DRAFT, None)
            return ConversationHandler.END
        return TYPING


async def _store(context: BotContext, draft: Draft, language: str, text: str, editor: int) -> int:
    services = context.services
    settings, faq = services.settings, knowledge(services)
    say = functools.partial(faq_text, settings, language)
    if draft.step == Step.KEY:
        key = faq.check_new_key(text)
        draft = replace(draft, step=Step.NEW_QUESTION, key=key)
        await _prompt(context, draft, language, say("prompt_new_question", key=key))
        return TYPING
    assert draft.key is not None
    key = draft.key
    if draft.step == Step.NEW_QUESTION:
        question = faq.check_question(key, text)
        code = draft.language or faq.language_of(question)
        draft = replace(draft, step=Step.NEW_ANSWER, question=question, language=code)
        await _prompt(context, draft, language, say("prompt_new_answer",
                                                    language=faq_view.language_name(settings, language, code)))
        return TYPING
    if draft.step == Step.NEW_ANSWER:
        assert draft.question is not None and draft.language is not None
        existed = bool(services.store.faq.entry(key))
        entry = faq.add_entry(key, draft.question, text, editor, language=draft.language if existed else None)
        name = faq_view.language_name(settings, language, entry.language)
        log.info("faq: %s added %r (%s)", editor, key, entry.language)
        return await _done(context, draft, language, say("language_saved" if existed else "entry_saved", key=key,
                                                         language=name))
    if draft.step == Step.PHRASING:
        faq.add_phrasing(key, text, editor)
        log.info("faq: %s added a wording to %r", editor, key)
        return await _done(context, draft, language, say("phrasing_saved", text=text.strip(), key=key))
    assert draft.language is not None
    edit = faq.edit_question if draft.step == Step.QUESTION else faq.edit_answer
    change = edit(key, draft.language, text, editor)
    if change is None:
        return await _done(context, draft, language, say("unchanged"))
    log.info("faq: %s changed the %s (%s) of %r", editor, change.field, change.language, key)
    return await _done(context, draft, language, say(
        "saved", key=key, field=say(f"field_{change.field}"),
        language=faq_view.language_name(settings, language, draft.language)))


async def cancel(update: Update, context: BotContext) -> int:
    """/cancel or ✖: stop typing; nothing changes."""
    draft: Draft | None = user_data_of(context).pop(DRAFT, None)
    services = context.services
    text = faq_text(services.settings, user_language(services, update.effective_user), "cancelled")
    await tell(update, text)
    if draft is not None:
        await drop_buttons(context, draft.chat_id, draft.prompt_id)
    return ConversationHandler.END


async def timed_out(update: Update, context: BotContext) -> None:
    """Nothing was typed in time: say so; nothing changes."""
    draft: Draft | None = user_data_of(context).pop(DRAFT, None)
    if draft is None:
        return
    services = context.services
    await drop_buttons(context, draft.chat_id, draft.prompt_id)
    try:
        await context.bot.send_message(draft.chat_id, faq_text(
            services.settings, user_language(services, update.effective_user), "timed_out",
            minutes=f"{context.bot_data.answer_timeout_s / 60:.3g}"))
    except TelegramError as error:
        log.info("could not tell %s that /faq timed out: %s", draft.chat_id, error)


def conversation(timeout_s: float) -> ConversationHandler:
    """The typing flows of /faq, in the editor's private chat."""
    private = filters.ChatType.PRIVATE
    return ConversationHandler(
        entry_points=[PrefixedButtons(begin, faq_callbacks.VERSION, pattern=_TYPING)],
        states={
            TYPING: [MessageHandler(private & filters.TEXT & ~filters.COMMAND & filters.UpdateType.MESSAGE, receive)],
            ConversationHandler.TIMEOUT: [TypeHandler(Update, timed_out)],
        },
        fallbacks=[CommandHandler("cancel", cancel, filters=private), PrefixedButtons(cancel, faq_callbacks.VERSION, pattern=_CANCEL)],
        conversation_timeout=timeout_s,
        allow_reentry=True,
        per_chat=True,
        per_user=True,
        per_message=False,
        name="faq_edit",
    )
