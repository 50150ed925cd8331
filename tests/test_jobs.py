"""The scheduled jobs: when the weekly retrain runs, catch-up after downtime, retention, and picking up
`shopbot rollback` in a running bot. Training is faked here (see test_continuous_learning.py for real)."""

from __future__ import annotations

import argparse
import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

import bot.jobs as jobs
import bot.services as bot_services
from cli import cmd_rollback
from settings import ScheduleSettings
from shop.report.data import next_retrain
from storage.clock import to_timestamp
from storage.store import Store
from tests.botkit import BOSS, BotHarness, bot_settings, publish_promoted

SCHEDULE = {"weekday": "wednesday", "time": "21:30", "timezone": "America/New_York",
            "retrain_timeout_minutes": 0.05}  # 3 s: only test_a_hung_retrain_is_stopped_at_the_limit trains for real


def test_ptb_day_numbers_start_on_sunday() -> None:
    assert [jobs.ptb_days(day) for day in ("sunday", "monday", "wednesday", "saturday")] == [(0,), (1,), (3,), (6,)]


def test_last_slot_is_the_latest_scheduled_time_not_after_now() -> None:
    schedule = ScheduleSettings(**SCHEDULE)
    zone = ZoneInfo("America/New_York")
    wednesday = datetime(2026, 11, 18, 21, 30, tzinfo=zone)
    assert jobs.last_slot(schedule, wednesday) == wednesday
    assert jobs.last_slot(schedule, wednesday + timedelta(days=6)) == wednesday
    assert jobs.last_slot(schedule, wednesday - timedelta(minutes=1)) == wednesday - timedelta(days=7)
    across_dst = jobs.last_slot(schedule, datetime(2026, 11, 5, 12, tzinfo=UTC))  # DST ended Nov 1
    assert across_dst.astimezone(zone).strftime("%a %H:%M") == "Wed 21:30"


def test_catchup_is_due_only_for_a_slot_missed_since_the_bot_first_ran(fresh_store: Store) -> None:
    schedule = ScheduleSettings(**SCHEDULE)
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)  # a Monday; last slot: Wed 2026-11-18 21:30 New York
    assert not jobs.catchup_due(fresh_store, schedule, now)  # first start ever: nothing missed
    jobs.mark_watching(fresh_store, now - timedelta(days=10))
    assert jobs.catchup_due(fresh_store, schedule, now)  # up 10 days ago, then down over Wednesday
    jobs._update_state(fresh_store, last_success=to_timestamp(now - timedelta(days=4)))
    assert not jobs.catchup_due(fresh_store, schedule, now)  # the Wednesday retrain did run
    fresh_store.state.set(jobs.STATE_KEY, {"watch_since": to_timestamp(now - timedelta(days=10))})
    run = fresh_store.runs.start("schedule")
    fresh_store.runs.finish(run, "failed", None, {"status": "failed", "reasons": ["killed"]})
    assert jobs.catchup_due(fresh_store, schedule, now)  # a failed run does not count
    jobs.mark_watching(fresh_store, now)  # does not move the first-start mark
    assert jobs.catchup_due(fresh_store, schedule, now)


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[BotHarness]:
    settings = bot_settings(tmp_path_factory.mktemp("jobs"), tiny_base, schedule=SCHEDULE)
    with Store(settings.paths.database) as store:  # messages from before the bot started
        store.customers.touch(777, "en")
        old = store.messages.add(777, 777, 1, "from last year")
        last_year = to_timestamp(datetime.now(UTC) - timedelta(days=200))
        store.messages.table.update(old.id, {"created_at": last_year})
        store.messages.add(777, 777, 2, "from today")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs, "WATCH_INTERVAL_S", 0.3)
        with BotHarness(settings) as harness:
            yield harness


def test_weekly_retrain_is_scheduled_at_the_configured_weekday_time_and_zone(bot: BotHarness) -> None:
    (weekly,) = bot.app.job_queue.get_jobs_by_name(jobs.WEEKLY_JOB)
    expected = next_retrain(bot.settings.schedule, datetime.now(UTC))
    assert weekly.next_t == expected
    assert weekly.next_t.astimezone(ZoneInfo("America/New_York")).strftime("%A %H:%M") == "Wednesday 21:30"
    assert weekly.data == "schedule"
    assert bot.app.job_queue.get_jobs_by_name(jobs.CATCHUP_JOB) == ()  # a first start misses nothing
    with bot.store() as store:
        assert store.state.get(jobs.STATE_KEY)["watch_since"]


