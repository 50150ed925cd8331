"""The customer's own buttons: "did you mean…?" under an unsure question, 👍 / 👎 under an automatic answer.

Button data is "c1:<decision id>:<action>" (at most 64 bytes): p0 / p1 / p2 (pick the entry at that place
among the decision's alternatives), no (none of these, ask staff), up (👍), dn (👎). Parsing is strict; everything else is looked
up server-side. Only the customer whose message made the decision may press, in their own chat; a
press on buttons already answered, on a decision staff settled, or with forged data is refused
with a short answer and changes nothing. What each press means lives in shop/conversation.py.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters, Update, User
from telegram.error import BadRequest, TelegramError
from telegram.ext import CallbackQueryHandler

from bot import clock
from bot.callbacks import CallbackDataError
from bot.context import BotContext
from bot.handlers import staff
from bot.handlers.common import PrefixedButtons, answer_press, press_of, user_language
from bot.limits import MAX_CALLBACK_DATA, MAX_TEXT, utf16_cut
from bot.staff_view import Customer, should_notify
from serving.prediction import Prediction
from settings import Settings
from shop import hours, takeover
from shop.conversation import PICKABLE, CustomerChoices, PressRefused, Suggestion
from shop.texts import customer_text, staff_text
from storage.records import Decision, FaqEntry
from vocabulary import Action, CustomerFeedback, SuggestionOutcome

log = logging.getLogger(__name__)
PREFIX = "c1"
_SHAPE = re.compile(rf"{PREFIX}:([1-9][0-9]{{0,17}}):(p[0-{PICKABLE - 1}]|no|up|dn)")
MAX_BUTTON = 60  # UTF-16 units of a suggested question on its button


class PressAction(StrEnum):
    """What a customer button does (besides picks, which travel as p<n>)."""

    NONE = "no"  # none of these: ask staff
    UP = "up"  # 👍
    DOWN = "dn"  # 👎


@dataclass(frozen=True)
class CustomerPress:
    """A parsed customer button: the decision, and a pick's number or another action."""

    decision_id: int
    pick: int | None = None
    action: PressAction | None = None


def encode(decision_id: int, action: PressAction | None = None, pick: int | None = None) -> str:
    """The callback_data of a customer button; ValueError for anything `decode` would refuse."""
    data = f"{PREFIX}:{decision_id}:{f'p{pick}' if action is None else action}"
    if len(data.encode()) > MAX_CALLBACK_DATA or _SHAPE.fullmatch(data) is None:
        raise ValueError(f"not valid customer button data: {data!r}")
    return data


def decode(data: object) -> CustomerPress:
    """Parse callback_data strictly; CallbackDataError("forged") otherwise."""
    match = _SHAPE.fullmatch(data) if isinstance(data, str) and len(data) <= MAX_CALLBACK_DATA else None
    if match is None:
        raise CallbackDataError("forged", data)
    decision_id, action = int(match[1]), match[2]
    if action.startswith("p"):
        return CustomerPress(decision_id, pick=int(action[1:]))
    return CustomerPress(decision_id, action=PressAction(action))


def suggestion_keyboard(settings: Settings, language: str, decision_id: int,
                        offered: list[Suggestion]) -> InlineKeyboardMarkup:
    """One button per offered entry (its question; its data names its place among the alternatives), then "none of
    these, ask staff"."""
    rows = [[InlineKeyboardButton(utf16_cut(s.question, MAX_BUTTON), callback_data=encode(decision_id, pick=s.number))]
            for s in offered]
    rows.append([InlineKeyboardButton(customer_text(settings, language, "suggest_none"),
                                      callback_data=encode(decision_id, PressAction.NONE))])
    return InlineKeyboardMarkup(rows)


def rating_keyboard(settings: Settings, language: str, decision_id: int,
                    chosen: str | None = None) -> InlineKeyboardMarkup:
    """👍 / 👎 under an automatic answer; the chosen one (if any) marked."""
    def button(feedback: CustomerFeedback, action: PressAction) -> InlineKeyboardButton:
        text = customer_text(settings, language, f"rate_{feedback}")
        return InlineKeyboardButton(f"{text} ✓" if chosen == feedback else text,
                                    callback_data=encode(decision_id, action))

    return InlineKeyboardMarkup([[button(CustomerFeedback.UP, PressAction.UP),
                                  button(CustomerFeedback.DOWN, PressAction.DOWN)]])


async def offer(context: BotContext, message: Message, customer_id: int, text: str, decision: Prediction,
                offered: list[Suggestion], language: str) -> None:
    """Store the question as awaiting the customer's pick and show them the suggestions (mirrored once they choose)."""
    services = context.services
    stored = services.store.messages.add(customer_id, message.chat_id, message.message_id, text)
    record = services.store.decisions.add(
        stored.id, decision.kind, decision.label, decision.confidence, Action.SUGGESTED, source=decision.source,
        adapter_version=decision.version, alternatives=decision.alternatives, suggestion=SuggestionOutcome.OFFERED)
    await message.reply_text(customer_text(services.settings, language, "suggest_prompt"),
                             reply_markup=suggestion_keyboard(services.settings, language, record.id, offered))


async def _mirror(context: BotContext, user: User, decision: Decision, entry: FaqEntry | None, language: str) -> None:
    """Mirror a decision the customer's press settled, as on_text mirrors the others."""
    await _mirror_as(context, Customer(user.id, user.first_name, language), decision, entry)


