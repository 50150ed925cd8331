"""Continuous learning end to end, with real training in a child process (tiny model, fake Bot API).

One bot runs through the whole module, as in production: the weekly job fires on the JobQueue, a
child process trains, the gate decides, a promotion is hot-swapped into the running bot; then a
refused candidate, a training child killed with SIGKILL, and a rollback. Each test compares with
what the bot served when it began, so they pass in any order.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.jobs import WEEKLY_JOB
from shop.report.data import next_retrain
from storage.store import Store
from storage.text import stable_split
from tests.botkit import ALICE, BOSS, BotHarness, bot_settings

LOOSE = {"sentiment_accuracy": 0.0, "faq_accuracy": 0.0, "max_regression": 1.0, "max_interval": 1.0, "min_new_examples": 0}
MAX_LENGTH = 16  # tokens: texts sharing their first 16 tokens look the same to the model
PAUSE_MARKER = "training-child-paused"
PAUSE_MARKER_ENV = "SHOPBOT_TEST_PAUSE_MARKER"  # where the paused child says so (a spawned child inherits the environment)


pytestmark = pytest.mark.usefixtures("no_bot_errors")

@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[BotHarness]:
    settings = bot_settings(tmp_path_factory.mktemp("learning"), tiny_base, thresholds=LOOSE,
                            model={"max_length": MAX_LENGTH})
    with BotHarness(settings) as harness:
        yield harness



def fire_weekly_job(bot: BotHarness) -> int:
    """Make the JobQueue's weekly job due now (as at the configured slot); returns the BOSS chat cursor."""
    cursor = bot.cursor(BOSS.id)

    async def due_now() -> None:
        (job,) = bot.app.job_queue.get_jobs_by_name(WEEKLY_JOB)
        job.job.modify(next_run_time=datetime.now(UTC))

    bot.run(due_now())
    return cursor


def weekly_outcome(bot: BotHarness, after: int, timeout: float = 120) -> dict:
    """The owner's 'Weekly retrain' message after `after`."""
    return bot.emulator.wait_for_message(BOSS.id, "Weekly retrain", after=after, timeout=timeout)


def active_versions(bot: BotHarness) -> dict[str, str]:
    with bot.store() as store:
        return {task: record.version for task in ("sentiment", "faq") if (record := store.adapters.active(task))}


def test_scheduled_job_trains_promotes_and_the_running_bot_answers_with_the_new_version(bot: BotHarness) -> None:
    _, _, before = bot.ask(ALICE, "The taro milk tea was lovely")
    assert before.adapter_version == bot.services.runtime.serving.version  # "base" when this test runs first
    cursor = fire_weekly_job(bot)
    _, _, meanwhile = bot.ask(ALICE, "Nice staff, will come again")  # answered while the child trains
    assert meanwhile.adapter_version == before.adapter_version

    done = weekly_outcome(bot, cursor)["text"]
    assert done.startswith("🗓 Weekly retrain (weekly): promoted"), done
    sentiment = active_versions(bot)["sentiment"]
    assert f"sentiment={sentiment}" in done
    assert f"sentiment={sentiment}" in bot.services.runtime.serving.version
    _, _, after = bot.ask(ALICE, "Lovely brown sugar boba")
    assert after.adapter_version == bot.services.runtime.serving.version != before.adapter_version  # no restart

    photo = bot.emulator.wait_for_message(BOSS.id, after=cursor, timeout=30, contains="accuracy by week")
    assert photo["method"] == "sendPhoto" and photo["file_bytes"].startswith(b"\x89PNG")
    with bot.store() as store:
        run = store.runs.last()
        assert (run.trigger, run.status) == ("schedule", "promoted")
        assert store.reports.latest() is not None and store.reports.latest().chart_path.is_file()
    next_t = bot.app.job_queue.get_jobs_by_name(WEEKLY_JOB)[0].next_t
    assert next_t == next_retrain(bot.settings.schedule, datetime.now(UTC))  # back on its weekly slot


def _same_prefix_test_pair() -> list[tuple[str, str, str]]:
    """Two test-split reviews with opposite labels that the model sees as one (same first tokens)."""
    prefix = "同样的开头" * 10
    texts = [t for i in range(500) if stable_split(t := f"{prefix} 评价 {i}") == "test"][:2]
    return [(texts[0], "positive", "zh"), (texts[1], "negative", "zh")]


