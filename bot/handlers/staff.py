"""Staff handlers: the mirror of each decision, ✅/❌ and what follows, and replies to mirrors.

Every press is checked server-side (`checked_press`): the presser must be staff, the data must
parse, the decision must exist, belong to the pressed message and still be pending. Typing an
answer after ✍ lives in bot/handlers/staff_answer.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from telegram import CallbackQuery, Message, Update, User
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError

from bot import callbacks, staff_view
from bot.callbacks import Callback, CallbackDataError
from bot.context import BotContext
from bot.handlers.common import (
    decision_for_staff_message,
    display_name,
    faq_lookup,
    message_html,
    send_to_customer,
    stored_language,
    stored_message,
)
from bot.limits import MAX_CALLBACK_ANSWER, utf16_cut
from bot.services import Services
from shop.texts import customer_text, review_reply, staff_text
from storage.records import Decision, FaqEntry, NotFoundError

log = logging.getLogger(__name__)


async def post_mirror(context: BotContext, decision: Decision, text: str, customer: staff_view.Customer,
                      answer: FaqEntry | None) -> None:
    """Mirror a decision to the staff chat (silently, unless it needs someone) and remember where."""
    services = context.services
    settings, lookup = services.settings, faq_lookup(services)
    sent = await context.bot.send_message(
        settings.roles.staff_chat_id, staff_view.mirror_text(settings, decision, text, customer, answer, lookup),
        parse_mode=ParseMode.HTML, reply_markup=staff_view.main_keyboard(settings, decision, lookup),
        disable_notification=not staff_view.should_notify(decision))
    services.store.decisions.set_staff_message(decision.id, sent.chat_id, sent.message_id)


def allowed_actions(decision: Decision) -> tuple[str, ...]:
    """The button actions that make sense for this decision."""
    if decision.kind == "review":
        return ("ok", "no", "back", "lab", "ans", "x")
    if decision.action == "handoff":
        return ("faq", "ans", "x", "lab")
    return ("ok", "no", "back", "faq", "ans", "x", "lab")


async def checked_press(update: Update, context: BotContext) -> tuple[Callback, Decision] | None:
    """The parsed press and its decision, or None after answering why the press does nothing."""
    query = update.callback_query
    settings = context.services.settings

    async def refuse(key: str) -> None:
        await answer_press(query, staff_text(settings, key), show_alert=True)

    if not settings.is_staff(query.from_user.id):
        log.warning("user %s (not staff) pressed %r", query.from_user.id, query.data)
        await refuse("not_allowed")
        return None
    try:
        press = callbacks.decode(query.data)
    except CallbackDataError as error:
        log.warning("refused button data from user %s: %s", query.from_user.id, error)
        await refuse(error.reason)
        return None
    try:
        decision = context.services.store.decisions.get(press.decision_id)
    except NotFoundError:
        await refuse("unknown_decision")
        return None
    message = query.message
    if message is not None and not message.is_accessible:  # date 0: too old to see, its text can't be kept
        await refuse("too_old")
        return None
    if message is None or (decision.staff_chat_id, decision.staff_message_id) != (message.chat.id, message.message_id):
        await refuse("wrong_message")
        return None
    if press.action not in allowed_actions(decision):
        await refuse("not_applicable")
        return None
    if decision.status != "pending":
        await refuse("already_done")
        return None
    return press, decision


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


async def answer_press(query: CallbackQuery, text: str | None = None, show_alert: bool = False) -> None:
    """Answer a button press; a late or failed answer costs only the pop-up (logged), never the work."""
    try:
        await query.answer(None if text is None else utf16_cut(text, MAX_CALLBACK_ANSWER), show_alert=show_alert)
    except TelegramError as error:
        log.warning("could not answer the press of user %s: %s", query.from_user.id, error)


async def set_buttons(query: CallbackQuery, markup) -> None:
    """Replace the buttons of the pressed message (an unchanged keyboard is fine)."""
    try:
        await query.edit_message_reply_markup(reply_markup=markup)
    except BadRequest as error:
        if "not modified" not in str(error):
            raise


async def _saved(update: Update, context: BotContext) -> None:
    """Tell the presser it is stored: right after storing, before any slower work."""
    await answer_press(update.callback_query, staff_text(context.services.settings, "saved"))


async def _finish(update: Update, context: BotContext, outcome: str) -> None:
    query = update.callback_query
    await edit_mirror(context, query.message.chat.id, query.message.message_id, message_html(query.message), outcome)


def _remember(services: Services, decision: Decision, task: str, label: str) -> None:
    text = services.store.messages.learnable_text(decision.message_id)  # None once deleted or opted out
    if text is not None:
        services.runtime.remember(text, task, label)


async def _confirm(update: Update, context: BotContext, decision: Decision, staff: User) -> None:
    context.services.store.corrections.add(decision.id, staff.id, "confirm")
    await _saved(update, context)
    await _finish(update, context, staff_view.outcome_confirmed(context.services.settings, display_name(staff)))


async def _pick_label(update: Update, context: BotContext, decision: Decision, staff: User, label: str) -> None:
    services = context.services
    if decision.kind == "question":
        await _mark_review(update, context, decision, staff, label)
        return
    if label == decision.label:
        await _confirm(update, context, decision, staff)
        return
    services.store.corrections.add(decision.id, staff.id, "label", new_label=label)
    _remember(services, decision, "review", label)
    await _saved(update, context)
    await _finish(update, context, staff_view.outcome_label(services.settings, display_name(staff), decision.label,
                                                            label))


async def _tell_customer(context: BotContext, decision: Decision, staff: User, outcome: str,
                         reply: Callable[[str], str]) -> str:
    """Send `reply(language)` to the decision's customer; returns `outcome`, plus a line if that was impossible."""
    services = context.services
    settings = services.settings
    message = stored_message(services, decision)
    if message is None:
        return outcome + "\n" + staff_text(settings, "customer_gone")
    language = stored_language(services, message.customer_id) or settings.default_language
    problem = await send_to_customer(services, context.bot, message, reply(language))
    if problem:
        outcome += "\n" + staff_text(settings, "answered_undelivered", name=display_name(staff), problem=problem)
    return outcome