async def _mirror_as(context: BotContext, customer: Customer, decision: Decision, entry: FaqEntry | None) -> None:
    services = context.services
    if not services.settings.roles.staff_chat_id or decision.message_id is None:
        return
    message = services.store.messages.get(decision.message_id)
    if services.store.customers.get(customer.id).opted_out and not should_notify(decision):
        return
    await staff.post_mirror(context, decision, message.text or "", customer, entry)


async def expire_offers(context: BotContext) -> None:
    """JobQueue callback: did-you-mean buttons nobody pressed in `thresholds.suggestion_wait_minutes` hand the
    question to staff (mirrored, ringing) and the customer is told staff will answer, unless staff are talking
    with them by now (a takeover: the bot sends them nothing); a later press is stale."""
    services = context.services
    wait = timedelta(minutes=services.settings.thresholds.suggestion_wait_minutes)
    choices = CustomerChoices(services.store)
    for offered in services.store.decisions.offered_before(datetime.now(UTC) - wait):
        decision = choices.expire_suggestions(offered.id)
        if decision is None or decision.message_id is None:
            continue  # the customer chose meanwhile, or the message is gone
        message = services.store.messages.get(decision.message_id)
        language = services.store.customers.language_of(message.customer_id) or services.settings.default_language
        if not takeover.taken_over(services.store.customers.get(message.customer_id), clock.now()):
            try:
                await context.bot.send_message(
                    message.chat_id, hours.handoff_text(services.settings, language, clock.now()),
                    reply_parameters=ReplyParameters(message.telegram_message_id, allow_sending_without_reply=True))
            except TelegramError as error:  # blocked, or gone: staff still get the question
                log.warning("could not tell customer %s their question went to staff: %s", message.customer_id, error)
        await _mirror_as(context, Customer(message.customer_id, str(message.customer_id), language), decision, None)


async def _alert_staff(context: BotContext, user: User, decision: Decision, language: str) -> None:
    """👎: a ringing message in the staff chat replying to the mirror (posted first if there was none)."""
    services = context.services
    chat_id = services.settings.roles.staff_chat_id
    if not chat_id:
        return
    if decision.staff_message_id is None:
        await _mirror(context, user, decision, None, language)
        decision = services.store.decisions.get(decision.id)
    reply = None if decision.staff_message_id is None else ReplyParameters(decision.staff_message_id,
                                                                           allow_sending_without_reply=True)
    await context.bot.send_message(chat_id, staff_text(services.settings, "rated_down"), reply_parameters=reply)


async def _edit(query: CallbackQuery, text: str | None, markup: InlineKeyboardMarkup | None) -> None:
    try:
        if text is None:
            await query.edit_message_reply_markup(markup)
        else:
            await query.edit_message_text(utf16_cut(text, MAX_TEXT), reply_markup=markup)
    except BadRequest as error:  # deleted meanwhile, or too old to edit
        log.warning("could not edit the customer's message: %s", error)


async def on_press(update: Update, context: BotContext) -> None:
    """A customer button: pick a suggestion, refuse them, or rate an automatic answer."""
    query, services = press_of(update), context.services
    user, settings = query.from_user, services.settings
    language = user_language(services, user)
    say = functools.partial(customer_text, settings, language)
    try:
        press = decode(query.data)
    except CallbackDataError as error:
        log.warning("refused customer button data from user %s: %s", user.id, error)
        await answer_press(query, say("press_forged"), show_alert=True)
        return
    choices = CustomerChoices(services.store)
    try:
        if not isinstance(query.message, Message) or query.message.chat.id != user.id:
            raise PressRefused("not_yours")  # pressed outside the customer's own chat (or an inline message)
        if press.pick is not None:
            decision, entry = choices.pick_suggestion(press.decision_id, press.pick, user.id, language)
            await answer_press(query)
            await _edit(query, entry.answer, rating_keyboard(settings, language, decision.id))
            context.application.create_task(_mirror(context, user, decision, entry, language), update=update)
        elif press.action == PressAction.NONE:
            decision = choices.refuse_suggestions(press.decision_id, user.id)
            await answer_press(query)
            await _edit(query, hours.handoff_text(settings, language, clock.now()), None)
            context.application.create_task(_mirror(context, user, decision, None, language), update=update)
        else:
            feedback = CustomerFeedback.UP if press.action == PressAction.UP else CustomerFeedback.DOWN
            rated = choices.rate_answer(press.decision_id, user.id, feedback)
            if rated is None:
                await answer_press(query, say("rate_same"))
                return
            await answer_press(query, say(f"rate_thanks_{feedback}"))
            await _edit(query, None, None if rated.changed else rating_keyboard(settings, language, rated.decision.id,
                                                                                 feedback))
            if feedback == CustomerFeedback.DOWN:
                context.application.create_task(_alert_staff(context, user, rated.decision, language), update=update)
    except PressRefused as refused:
        key = "rate_final" if refused.reason == "final" else f"press_{refused.reason}"
        log.info("refused customer press %r of user %s: %s", query.data, user.id, refused.reason)
        await answer_press(query, say(key), show_alert=True)
    except TelegramError as error:  # the work is stored; only showing it failed
        log.warning("customer press %r: %s", query.data, error)


def button_handler() -> CallbackQueryHandler[BotContext, None]:
    """The handler of the customer buttons; bot/app.py registers it before the staff buttons."""
    return PrefixedButtons(on_press, PREFIX)