def test_failing_candidate_is_refused_and_the_old_model_keeps_serving(bot: BotHarness) -> None:
    with bot.store() as store:
        store.examples.add_many("sentiment", _same_prefix_test_pair(), "seed")  # no model gets both right
    serving, active = bot.services.runtime.serving, active_versions(bot)
    original = bot.services.settings
    strict = dataclasses.replace(original.thresholds, sentiment_accuracy=1.0, faq_accuracy=1.0)
    bot.services.settings = dataclasses.replace(original, thresholds=strict)
    try:
        cursor = fire_weekly_job(bot)
        done = weekly_outcome(bot, cursor)["text"]
    finally:
        bot.services.settings = original
    assert done.startswith("🗓 Weekly retrain (weekly): refused"), done
    assert "< threshold 1.000" in done  # the gate's reason reaches the owner
    assert active_versions(bot) == active
    assert bot.services.runtime.serving is serving  # nothing was swapped
    with bot.store() as store:
        rejected = [a for a in store.adapters.history("sentiment") if a.status == "rejected"]
        assert rejected and any("< threshold" in reason for reason in rejected[0].reasons)
    _, _, decision = bot.ask(ALICE, "Still tasty")
    assert decision.adapter_version == serving.version


def _pausing_child(job) -> None:  # runs in the spawned child
    """The training child (`_child_main`), paused just before it would save its first candidate."""
    import training.backends as backends
    import training.candidates as candidates

    def pause(*args, **kwargs):
        Path(os.environ[PAUSE_MARKER_ENV]).write_text(str(os.getpid()))
        time.sleep(600)

    candidates._save = pause
    backends._child_main(job)


def test_killed_training_child_changes_nothing(bot: BotHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.backends

    monkeypatch.setattr(training.backends, "_child_main", _pausing_child)
    marker = bot.settings.paths.database.parent / PAUSE_MARKER
    monkeypatch.setenv(PAUSE_MARKER_ENV, str(marker))
    serving, active = bot.services.runtime.serving, active_versions(bot)
    with bot.store() as store:
        adapters_before = [(a.version, a.status) for task in ("sentiment", "faq") for a in store.adapters.history(task)]
    cursor = fire_weekly_job(bot)
    deadline = time.monotonic() + 60
    while not marker.exists():
        ended = [m["text"] for m in bot.emulator.messages(BOSS.id) if m["message_id"] > cursor
                 and "Weekly retrain" in (m.get("text") or "")]
        assert not ended and time.monotonic() < deadline, f"the training child never reached publishing: {ended}"
        time.sleep(0.1)
    pid = int(marker.read_text())
    assert pid in [child.pid for child in multiprocessing.active_children()]
    _, _, meanwhile = bot.ask(ALICE, "Great tea today")  # the bot answers while the child is stuck
    assert meanwhile.adapter_version == serving.version
    os.kill(pid, signal.SIGKILL)

    done = weekly_outcome(bot, cursor)["text"]
    assert done.startswith("🗓 Weekly retrain (weekly): failed"), done
    assert "exit code -9" in done
    assert bot.services.runtime.serving is serving and active_versions(bot) == active
    with bot.store() as store:
        assert [(a.version, a.status) for task in ("sentiment", "faq")
                for a in store.adapters.history(task)] == adapters_before
        assert store.runs.last().status == "failed"


def test_rollback_returns_to_the_previous_adapter_at_once(bot: BotHarness) -> None:
    if "sentiment" not in active_versions(bot):  # run before any promotion: promote a first adapter
        assert weekly_outcome(bot, fire_weekly_job(bot))["text"].startswith("🗓 Weekly retrain (weekly): promoted")
    first = active_versions(bot)["sentiment"]
    cursor = fire_weekly_job(bot)
    assert weekly_outcome(bot, cursor)["text"].startswith("🗓 Weekly retrain (weekly): promoted")
    second = active_versions(bot)["sentiment"]
    assert second != first and f"sentiment={second}" in bot.services.runtime.serving.version

    # The weekly report of the retrain above may still arrive after the command: wait for the answer itself.
    sent = bot.emulator.send_command(BOSS, "rollback", "sentiment")
    reply = bot.emulator.wait_for_message(BOSS.id, "rolled back", after=sent["message_id"], timeout=20)["text"]
    assert reply.splitlines()[0] == f"• sentiment model: rolled back to {first}"
    assert f"sentiment={first}" in reply.splitlines()[1]
    assert active_versions(bot)["sentiment"] == first
    _, _, decision = bot.ask(ALICE, "Back to the old model?")
    assert f"sentiment={first}" in decision.adapter_version
    with Store(bot.settings.paths.database) as store:
        assert store.adapters.get(second).status == "retired"
