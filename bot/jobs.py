"""Scheduled jobs: the weekly retrain (and the catch-up of one missed while the bot was down), the
weekly owner report, daily message retention, the daily digest of decisions waiting for /review, picking up
adapter changes made outside the bot, and the negative-review alerts queued out of hours (sent at opening time,
bot/handlers/after_hours.py).

Everything is scheduled on the application's JobQueue (APScheduler underneath) by
`schedule_jobs`, called once from post_init. The last successful retrain lives in SQLite
(training_runs, plus `scheduler_state["weekly_retrain"]`), never in an APScheduler job store: at
start-up, a weekly slot that passed while the bot was down is run once with trigger "catchup".

The retrain itself is `shop.retraining.retrain_and_swap` (`[training] backend`; only a promotion changes
what is served, through `Services.reload_adapters`), the same as an owner's /retrain. After it the
weekly job prunes old adapter folders (`schedule.keep_adapters`), records the slot, tells the
owners what happened and why, then sends them the weekly report.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from telegram import Bot
from telegram.error import TelegramError
from telegram.ext import Application

from bot.context import BotContext
from bot.handlers import after_hours, conversation, review
from bot.handlers.suggestions import report_keyboard
from bot.limits import MAX_TEXT, utf16_cut
from bot.services import Services
from settings import WEEKDAYS, ScheduleSettings
from shop.report.data import next_retrain
from shop.report.weekly import report_in_thread
from shop.retraining import RunRetrain, prune_adapters, retrain_and_swap
from shop.texts import learning_text, owner_text
from storage.clock import to_timestamp
from storage.store import Store
from vocabulary import SUCCESSFUL_RUNS, TASKS, RunStatus

log = logging.getLogger(__name__)

STATE_KEY = "weekly_retrain"
WEEKLY_JOB = "weekly-retrain"
CATCHUP_JOB = "catchup-retrain"
RETENTION_JOB = "retention"
WATCH_JOB = "adapter-watch"
FAQ_WATCH_JOB = "faq-watch"
OFFER_JOB = "did-you-mean-expiry"
OFFER_CHECK_S = 30.0  # how often unanswered did-you-mean buttons are looked for (they wait minutes)
DIGEST_JOB = "review-digest"
ALERTS_JOB = "queued-alerts"
ALERTS_INTERVAL_S = 60.0  # how often negative-review alerts queued out of hours look for opening time
CATCHUP_DELAY_S = 2.0  # after start-up, so the bot answers first
WATCH_INTERVAL_S = 10.0  # how often the active adapters in the database are compared with the served ones
RETENTION_TIME = time(4, 30)  # local time (schedule.timezone) of the daily retention job
MISFIRE_GRACE_S = 6 * 3600  # a slot missed by a busy or suspended process still runs within this


# ---------------------------------------------------------------------- when
def ptb_days(weekday: str) -> tuple[int, ...]:
    """The JobQueue day number of a weekday name (python-telegram-bot 22: 0 = Sunday … 6 = Saturday)."""
    return ((WEEKDAYS.index(weekday) + 1) % 7,)


def last_slot(schedule: ScheduleSettings, now: datetime) -> datetime:
    """The latest scheduled retrain time at or before `now`, in the schedule's time zone."""
    upcoming = next_retrain(schedule, now)  # strictly after now
    return (upcoming.replace(tzinfo=None) - timedelta(days=7)).replace(tzinfo=upcoming.tzinfo)


def last_success(store: Store) -> datetime | None:
    """When the last successful retrain (promoted, refused or skipped; any trigger) started, if any."""
    last = store.runs.last_successful()
    stamps = [last.started_at] if last else []
    stored = (store.state.get(STATE_KEY) or {}).get("last_success")
    stamps += [stored] if stored else []
    return max((datetime.fromisoformat(stamp) for stamp in stamps), default=None)


def catchup_due(store: Store, schedule: ScheduleSettings, now: datetime) -> bool:
    """Whether a weekly slot passed, since the bot first ran, without a successful retrain after it."""
    watch_since = (store.state.get(STATE_KEY) or {}).get("watch_since")
    marks = [mark for mark in (last_success(store), watch_since and datetime.fromisoformat(watch_since)) if mark]
    if not marks:
        return False  # first start: nothing could be missed yet
    return last_slot(schedule, now) > max(marks)


def _update_state(store: Store, **values: Any) -> None:
    store.state.set(STATE_KEY, {**(store.state.get(STATE_KEY) or {}), **values})


def mark_watching(store: Store, now: datetime) -> None:
    """Remember when the bot first ran (slots before it are not "missed")."""
    if not (store.state.get(STATE_KEY) or {}).get("watch_since"):
        _update_state(store, watch_since=to_timestamp(now))


