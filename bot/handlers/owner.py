"""Owner commands: /status, /retrain, /rollback, /report (owners from config only)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from telegram import Bot, Update

from bot.context import BotContext
from bot.handlers.common import message_of, user_language
from bot.handlers.suggestions import report_keyboard
from bot.limits import MAX_TEXT, utf16_cut
from bot.services import Services
from shop.report.text import build_report_text, build_status_text
from shop.report.weekly import report_in_thread
from shop.retraining import retrain_and_swap, roll_back
from shop.texts import customer_text, owner_text
from vocabulary import TASKS, RunTrigger

log = logging.getLogger(__name__)
Handler = Callable[[Update, BotContext], Awaitable[None]]


def owner_only(handler: Handler) -> Handler:
    """Refuse (politely, in their language) anyone who is not an owner."""

    @functools.wraps(handler)
    async def guarded(update: Update, context: BotContext) -> None:
        services, message, user = context.services, message_of(update), update.effective_user
        if user is None or not services.settings.is_owner(user.id):
            log.warning("user %s tried owner command %r", user and user.id, message.text)
            await message.reply_text(
                customer_text(services.settings, user_language(services, user), "owner_only"))
            return
        await handler(update, context)

    return guarded


@owner_only
async def status(update: Update, context: BotContext) -> None:
    """Active adapter versions and accuracy, corrections since the last retrain, next scheduled retrain."""
    services, message = context.services, message_of(update)
    language = user_language(services, update.effective_user)
    text = build_status_text(services.settings, services.store, services.runtime.serving.version,
                             services.retraining, language)
    await message.reply_text(text + "\n" + _running_line(services, language))


def _running_line(services: Services, language: str) -> str:
    """This bot's own numbers since it started (only this shop's, also when one process hosts many)."""
    metrics = services.metrics
    shown = {name: "–" if value is None else f"{value:.0f} ms"
             for name, value in (("p50", metrics.percentile_ms(50)), ("p99", metrics.percentile_ms(99)))}
    line = owner_text(services.settings, language, "status_running",
                      since=f"{datetime.fromtimestamp(metrics.started, UTC):%Y-%m-%d %H:%M} UTC",
                      decided=metrics.decided, errors=metrics.errors, restarts=metrics.restarts, **shown)
    if services.waiting_to_train:
        line += "\n" + owner_text(services.settings, language, "status_training_queued")
    return line


@owner_only
async def retrain(update: Update, context: BotContext) -> None:
    """Start a retrain now in a child process; say how it went when it is done."""
    services, message = context.services, message_of(update)
    language = user_language(services, update.effective_user)
    say = functools.partial(owner_text, services.settings, language)
    if services.retraining:
        await message.reply_text(say("retrain_busy"))
        return
    await message.reply_text(say("retrain_started"))
    # Not application.create_task: stopping the bot must not wait minutes for training to finish.
    services.retrain_task = asyncio.get_running_loop().create_task(
        _retrain_and_report(context.bot, services, message.chat_id, language))


async def _retrain_and_report(bot: Bot, services: Services, chat_id: int, language: str) -> None:
    say = functools.partial(owner_text, services.settings, language)
    try:
        retrained = await retrain_and_swap(services.settings, RunTrigger.MANUAL, services.reload_adapters)
        if retrained.swap_problem is not None:
            await bot.send_message(chat_id, say("retrain_done", status=f"failed ({retrained.swap_problem})"))
            return
        lines = [say("retrain_done", status=retrained.status), *map(str, retrained.result.get("reasons", []))]
        if retrained.serving is not None:
            lines.append(say("retrain_promoted", version=retrained.serving))
        await bot.send_message(chat_id, "\n".join(lines))
    except asyncio.CancelledError:
        raise
    except Exception:  # a background task: nobody else would see it
        log.exception("telling the owner how the retrain went failed")


@owner_only
async def rollback(update: Update, context: BotContext) -> None:
    """Go back to the previous adapter: `/rollback` (both tasks) or `/rollback sentiment|faq`."""
    services, message = context.services, message_of(update)
    language = user_language(services, update.effective_user)
    say = functools.partial(owner_text, services.settings, language)
    args = [arg.lower() for arg in context.args or []]
    if len(args) > 1 or (args and args[0] not in TASKS):
        await message.reply_text(say("rollback_usage"))
        return
    lines, changed = [], False
    for task, outcome in roll_back(services.settings, services.store, args or TASKS):
        if isinstance(outcome, str):
            lines.append(say("rollback_nothing", task=say(task), problem=outcome))
        else:
            lines.append(say("rollback_done", task=say(task), version=outcome.version))
            changed = True
    if changed:
        lines.append(say("rollback_serving", version=await services.reload_adapters()))
    await message.reply_text("\n".join(lines))


@owner_only
async def report(update: Update, context: BotContext) -> None:
    """This week's report, now: the text with a button per suggested FAQ entry, then the chart as a photo."""
    services, message = context.services, message_of(update)
    language = user_language(services, update.effective_user)
    embed = services.runtime.serving.embed  # the FAQ embedding the suggestions are clustered by
    try:  # built in a thread with its own store: rendering the chart must not hold up the event loop
        weekly = await asyncio.to_thread(report_in_thread, services.settings, language, False, embed)
    except Exception as error:  # fall back to the plain-text report
        log.exception("building the weekly report failed")
        await message.reply_text(
            build_report_text(services.settings, services.store, language) + "\n\n"
            + owner_text(services.settings, language, "report_unavailable", problem=f"{type(error).__name__}: {error}"))
        return
    await message.reply_text(utf16_cut(weekly.text, MAX_TEXT),
                             reply_markup=report_keyboard(services.settings, language, weekly))
    await message.reply_photo(weekly.png, caption=weekly.caption)