async def _mark_review(update: Update, context: BotContext, decision: Decision, staff: User, label: str) -> None:
    """The bot took a review for a question: store it as a review, treat the text so from now, tell the customer."""
    services = context.services
    settings = services.settings
    services.store.corrections.add(decision.id, staff.id, "label", new_label=label)
    _remember(services, decision, "review", label)
    await _saved(update, context)
    outcome = await _tell_customer(context, decision, staff,
                                   staff_view.outcome_review(settings, display_name(staff), label),
                                   lambda language: review_reply(settings, language, label))
    await _finish(update, context, outcome)


async def _pick_faq(update: Update, context: BotContext, decision: Decision, staff: User, number: int) -> None:
    services, query = context.services, update.callback_query
    settings = services.settings
    if number >= len(decision.alternatives):
        await answer_press(query, staff_text(settings, "stale"), show_alert=True)
        return
    key = decision.alternatives[number][0]
    try:
        services.store.corrections.add(decision.id, staff.id, "faq", new_label=key)
    except NotFoundError:
        await answer_press(query, staff_text(settings, "faq_missing"), show_alert=True)
        return
    _remember(services, decision, "question", key)
    services.request_index_refresh()  # the customer's wording is a new phrasing of `key`
    await _saved(update, context)
    wrapper = "staff_answer" if decision.action == "handoff" else "better_answer"

    def reply(language: str) -> str:
        return customer_text(settings, language, wrapper, answer=services.store.faq.get(key, language).answer)

    outcome = await _tell_customer(context, decision, staff,
                                   staff_view.outcome_faq(settings, display_name(staff), key, faq_lookup(services)),
                                   reply)
    await _finish(update, context, outcome)