# ---------------------------------------------------------------------- wiring
def schedule_jobs(application: Application, services: Services, now: datetime | None = None) -> None:
    """Put the weekly retrain, retention, the adapter and FAQ watches and the queued alerts on the JobQueue; queue a
    catch-up if one is due."""
    queue = application.job_queue
    if queue is None:
        log.warning("no JobQueue (install python-telegram-bot[job-queue]): no weekly retrain, report or retention")
        return
    schedule = services.settings.schedule
    zone = ZoneInfo(schedule.timezone)
    grace = {"misfire_grace_time": MISFIRE_GRACE_S, "coalesce": True}
    queue.run_daily(weekly_retrain, schedule.time_of_day, days=ptb_days(schedule.weekday),
                    data="schedule", name=WEEKLY_JOB, job_kwargs=grace)
    queue.run_daily(retention, RETENTION_TIME.replace(tzinfo=zone), name=RETENTION_JOB, job_kwargs=grace)
    queue.run_once(retention, 1.0, name=f"{RETENTION_JOB}-startup")
    queue.run_repeating(watch_adapters, WATCH_INTERVAL_S, first=WATCH_INTERVAL_S,  # a change before its first look counts
                        data={"versions": active_versions(services.store)}, name=WATCH_JOB)
    queue.run_repeating(watch_faq, WATCH_INTERVAL_S, first=WATCH_INTERVAL_S,
                        data={"faq": services.store.faq.fingerprint()}, name=FAQ_WATCH_JOB)
    queue.run_repeating(conversation.expire_offers, OFFER_CHECK_S, first=OFFER_CHECK_S, name=OFFER_JOB)
    if services.settings.staff.digest_time:  # the daily digest of decisions waiting for /review
        hour, minute = (int(part) for part in services.settings.staff.digest_time.split(":"))
        queue.run_daily(review.digest, time(hour, minute, tzinfo=zone), name=DIGEST_JOB, job_kwargs=grace)
    queue.run_repeating(after_hours.send_queued_alerts, ALERTS_INTERVAL_S, first=1.0, name=ALERTS_JOB)
    now = now or datetime.now(UTC)
    if closed := services.store.runs.close_interrupted():
        log.warning("%d training run(s) lost their process (cut off by a stop): recorded as failed", closed)
    if catchup_due(services.store, schedule, now):
        log.warning("the weekly retrain of %s was missed while the bot was down: catching up",
                    f"{last_slot(schedule, now):%Y-%m-%d %H:%M %Z}")
        queue.run_once(weekly_retrain, CATCHUP_DELAY_S, data="catchup", name=CATCHUP_JOB, job_kwargs=grace)
    mark_watching(services.store, now)
    log.info("weekly retrain scheduled: %s %s (%s)", schedule.weekday, schedule.time, schedule.timezone)


# ---------------------------------------------------------------------- job callbacks
def active_versions(store: Store) -> dict[str, str]:
    """{task: version} of the active adapters recorded in the database."""
    return {task: record.version for task in TASKS if (record := store.adapters.active(task))}


async def weekly_retrain(context: BotContext) -> None:
    """JobQueue callback: start the weekly (or catch-up) retrain in the background and return at once.

    It must not run inside the job: stopping the bot waits for running jobs, and training takes minutes.
    """
    services = context.services
    data = context.job.data if context.job is not None else None
    trigger = data if data in ("schedule", "catchup") else "schedule"
    previous = services.retrain_task if services.retraining else None
    services.retrain_task = asyncio.get_running_loop().create_task(
        run_weekly(context.bot, services, trigger, wait_for=previous))


async def retention(context: BotContext) -> None:
    """JobQueue callback: delete customer messages older than privacy.retention_days."""
    services = context.services
    deleted = services.store.messages.delete_older_than(services.settings.privacy.retention_days)
    if deleted:
        log.info("retention: deleted %d messages older than %d days", deleted,
                 services.settings.privacy.retention_days)


def _job_state(context: BotContext) -> dict[str, Any]:
    """What a repeating job remembers between its runs (its `data` dict; empty when called by hand without one)."""
    data = context.job.data if context.job is not None else None
    return data if isinstance(data, dict) else {}


async def watch_adapters(context: BotContext) -> None:
    """JobQueue callback: serve the active adapters when they changed outside the bot (`shopbot rollback`).

    While a retrain runs it only waits: the retrain swaps in what it promotes, and a change made
    meanwhile (a rollback) is still a change when it looks again after a refused retrain.
    """
    services = context.services
    seen = _job_state(context)
    active = active_versions(services.store)
    if "versions" not in seen:
        seen["versions"] = active
        return
    if services.retraining:
        return
    if active == seen["versions"]:
        return
    seen["versions"] = active  # try once per change, even if loading fails
    if active == services.runtime.serving.versions:
        return
    try:
        version = await services.reload_adapters()
    except Exception:  # the previous model keeps serving
        log.exception("active adapters changed to %s but could not be loaded; still serving %s", active,
                      services.runtime.serving.version)
        return
    log.warning("active adapters changed outside the bot; now serving %s", version)


