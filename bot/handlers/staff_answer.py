""""✍ write the answer": a staff member types the answer to a question themselves.

    (not answering) --✍ pressed--> TYPING --answer typed--> END   answer sent, new FAQ entry learnt
                                     |  --/cancel or ✖---> END   buttons put back
                                     |  --timeout--------> END   buttons put back, "timed out"
                                     '--✍ on another----> TYPING (that one instead)

One conversation per (staff chat, staff member). The prompt is a ForceReply aimed at the staff
member, so their answer reaches the bot even with group privacy mode on.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from telegram import ForceReply, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler, TypeHandler, filters

from bot import callbacks, staff_view
from bot.context import BotContext
from bot.handlers import staff
from bot.handlers.common import (
    answer_press,
    display_name,
    faq_lookup,
    message_html,
    message_of,
    tell,
    user_data_of,
    user_of,
)
from shop.texts import staff_text
from storage.records import NotFoundError

log = logging.getLogger(__name__)

TYPING = 1
ANSWERING = "answering"  # user_data key: the Pending answer of this staff member
DEFAULT_TIMEOUT_S = 300.0
_ANSWER = re.compile(rf"^{callbacks.VERSION}:\d+:{callbacks.ButtonAction.ANSWER}$")
_CANCEL = re.compile(rf"^{callbacks.VERSION}:\d+:{callbacks.ButtonAction.CANCEL}$")


@dataclass(frozen=True)
class Pending:
    """The question a staff member is answering, and the messages involved."""

    decision_id: int
    chat_id: int
    mirror_id: int
    mirror_html: str
    prompt_id: int | None


def _minutes(context: BotContext) -> str:
    return f"{context.bot_data.answer_timeout_s / 60:.3g}"


async def _restore(context: BotContext, pending: Pending) -> None:
    """Put the mirror's own buttons back and remove the prompt."""
    services = context.services
    try:
        decision = services.store.decisions.get(pending.decision_id)
    except NotFoundError:
        decision = None
    if decision is not None and decision.status == "pending":
        markup = staff_view.main_keyboard(services.settings, decision, faq_lookup(services))
        try:
            await context.bot.edit_message_reply_markup(pending.chat_id, pending.mirror_id, reply_markup=markup)
        except BadRequest as error:
            log.info("could not restore buttons of %s: %s", pending.mirror_id, error)
    await _drop_prompt(context, pending)


async def _drop_prompt(context: BotContext, pending: Pending) -> None:
    if pending.prompt_id is None:
        return
    try:
        await context.bot.delete_message(pending.chat_id, pending.prompt_id)
    except BadRequest as error:
        log.info("could not delete prompt %s: %s", pending.prompt_id, error)


async def begin(update: Update, context: BotContext) -> int:
    """✍ pressed: ask this staff member to type the answer."""
    press = await staff.checked_press(update, context)
    user_data = user_data_of(context)
    if press is None:
        return TYPING if ANSWERING in user_data else ConversationHandler.END
    query, decision, mirror, settings = press.query, press.decision, press.mirror, context.services.settings
    previous: Pending | None = user_data.pop(ANSWERING, None)
    if previous is not None:
        await _restore(context, previous)
    try:  # the prompt first: if it can't be sent, the mirror keeps its buttons and the presser learns why
        prompt = await context.bot.send_message(
            mirror.chat.id,
            staff_text(settings, "write_prompt", name=staff_view.user_link(query.from_user.id,
                                                                           display_name(query.from_user)),
                       minutes=_minutes(context)),
            parse_mode=ParseMode.HTML, reply_to_message_id=mirror.message_id,
            reply_markup=ForceReply(selective=True, input_field_placeholder="…"))
    except TelegramError as error:
        log.warning("could not send the answer prompt for decision %s: %s", decision.id, error)
        await answer_press(query, staff_text(settings, "prompt_failed", problem=str(error)), show_alert=True)
        return ConversationHandler.END
    await staff.set_buttons(query, staff_view.answering_keyboard(settings, decision))
    await answer_press(query)
    user_data[ANSWERING] = Pending(decision.id, mirror.chat.id, mirror.message_id, message_html(mirror),
                                   prompt.message_id)
    return TYPING


async def receive(update: Update, context: BotContext) -> int:
    """The answer was typed: send it to the customer and learn it as a new FAQ entry."""
    message, services, user_data = message_of(update), context.services, user_data_of(context)
    pending: Pending | None = user_data.get(ANSWERING)
    if pending is None:
        return ConversationHandler.END
    target = message.reply_to_message
    if target is not None and target.message_id not in (pending.mirror_id, pending.prompt_id):
        await staff.handle_reply(update, context)  # a reply to another mirror: that one, not ours
        return TYPING
    answer = (message.text or "").strip()
    if not answer:
        await message.reply_text(staff_text(services.settings, "write_empty"))
        return TYPING
    user_data.pop(ANSWERING, None)
    try:
        decision = services.store.decisions.get(pending.decision_id)
    except NotFoundError:
        decision = None
    if decision is None or decision.status != "pending":
        await message.reply_text(staff_text(services.settings, "already_done"))
    else:
        await staff.deliver_staff_answer(context, decision, user_of(update), answer, pending.chat_id,
                                         pending.mirror_id, pending.mirror_html)
    await _drop_prompt(context, pending)
    return ConversationHandler.END


async def cancel(update: Update, context: BotContext) -> int:
    """/cancel or ✖: stop writing and put the buttons back."""
    pending: Pending | None = user_data_of(context).pop(ANSWERING, None)
    text = staff_text(context.services.settings, "write_cancelled")
    await tell(update, text)
    if pending is not None:
        await _restore(context, pending)
    return ConversationHandler.END


async def timed_out(update: Update, context: BotContext) -> None:
    """Nobody typed in time: say so and put the buttons back."""
    pending: Pending | None = user_data_of(context).pop(ANSWERING, None)
    if pending is None:
        return
    user = update.effective_user
    await _restore(context, pending)
    await context.bot.send_message(pending.chat_id, staff_text(
        context.services.settings, "write_timeout", name=display_name(user), minutes=_minutes(context)),
        reply_to_message_id=pending.mirror_id)


def conversation(staff_chat_id: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> ConversationHandler:
    """The "write the answer" ConversationHandler for the staff chat."""
    in_staff_chat = filters.Chat(chat_id=staff_chat_id)
    return ConversationHandler(
        entry_points=[CallbackQueryHandler(begin, pattern=_ANSWER)],
        states={
            TYPING: [MessageHandler(in_staff_chat & filters.TEXT & ~filters.COMMAND, receive)],
            ConversationHandler.TIMEOUT: [TypeHandler(Update, timed_out)],
        },
        fallbacks=[CommandHandler("cancel", cancel, filters=in_staff_chat),
                   CallbackQueryHandler(cancel, pattern=_CANCEL)],
        conversation_timeout=timeout_s,
        allow_reentry=True,
        per_chat=True,
        per_user=True,
        per_message=False,
        name="staff_answer",
    )
