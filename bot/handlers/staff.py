"""Staff handlers: the mirror of each decision, ✅/❌ and what follows, and replies to mirrors.

Every press is checked server-side (`checked_press`): the presser must be staff, the data must
parse, the decision must exist, belong to the pressed message and still be pending. Typing an
answer after ✍ lives in bot/handlers/staff_answer.py. A staff answer starts the customer's takeover
(shop/takeover.py; ▶ and /resume are bot/handlers/takeover.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update, User
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot import callbacks, clock, staff_view, takeover_callbacks
from bot.callbacks import ButtonAction, Callback, CallbackDataError
from bot.context import BotContext
from bot.handlers.common import (
    answer_press,
    display_name,
    faq_lookup,
    message_html,
    message_of,
    press_of,
    send_to_customer,
)
from bot.services import Services
from shop.feedback import Outcome
from shop.takeover import take_over
from shop.texts import staff_text
from storage.records import Decision, FaqEntry, NotFoundError
from vocabulary import Action, MessageKind

log = logging.getLogger(__name__)


async def post_mirror(context: BotContext, decision: Decision, text: str, customer: staff_view.Customer,
                      answer: FaqEntry | None, notify: bool | None = None) -> None:
    """Mirror a decision to the staff chat (silently, unless it needs someone or `notify`) and remember where."""
    services = context.services
    settings, lookup = services.settings, faq_lookup(services)
    sent = await context.bot.send_message(
        settings.roles.staff_chat_id, staff_view.mirror_text(settings, decision, text, customer, answer, lookup),
        parse_mode=ParseMode.HTML, reply_markup=staff_view.main_keyboard(settings, decision, lookup),
        disable_notification=not (staff_view.should_notify(decision) if notify is None else notify))
    services.store.decisions.set_staff_message(decision.id, sent.chat_id, sent.message_id)


def claim_mirror(services: Services, message: Message, pressed: int | None = None) -> Decision | None:
    """The decision whose mirror `message` is (the `pressed` one only), while the bot's send of it has not returned
    yet, so where it went is not stored: a staff-chat message carrying that decision's buttons, which only its
    mirror carries. Staff can press or reply in that moment (Telegram shows the message before the bot hears
    back); storing its place here makes the press or reply work as it would a moment later."""
    decision_id = mirrored_id(message)
    if message.chat.id != services.settings.roles.staff_chat_id or decision_id is None or pressed not in (None, decision_id):
        return None
    try:
        decision = services.store.decisions.get(decision_id)
    except NotFoundError:
        return None
    if decision.staff_message_id is not None:
        return None
    return services.store.decisions.set_staff_message(decision.id, message.chat.id, message.message_id)


def mirrored_decision(services: Services, message: Message) -> Decision | None:
    """The decision a staff-chat message is the mirror of, if any (for replies to it)."""
    return services.store.decisions.by_staff_message(message.chat.id, message.message_id) or claim_mirror(
        services, message)


def mirrored_id(message: Message) -> int | None:
    """The decision id on a message's mirror buttons (✅/❌… or ▶ resume), None without them."""
    rows = message.reply_markup.inline_keyboard if message.reply_markup else ()
    for data in (button.callback_data for row in rows for button in row):
        for decode in (lambda data: callbacks.decode(data).decision_id, takeover_callbacks.decode):
            try:
                return decode(data)
            except CallbackDataError:
                continue
    return None


def allowed_actions(decision: Decision) -> tuple[ButtonAction, ...]:
    """The button actions that make sense for this decision."""
    if decision.action == Action.TAKEN_OVER:  # said during a staff conversation: only ▶ (t1:) applies
        return ()
    if decision.kind == MessageKind.REVIEW:
        return tuple(action for action in ButtonAction if action != ButtonAction.FAQ)  # no FAQ entries to pick
    if decision.action == Action.HANDOFF:
        return (ButtonAction.FAQ, ButtonAction.ANSWER, ButtonAction.CANCEL, ButtonAction.LABEL)
    return tuple(ButtonAction)


@dataclass(frozen=True)
class Press:
    """A checked staff press: the query, its parsed button, its pending decision and the mirror pressed."""

    query: CallbackQuery
    button: Callback
    decision: Decision
    mirror: Message

    @property
    def staff(self) -> User:
        """Who pressed."""
        return self.query.from_user


