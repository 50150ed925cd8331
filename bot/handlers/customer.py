"""Customer handlers: /start, /help, /forget, /optout, /optin, text messages, everything that is not text,
and a customer blocking or unblocking the bot."""

from __future__ import annotations

import logging

from telegram import ChatMember, Message, Update
from telegram.constants import ChatType

from bot import clock
from bot.context import BotContext
from bot.handlers import after_hours, conversation, staff, takeover
from bot.handlers.common import mark_blocked, message_of, user_language, user_of
from bot.services import Services
from bot.staff_view import Customer, should_notify
from serving.prediction import Prediction
from shop import hours
from shop.conversation import suggestions_for
from shop.review_queue import should_mirror
from shop.takeover import handled_by_staff
from shop.texts import customer_text, review_reply
from storage.records import FaqEntry, NotFoundError
from vocabulary import Action, MessageKind

log = logging.getLogger(__name__)


async def start(update: Update, context: BotContext) -> None:
    """Greet the customer in their language, naming the shop."""
    services, message, user = context.services, message_of(update), update.effective_user
    language = user_language(services, user)
    if user is not None:
        services.store.customers.touch(user.id, language)
    await message.reply_text(customer_text(services.settings, language, "start"))


async def help_command(update: Update, context: BotContext) -> None:
    """Explain what the bot does, in the customer's language."""
    services, message = context.services, message_of(update)
    language = user_language(services, update.effective_user)
    await message.reply_text(customer_text(services.settings, language, "help"))


def _respond(services: Services, decision: Prediction, language: str) -> tuple[str, Action, FaqEntry | None]:
    """(reply text, stored action, FAQ entry answered with) for a decision."""
    settings = services.settings
    if decision.kind == MessageKind.REVIEW:
        return review_reply(settings, language, decision.label), Action.ACKNOWLEDGED, None
    if decision.answerable and decision.label is not None:
        try:
            entry = services.store.faq.get(decision.label, language)
        except NotFoundError:
            log.warning("decision names FAQ key %r, which no longer exists: handing off", decision.label)
        else:
            return entry.answer, Action.ANSWERED, entry
    return hours.handoff_text(settings, language, clock.now()), Action.HANDOFF, None  # out of hours: when staff answer


async def on_text(update: Update, context: BotContext) -> None:
    """Answer a question from the FAQ or hand it to staff; acknowledge a review; mirror it to staff. While staff
    talk with the customer (a takeover) it is only stored and mirrored: the bot says nothing."""
    services, message, user = context.services, message_of(update), user_of(update)
    text = message.text or ""
    language = user_language(services, user, text)
    seen = services.store.customers.touch(user.id, language)
    opted_out, quiet = seen.opted_out, takeover.is_quiet(seen)  # quiet: staff talk with them, the bot says nothing
    try:
        decision = await services.decide(text)
    except Exception:
        await message.reply_text(customer_text(services.settings, language, "error"))
        raise
    if not quiet and (offered := suggestions_for(services.settings, services.store, decision, language)):  # "did you mean…?"
        await conversation.offer(context, message, user.id, text, decision, offered, language)
        return
    reply, action, entry = _respond(services, decision, language)
    if quiet:
        action, entry = Action.TAKEN_OVER, None
    with services.store.transaction():  # the message and its decision: one commit
        stored = services.store.messages.add(user.id, message.chat_id, message.message_id, text)
        record = services.store.decisions.add(
            stored.id, decision.kind, decision.label, decision.confidence, action,
            source=decision.source,
            adapter_version=decision.version, alternatives=decision.alternatives)
        if quiet:  # staff handle it in their conversation: it never waits in /review
            record = handled_by_staff(services.store, record)
    try:
        if not quiet:
            rating = conversation.rating_keyboard(services.settings, language, record.id) if action == Action.ANSWERED else None
            await message.reply_text(reply, reply_markup=rating)
    finally:  # mirrored even when the reply times out (Telegram may still deliver it late)
        # An opted-out customer's text reaches staff only when someone must act: a handoff, a complaint.
        # Under the mirror policy ([staff] mirror) a confident decision may wait for /review instead.
        if services.settings.roles.staff_chat_id and (not opted_out or should_notify(record)) \
                and should_mirror(services.settings, record):
            customer = Customer(user.id, user.first_name, language)
            # In the background: the staff chat's flood limit must never hold up this customer's chat.
            context.application.create_task(after_hours.post_mirror(context, record, text, customer, entry),
                                            update=update)