async def watch_faq(context: BotContext) -> None:
    """JobQueue callback: rebuild the FAQ index when the FAQ changed outside the bot (`shopbot import`).

    Changes the bot makes itself refresh the index at once; seeing them here again only coalesces
    into one more background rebuild.
    """
    services = context.services
    seen = _job_state(context)
    now = services.store.faq.fingerprint()
    if seen.get("faq", now) != now:
        log.info("the FAQ changed outside the bot: rebuilding the FAQ index")
        services.request_index_refresh()
    seen["faq"] = now


# ---------------------------------------------------------------------- the retrain itself
async def run_weekly(bot: Bot, services: Services, trigger: str = "schedule",
                     wait_for: asyncio.Task[Any] | None = None, run_retrain: RunRetrain | None = None) -> dict:
    """Retrain (training.backend), swap on promotion, record, tell the owners, send them the report."""
    if wait_for is not None and not wait_for.done():
        await tell_owners(bot, services, lambda language: learning_text(services.settings, language, "weekly_busy"))
        await asyncio.wait([wait_for])
    settings = services.settings
    started = datetime.now(UTC)
    retrained = await retrain_and_swap(settings, trigger, services.reload_adapters, run_retrain)
    result, status = retrained.result, retrained.status
    serving, problem = retrained.serving, retrained.swap_problem
    try:
        await asyncio.to_thread(prune_adapters, settings)
    except Exception:  # old folders stay until next week; the owners still get their report
        log.exception("pruning old adapter folders failed")
    if status in SUCCESSFUL_RUNS:
        _update_state(services.store, last_success=to_timestamp(started), last_status=status, last_trigger=trigger)
    else:
        _update_state(services.store, last_failure=to_timestamp(started), last_status=status, last_trigger=trigger)
    log.info("%s retrain finished: %s; %s", trigger, status, "; ".join(map(str, result.get("reasons", []))))

    def summary(language: str) -> str:
        say = lambda key, **values: learning_text(settings, language, key, **values)  # noqa: E731
        shown = say(f"status_{status}") if status in (*SUCCESSFUL_RUNS, RunStatus.FAILED) else status
        lines = [say("weekly_done", trigger=say(trigger), status=shown)]
        lines += [str(reason) for reason in result.get("reasons", [])]
        lines += [reason for task in (result.get("tasks") or {}).values() if not task.get("promoted")
                  for reason in (f"  {task.get('task')}: {r}" for r in task.get("reasons", []))]
        if serving is not None:
            lines.append(say("weekly_serving", version=serving))
        if problem is not None:
            lines.append(say("weekly_swap_failed", problem=problem))
        return utf16_cut("\n".join(lines), MAX_TEXT)

    await tell_owners(bot, services, summary)
    await send_report(bot, services)
    return result


def owner_language(services: Services, owner_id: int) -> str:
    """The language last used with this owner, else the shop's default."""
    language = services.store.customers.language_of(owner_id)
    return language if language in services.settings.shop.languages else services.settings.default_language


async def tell_owners(bot: Bot, services: Services, text: Callable[[str], str]) -> None:
    """Send text(language) to every owner (an owner who never opened the bot is logged, not fatal)."""
    for owner_id in services.settings.roles.owner_ids:
        try:
            await bot.send_message(owner_id, text(owner_language(services, owner_id)))
        except TelegramError as error:
            log.warning("could not message owner %s: %s", owner_id, error)


async def send_report(bot: Bot, services: Services) -> None:
    """Send the weekly report (text with a button per suggested FAQ entry, then the chart as a photo) to every
    owner, in their language."""
    settings = services.settings
    embed = services.runtime.serving.embed  # the FAQ embedding the suggestions are clustered by
    reports: dict[str, Any] = {}
    languages = {owner_id: owner_language(services, owner_id) for owner_id in settings.roles.owner_ids}
    for owner_id, language in [*languages.items(), *([(None, settings.default_language)] if not languages else [])]:
        try:
            if language not in reports:  # built in a thread with its own store, saved under paths.reports
                reports[language] = await asyncio.to_thread(report_in_thread, settings, language, True, embed)
            report = reports[language]
            if owner_id is None:  # no owners configured: the report is only saved
                continue
            await bot.send_message(owner_id, utf16_cut(report.text, MAX_TEXT),
                                   reply_markup=report_keyboard(settings, language, report))
            await bot.send_photo(owner_id, report.png, caption=report.caption)
        except TelegramError as error:
            log.warning("could not send the report to owner %s: %s", owner_id, error)
        except Exception as error:  # one broken report must not stop the job
            log.exception("building the weekly report failed")
            problem = f"{type(error).__name__}: {error}"

            def unavailable(language: str, problem: str = problem) -> str:
                return owner_text(settings, language, "report_unavailable", problem=problem)

            await tell_owners(bot, services, unavailable)
            return