async def checked_press(update: Update, context: BotContext) -> Press | None:
    """The checked press, or None after answering why the press does nothing."""
    query = press_of(update)
    settings = context.services.settings

    async def refuse(key: str) -> None:
        await answer_press(query, staff_text(settings, key), show_alert=True)

    if not settings.is_staff(query.from_user.id):
        log.warning("user %s (not staff) pressed %r", query.from_user.id, query.data)
        await refuse("not_allowed")
        return None
    try:
        button = callbacks.decode(query.data)
    except CallbackDataError as error:
        log.warning("refused button data from user %s: %s", query.from_user.id, error)
        await refuse(error.reason)
        return None
    try:
        decision = context.services.store.decisions.get(button.decision_id)
    except NotFoundError:
        await refuse("unknown_decision")
        return None
    message = query.message
    if message is not None and not message.is_accessible:  # date 0: too old to see, its text can't be kept
        await refuse("too_old")
        return None
    if isinstance(message, Message) and decision.staff_message_id is None:  # its mirror's send may not have returned
        decision = claim_mirror(context.services, message, pressed=decision.id) or decision
    stored = (decision.staff_chat_id, decision.staff_message_id)  # where its mirror was sent
    if not isinstance(message, Message) or (message.chat.id, message.message_id) != stored:
        await refuse("wrong_message")
        return None
    if button.action not in allowed_actions(decision):
        await refuse("not_applicable")
        return None
    if decision.status != "pending":
        await refuse("already_done")
        return None
    return Press(query, button, decision, message)


async def edit_mirror(context: BotContext, chat_id: int, message_id: int, current_html: str, outcome: str) -> None:
    """Show who handled the mirror and how, and take its buttons away."""
    settings = context.services.settings
    try:
        await context.bot.edit_message_text(staff_view.with_outcome(settings, current_html, outcome), chat_id,
                                            message_id, parse_mode=ParseMode.HTML, reply_markup=None)
    except BadRequest as error:  # e.g. the message was deleted in the staff chat meanwhile
        log.warning("could not edit staff message %s: %s", message_id, error)


async def redact_mirrors(context: BotContext, mirrors: list[tuple[int, int]]) -> None:
    """Replace mirrors of a forgotten customer's messages with a removal note, buttons gone."""
    note = staff_text(context.services.settings, "forgotten_mirror")
    for chat_id, message_id in mirrors:
        try:
            await context.bot.edit_message_text(note, chat_id, message_id, reply_markup=None)
        except BadRequest as error:  # deleted in the staff chat meanwhile, or already redacted
            log.warning("could not redact staff message %s: %s", message_id, error)


async def set_buttons(query: CallbackQuery, markup: InlineKeyboardMarkup | None) -> None:
    """Replace the buttons of the pressed message (an unchanged keyboard is fine)."""
    try:
        await query.edit_message_reply_markup(reply_markup=markup)
    except BadRequest as error:
        if "not modified" not in str(error):
            raise


async def _saved(context: BotContext, press: Press) -> None:
    """Tell the presser it is stored: right after storing, before any slower work."""
    await answer_press(press.query, staff_text(context.services.settings, "saved"))


async def _finish(context: BotContext, press: Press, outcome: str) -> None:
    mirror = press.mirror
    await edit_mirror(context, mirror.chat.id, mirror.message_id, message_html(mirror), outcome)


async def deliver(context: BotContext, result: Outcome, staff: User | None, outcome: str) -> str:
    """Send the use case's reply to the customer; returns the mirror's outcome line, plus why if nobody got it."""
    settings = context.services.settings
    if result.customer_gone:
        return outcome + "\n" + staff_text(settings, "customer_gone")
    if result.reply is None:
        return outcome
    problem = await send_to_customer(context.services, context.bot, result.reply.message, result.reply.text)
    if problem:
        outcome += "\n" + staff_text(settings, "answered_undelivered", name=display_name(staff), problem=problem)
    return outcome


def _take_over(context: BotContext, result: Outcome, staff: User | None) -> str:
    """Start (or extend) the takeover of the customer a staff member just wrote to; the mirror's line about it."""
    services = context.services
    if result.reply is None or staff is None:
        return ""
    if take_over(services.settings, services.store, result.reply.message.customer_id, staff.id, clock.now()) is None:
        return ""
    return "\n" + staff_text(services.settings, "takeover_started",
                             minutes=f"{services.settings.conversation.takeover_minutes:g}")


async def _confirm(context: BotContext, press: Press) -> None:
    context.services.feedback.confirm(press.decision, press.staff.id)
    await _saved(context, press)
    await _finish(context, press, staff_view.outcome_confirmed(context.services.settings, display_name(press.staff)))


async def _pick_label(context: BotContext, press: Press, label: str) -> None:
    services, decision, staff = context.services, press.decision, press.staff
    settings, name = services.settings, display_name(staff)
    result = services.feedback.relabel(decision, staff.id, label)
    await _saved(context, press)
    if decision.kind == MessageKind.QUESTION:  # "it's a review": the customer is thanked for it
        outcome = await deliver(context, result, staff, staff_view.outcome_review(settings, name, label))
    elif label == decision.label:
        outcome = staff_view.outcome_confirmed(settings, name)
    else:
        outcome = staff_view.outcome_label(settings, name, decision.label, label)
    await _finish(context, press, outcome)