def _content_type(message: Message) -> str:
    if message.sticker is not None:
        return "sticker"
    if message.photo:
        return "photo"
    if message.voice is not None:
        return "voice"
    return "other"


async def on_other(update: Update, context: BotContext) -> None:
    """Reply politely to stickers, photos, voice and anything else that is not text."""
    services, message, user = context.services, message_of(update), update.effective_user
    language = user_language(services, user, message.caption)
    if user is not None:
        seen = services.store.customers.touch(user.id, language)
        services.store.messages.add(user.id, message.chat_id, message.message_id, None, _content_type(message))
        if takeover.is_quiet(seen):  # staff talk with them: staff hear of it, the bot says nothing
            context.application.create_task(takeover.note_media(context, user, _content_type(message)), update=update)
            return
    await message.reply_text(customer_text(services.settings, language, "non_text"))


async def forget(update: Update, context: BotContext) -> None:
    """Delete the customer's stored messages (anonymised labels kept only if the config allows)."""
    services, message, user = context.services, message_of(update), user_of(update)
    language = user_language(services, user)
    keep = services.settings.privacy.keep_anonymised_labels
    mirrors = services.store.decisions.staff_mirrors_of(user.id)
    try:
        counts = services.store.customers.forget(user.id, keep_anonymised_labels=keep)
    except NotFoundError:
        counts = None
    if counts is None or not counts["messages"]:
        await message.reply_text(customer_text(services.settings, language, "forget_nothing"))
        return
    log.info("customer %s: forgot %s", user.id, counts)
    reply = customer_text(services.settings, language, "forget_done", messages=counts["messages"])
    if counts["examples_kept"]:
        reply += "\n" + customer_text(services.settings, language, "forget_kept")
    if counts["examples_deleted"]:  # their texts must leave the correction memory and the FAQ index too
        services.reload_memory()
        services.request_index_refresh()
    await message.reply_text(reply)
    if mirrors:  # their words leave the staff chat too; in the background, Telegram's rate limits apply
        context.application.create_task(staff.redact_mirrors(context, mirrors), update=update)


async def _set_opt_out(update: Update, context: BotContext, opted_out: bool) -> None:
    services, message, user = context.services, message_of(update), user_of(update)
    language = user_language(services, user)
    services.store.customers.touch(user.id, language)
    if services.store.customers.set_opt_out(user.id, opted_out):  # examples learnt from them were deleted:
        services.reload_memory()  # their texts leave the correction memory and the FAQ index too
        services.request_index_refresh()
    await message.reply_text(customer_text(services.settings, language, "optout_done" if opted_out else "optin_done"))


async def opt_out(update: Update, context: BotContext) -> None:
    """Keep the customer's messages out of training, and out of the staff chat unless staff must act."""
    await _set_opt_out(update, context, True)


async def opt_in(update: Update, context: BotContext) -> None:
    """Undo /optout: the customer's messages may be learnt from and are mirrored as usual."""
    await _set_opt_out(update, context, False)


async def on_bot_status(update: Update, context: BotContext) -> None:
    """A customer blocked (or unblocked) the bot in their private chat: mark them, so nothing is sent until
    they come back; a customer never stored has nothing to mark."""
    change = update.my_chat_member
    if change is None or change.chat.type != ChatType.PRIVATE:
        return
    mark_blocked(context.services, change.from_user.id, change.new_chat_member.status == ChatMember.BANNED)