async def on_button(update: Update, context: BotContext) -> None:
    """A staff button: ✅, ❌ (open the menu), ↩ back, a sentiment label (on a question: "it's a review"),
    an FAQ entry, ✖."""
    checked = await checked_press(update, context)
    if checked is None:
        return
    press, decision = checked
    services, query, staff = context.services, update.callback_query, update.callback_query.from_user
    lookup = faq_lookup(services)
    if press.action == "ok":
        await _confirm(update, context, decision, staff)
    elif press.action == "no":
        await answer_press(query, staff_text(services.settings, "pick_label") if decision.kind == "review" else None)
        await set_buttons(query, staff_view.correction_keyboard(services.settings, decision, lookup))
    elif press.action in ("back", "x"):  # "x" here: a cancel outside anyone's answering conversation
        await answer_press(query)
        await set_buttons(query, staff_view.main_keyboard(services.settings, decision, lookup))
    elif press.action == "lab":
        await _pick_label(update, context, decision, staff, press.arg)
    elif press.action == "faq":
        await _pick_faq(update, context, decision, staff, press.faq_index)
    else:  # "ans" is taken by the answering conversation before it gets here
        await answer_press(query, staff_text(services.settings, "not_applicable"), show_alert=True)


async def deliver_staff_answer(context: BotContext, decision: Decision, staff: User, answer: str,
                               mirror_chat_id: int, mirror_message_id: int, mirror_html: str) -> None:
    """A staff member's own answer to a question: store it as a new FAQ entry, learn it, send it, show it."""
    services = context.services
    settings = services.settings
    message = stored_message(services, decision)
    correction = services.store.corrections.add(decision.id, staff.id, "answer", answer_text=answer)
    outcome = staff_view.outcome_answer(settings, display_name(staff), answer)
    if message is None:
        outcome += "\n" + staff_text(settings, "customer_gone")
    else:
        if correction.new_label:
            _remember(services, decision, "question", correction.new_label)
            services.request_index_refresh()
        language = stored_language(services, message.customer_id) or settings.default_language
        problem = await send_to_customer(services, context.bot, message,
                                         customer_text(settings, language, "staff_answer", answer=answer))
        if problem:
            outcome = staff_text(settings, "answered_undelivered", name=display_name(staff), problem=problem)
    await edit_mirror(context, mirror_chat_id, mirror_message_id, mirror_html, outcome)


async def relay_reply(context: BotContext, decision: Decision, staff_message: Message, text: str) -> None:
    """Pass a staff message on to the customer without learning from it (reviews, follow-ups)."""
    services = context.services
    message = stored_message(services, decision)
    settings = services.settings
    if message is None:
        await staff_message.reply_text(staff_text(settings, "customer_gone"))
        return
    language = stored_language(services, message.customer_id) or settings.default_language
    problem = await send_to_customer(services, context.bot, message, customer_text(settings, language, "staff_answer",
                                                                         answer=text))
    notice = staff_text(settings, "relayed") if problem is None else staff_text(
        settings, "answered_undelivered", name=display_name(staff_message.from_user), problem=problem)
    await staff_message.reply_text(notice)


async def handle_reply(update: Update, context: BotContext) -> bool:
    """Act on a staff reply to a mirror message; False if it replies to something else."""
    message, services = update.effective_message, context.services
    target = message.reply_to_message
    if target is None or target.from_user is None or target.from_user.id != context.bot.id:
        return False
    if message.from_user is None or not services.settings.is_staff(message.from_user.id):
        return False
    decision = decision_for_staff_message(services, message.chat.id, target.message_id)
    text = (message.text or "").strip()
    if decision is None or not text:
        return False
    if decision.kind == "question" and decision.status == "pending":
        await deliver_staff_answer(context, decision, message.from_user, text, target.chat.id, target.message_id,
                                   message_html(target))
    else:
        await relay_reply(context, decision, message, text)
    return True


async def on_staff_reply(update: Update, context: BotContext) -> None:
    """A reply to a mirror in the staff chat: answers a handed-off question, or is passed on to the customer."""
    await handle_reply(update, context)