async def _pick_faq(context: BotContext, press: Press, number: int) -> None:
    services, query, decision, staff = context.services, press.query, press.decision, press.staff
    settings = services.settings
    if number >= len(decision.alternatives):
        await answer_press(query, staff_text(settings, "stale"), show_alert=True)
        return
    key = decision.alternatives[number][0]
    try:
        result = services.feedback.pick_faq(decision, staff.id, key)
    except NotFoundError:
        await answer_press(query, staff_text(settings, "faq_missing"), show_alert=True)
        return
    await _saved(context, press)
    outcome = staff_view.outcome_faq(settings, display_name(staff), key, faq_lookup(services))
    # Staff answered a handed-off question: the conversation is theirs (before the customer can read it and write).
    note = _take_over(context, result, staff) if decision.action == Action.HANDOFF else ""
    await _finish(context, press, await deliver(context, result, staff, outcome) + note)


async def on_button(update: Update, context: BotContext) -> None:
    """A staff button: ✅, ❌ (open the menu), ↩ back, a sentiment label (on a question: "it's a review"),
    an FAQ entry, ✖."""
    press = await checked_press(update, context)
    if press is None:
        return
    services, query, decision, action = context.services, press.query, press.decision, press.button.action
    lookup = faq_lookup(services)
    if action == ButtonAction.CONFIRM:
        await _confirm(context, press)
    elif action == ButtonAction.CORRECT:
        await answer_press(query, staff_text(services.settings, "pick_label") if decision.kind == MessageKind.REVIEW else None)
        await set_buttons(query, staff_view.correction_keyboard(services.settings, decision, lookup))
    elif action in (ButtonAction.BACK, ButtonAction.CANCEL):  # a cancel here: outside anyone's answering conversation
        await answer_press(query)
        await set_buttons(query, staff_view.main_keyboard(services.settings, decision, lookup))
    elif action == ButtonAction.LABEL:
        await _pick_label(context, press, press.button.label)
    elif action == ButtonAction.FAQ:
        await _pick_faq(context, press, press.button.faq_index)
    else:  # ANSWER is taken by the answering conversation before it gets here
        await answer_press(query, staff_text(services.settings, "not_applicable"), show_alert=True)


async def deliver_staff_answer(context: BotContext, decision: Decision, staff: User, answer: str,
                               mirror_chat_id: int, mirror_message_id: int, mirror_html: str) -> None:
    """A staff member's own answer to a question: store it as a new FAQ entry, learn it, send it, show it."""
    settings = context.services.settings
    result = context.services.feedback.answer(decision, staff.id, answer)
    note = _take_over(context, result, staff)  # before the customer can read the answer and write again
    outcome = await deliver(context, result, staff, staff_view.outcome_answer(settings, display_name(staff), answer))
    outcome += note
    await edit_mirror(context, mirror_chat_id, mirror_message_id, mirror_html, outcome)


async def relay_reply(context: BotContext, decision: Decision, staff_message: Message, text: str) -> None:
    """Pass a staff message on to the customer without learning from it (reviews, follow-ups)."""
    settings = context.services.settings
    result = context.services.feedback.relay(decision, text)
    if result.customer_gone or result.reply is None:
        await staff_message.reply_text(staff_text(settings, "customer_gone"))
        return
    _take_over(context, result, staff_message.from_user)  # each staff message extends the takeover
    problem = await send_to_customer(context.services, context.bot, result.reply.message, result.reply.text)
    notice = staff_text(settings, "relayed") if problem is None else staff_text(
        settings, "answered_undelivered", name=display_name(staff_message.from_user), problem=problem)
    await staff_message.reply_text(notice)


async def handle_reply(update: Update, context: BotContext) -> bool:
    """Act on a staff reply to a mirror message; False if it replies to something else."""
    message, services = message_of(update), context.services
    target = message.reply_to_message
    if target is None or target.from_user is None or target.from_user.id != context.bot.id:
        return False
    staff = message.from_user
    if staff is None or not services.settings.is_staff(staff.id):
        return False
    decision = mirrored_decision(services, target)
    text = (message.text or "").strip()
    if decision is None or not text:
        return False
    if decision.kind == MessageKind.QUESTION and decision.status == "pending" and decision.action != Action.TAKEN_OVER:
        await deliver_staff_answer(context, decision, staff, text, target.chat.id, target.message_id,
                                   message_html(target))
    else:
        await relay_reply(context, decision, message, text)
    return True


async def on_staff_reply(update: Update, context: BotContext) -> None:
    """A reply to a mirror in the staff chat: answers a handed-off question, or is passed on to the customer."""
    await handle_reply(update, context)