def test_retention_deletes_messages_older_than_the_configured_days(bot: BotHarness) -> None:
    assert bot.app.job_queue.get_jobs_by_name(jobs.RETENTION_JOB)  # daily, plus once at start-up

    def texts(store: Store) -> list[str]:
        return [row["text"] for row in store.messages.table.rows_where("customer_id = ?", [777])]

    bot.wait_until(lambda store: texts(store) == ["from today"])


def serve_versions_only(bot: BotHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reloading serves the active versions on the current model (the fake adapter folders hold no weights)."""
    base = bot.services.runtime.serving

    def active_serving(settings, encoder):
        with Store(settings.paths.database) as store:
            versions = {t: r.version for t in ("sentiment", "faq") if (r := store.adapters.active(t))}
        return dataclasses.replace(base, versions=versions)

    monkeypatch.setattr(bot_services, "_active_serving", active_serving)


def test_shopbot_rollback_is_served_by_the_running_bot(bot: BotHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_versions_only(bot, monkeypatch)
    publish_promoted(bot, "sentiment", ("sentiment-old", "sentiment-new"))
    served = lambda: bot.services.runtime.serving.versions.get("sentiment")  # noqa: E731
    _wait(lambda: served() == "sentiment-new")  # promoted outside the bot: picked up
    assert cmd_rollback(bot.settings, argparse.Namespace(task="sentiment")) == 0
    _wait(lambda: served() == "sentiment-old")


def test_a_shopbot_rollback_during_a_refused_retrain_is_served_after_it(bot: BotHarness,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import training.pipeline

    serve_versions_only(bot, monkeypatch)
    publish_promoted(bot, "faq", ("faq-before", "faq-during"))
    served = lambda: bot.services.runtime.serving.versions.get("faq")  # noqa: E731
    bot.run(bot.services.reload_adapters())
    assert served() == "faq-during"
    (job,) = bot.app.job_queue.get_jobs_by_name(jobs.WATCH_JOB)
    bot.run(_enable(job, False))  # the watcher is called by hand below, at the moments that matter
    try:
        context = SimpleNamespace(services=bot.services, job=SimpleNamespace(data={}))
        bot.run(jobs.watch_adapters(context))  # its first look: remembers what is active
        release = threading.Event()

        def run_retrain(settings, trigger):
            assert release.wait(20)
            return {"status": "refused", "reasons": ["faq: refused faq-new"]}

        monkeypatch.setattr(training.pipeline, "run_retrain", run_retrain)
        started = bot.command(BOSS, "retrain")
        _wait(lambda: bot.services.retraining)
        assert cmd_rollback(bot.settings, argparse.Namespace(task="faq")) == 0  # while the retrain runs
        bot.run(jobs.watch_adapters(context))  # the watcher looks during the retrain
        release.set()
        bot.emulator.wait_for_message(BOSS.id, "Retrain finished: refused", after=started["message_id"])
        _wait(lambda: not bot.services.retraining)
        bot.run(jobs.watch_adapters(context))  # and after it
        assert served() == "faq-before"
    finally:
        bot.run(_enable(job, True))


async def _enable(job, enabled: bool) -> None:  # a PTB Job, paused or resumed on the bot's loop
    job.enabled = enabled


def _wait(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_missed_run_is_caught_up_once_after_a_restart(tmp_path: Path, tiny_base: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import training.pipeline

    triggers: list[str] = []

    def run_retrain(settings, trigger):
        triggers.append(trigger)
        with Store(settings.paths.database) as store:  # as the pipeline records a skipped run
            run = store.runs.start(trigger)
            result = {"status": "skipped", "reasons": ["2 new labelled examples since the last retrain, fewer than 5"]}
            store.runs.finish(run, "skipped", None, result)
        return result

    monkeypatch.setattr(training.pipeline, "run_retrain", run_retrain)
    monkeypatch.setattr(jobs, "CATCHUP_DELAY_S", 0.2)
    settings = bot_settings(tmp_path, tiny_base, schedule=SCHEDULE)
    with Store(settings.paths.database) as store:  # the bot first ran 15 days ago, then was down over a slot
        jobs.mark_watching(store, datetime.now(UTC) - timedelta(days=15))

    with BotHarness(settings) as harness:
        done = harness.emulator.wait_for_message(BOSS.id, "Weekly retrain", timeout=30)
        assert done["text"].splitlines() == ["🗓 Weekly retrain (catch-up): skipped",
                                             "2 new labelled examples since the last retrain, fewer than 5"]
        report = harness.emulator.wait_for_message(BOSS.id, "weekly report", after=done["message_id"], timeout=30)
        assert "(catch-up): skipped" in report["text"]
        photo = harness.emulator.wait_for_message(BOSS.id, "accuracy by week", after=report["message_id"])
        assert photo["method"] == "sendPhoto" and photo["file_bytes"].startswith(b"\x89PNG")
        on_demand = harness.command(BOSS, "report")  # /report: the same text and chart, now
        assert "(catch-up): skipped" in on_demand["text"]
        chart = harness.emulator.wait_for_message(BOSS.id, "accuracy by week", after=on_demand["message_id"])
        assert chart["method"] == "sendPhoto" and chart["file_bytes"].startswith(b"\x89PNG")
    assert triggers == ["catchup"]

    with BotHarness(settings, seed=False) as harness:  # restarted again: nothing left to catch up
        harness.emulator.wait_for(lambda method, _: method == "getUpdates")
        time.sleep(1.0)
        assert harness.app.job_queue.get_jobs_by_name(jobs.CATCHUP_JOB) == ()
    assert triggers == ["catchup"]


def hang(job) -> None:  # the training child's target, stuck for good
    time.sleep(3600)


def test_a_hung_retrain_is_stopped_at_the_limit_recorded_and_told(bot: BotHarness,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    import training.backends

    monkeypatch.setattr(training.backends, "_child_main", hang)  # spawned by reference: the child runs hang()
    started = bot.command(BOSS, "retrain")
    assert started["text"].startswith("⏳")
    done = bot.emulator.wait_for_message(BOSS.id, "Retrain finished", after=started["message_id"], timeout=60)
    assert done["text"].splitlines() == ["Retrain finished: failed", ("training was still running after 0.05 minutes "
                                                                      "(schedule.retrain_timeout_minutes): stopped")]
    with bot.store() as store:
        run = store.runs.last()
        assert run.status == "failed" and "schedule.retrain_timeout_minutes" in (run.error or "")
    _wait(lambda: not bot.services.retraining)  # later retrains no longer wait for this one
    assert not [p for p in multiprocessing.active_children() if p.name == "shopbot-train"]


def test_the_weekly_retrain_prunes_old_adapters(bot: BotHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_versions_only(bot, monkeypatch)
    weeks = tuple(f"sentiment-week{i}" for i in range(6))
    publish_promoted(bot, "sentiment", weeks)  # week5 active, week4 the rollback target
    refused = {"status": "refused", "reasons": ["sentiment: refused sentiment-week6"]}
    bot.run(jobs.run_weekly(bot.app.bot, bot.services, "schedule", run_retrain=lambda settings, trigger: refused),
            timeout=120)
    folders = bot.settings.paths.adapters / "sentiment"
    assert bot.settings.schedule.keep_adapters == 3
    assert [week for week in weeks if (folders / week).is_dir()] == list(weeks[1:])  # active, previous, 3 more


def test_an_faq_change_made_beside_the_running_bot_reaches_its_index(bot: BotHarness) -> None:
    wording = "can I park my scooter outside?"
    with Store(bot.settings.paths.database) as store:  # another process's connection, as `shopbot import` has
        key = store.faq.keys()[0]
        store.faq.add_phrasing(key, wording, "en", changed_by=None)
    _wait(lambda: wording in bot.services.runtime.serving.index.texts)  # the FAQ watch rebuilt it, no restart
    assert bot.services.runtime.serving.index.keys[bot.services.runtime.serving.index.texts.index(wording)] == key
