"""Faults: the training child killed mid-run, corrupt and half-written adapters, a locked database,
Telegram answering 429/500/slowly, and the bot killed between a staff press and its storage.

Expectations: the previous adapter keeps serving, the failed run is recorded and the owner told,
no message, reply or correction is lost, and a press is either stored or can simply be repeated.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot import callbacks
from cli import main as shopbot
from sandbox.emulator import BotAPIEmulator
from serving.prediction import Prediction
from storage.records import AdapterRecord
from storage.seed import load_demo
from storage.store import Store
from tests.botkit import ALICE, BOB, BOSS, MEI, MINI_SHOP, STAFF_CHAT, XIAO, BotHarness, bot_settings, buttons
from training.args import TrainArgs
from training.pipeline import retrain
from training.registry import AdapterRegistry, CorruptAdapterError

REPO = Path(__file__).resolve().parents[1]
DEMO_SHOP = REPO / "data" / "demo"
FAST = TrainArgs(epochs=1, progress=False)
GATE_OPEN = {"sentiment_accuracy": 0.0, "faq_accuracy": 0.0, "max_regression": 1.0, "max_interval": 1.0, "min_new_examples": 0}


class StubRuntime:
    """The model's stand-in for the Telegram faults: every message is a positive review."""

    serving = SimpleNamespace(version="stub", versions={}, encoder=None)

    def decide(self, text: str) -> Prediction:
        return Prediction("review", "positive", 0.9, False, (("positive", 0.9),), "model", "stub", 0.1)

    def remember(self, text: str, task: str, label: str) -> None:
        """Nothing to remember."""


def active_versions(settings) -> dict[str, str | None]:
    with Store(settings.paths.database) as store:
        return {task: getattr(store.adapters.active(task), "version", None) for task in ("sentiment", "faq")}


# ---------------------------------------------------------------------- adapters and training
def republish(registry: AdapterRegistry, record: AdapterRecord) -> AdapterRecord:
    """A new version with the same files as `record` (as a retrain on the same data would give)."""
    staging = registry.staging_dir(record.task)
    for item in registry.folder(record).iterdir():
        if item.name != "manifest.json":
            (staging / item.name).write_bytes(item.read_bytes())
    return registry.publish(record.task, staging, {"metrics": record.metrics, "base_model": record.base_model})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[BotHarness]:
    """The bot on the tiny model with two promoted sentiment adapters (A, then B active)."""
    settings = bot_settings(tmp_path_factory.mktemp("faults"), tiny_base, thresholds=GATE_OPEN)
    with Store(settings.paths.database) as store:
        load_demo(store, MINI_SHOP)
    assert retrain(settings, "cli", args=FAST)["tasks"]["sentiment"]["promoted"]
    with Store(settings.paths.database) as store:  # B: A's files published again (a second training's worth)
        registry = AdapterRegistry(settings.paths.adapters, store)
        second = republish(registry, store.adapters.active("sentiment"))
        registry.promote(second.version, ["second adapter for the fault tests"])
    with BotHarness(settings) as harness:
        yield harness


def test_training_child_killed_mid_run_keeps_the_adapter_records_the_failure_and_tells_the_owner(
        trained: BotHarness) -> None:
    settings = trained.settings
    before, serving = active_versions(settings), trained.services.runtime.serving.versions.get("sentiment")
    with Store(settings.paths.database) as store:  # much more to learn: the run takes a minute or more
        load_demo(store, DEMO_SHOP)
        candidates = list(store.adapters.table.rows_where("status = 'candidate'"))  # another test may leave one
    features = settings.paths.model_cache / "features"
    cached = set(features.rglob("*")) if features.exists() else set()

    reply = trained.command(BOSS, "retrain")
    assert reply["text"].startswith("⏳")
    deadline = time.monotonic() + 90
    child = None
    while child is None or not (set(features.rglob("*")) - cached):  # the child is computing new features
        assert time.monotonic() < deadline, "the training child never started working"
        child = next((p for p in multiprocessing.active_children() if p.name == "shopbot-train"), child)
        time.sleep(0.05)
    with Store(settings.paths.database) as store:
        assert store.runs.last().status == "running"
    os.kill(child.pid, signal.SIGKILL)

    told = trained.emulator.wait_for_message(BOSS.id, "failed", after=reply["message_id"], timeout=30)
    assert "Retrain finished: failed" in told["text"] and "exit code -9" in told["text"]
    with Store(settings.paths.database) as store:
        run = store.runs.last()
        assert run.status == "failed" and "exit code -9" in (run.error or "")
        assert list(store.adapters.table.rows_where("status = 'candidate'")) == candidates
    assert active_versions(settings) == before
    assert trained.services.runtime.serving.versions.get("sentiment") == serving  # still serving
    assert trained.say(ALICE, "The taro tea was lovely")["text"]
    assert trained.take_errors() == []


def test_corrupt_and_half_written_adapters_are_refused_and_the_previous_one_serves(
        trained: BotHarness, capsys: pytest.CaptureFixture) -> None:
    settings = trained.settings
    with Store(settings.paths.database) as store:
        history = store.adapters.history("sentiment")
        active, previous = history[0], next(a for a in history if a.status == "retired")
    assert active.status == "active"

    # a half-written candidate (a file lost after publishing, as a crash mid-copy would leave it) is refused
    with Store(settings.paths.database) as store:
        registry = AdapterRegistry(settings.paths.adapters, store)
        half = republish(registry, active)
        victim = sorted(p for p in registry.folder(half).iterdir() if p.name != "manifest.json")[0]
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
        with pytest.raises(CorruptAdapterError):
            registry.promote(half.version, ["would be wrong"])
        assert store.adapters.active("sentiment").version == active.version
    # a stray folder that was never registered (a publish that died before its rename) is ignored
    (Path(settings.paths.adapters) / "sentiment" / "sentiment-stray").mkdir()

    # the active adapter's weights get corrupted on disk: the bot falls back to the previous intact one
    (Path(settings.paths.adapters) / active.path / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    trained.run(trained.services.reload_adapters(), timeout=60)
    assert trained.services.runtime.serving.versions["sentiment"] == previous.version
    assert trained.say(BOB, "Lovely tea")["text"]
    with Store(settings.paths.database) as store:
        assert store.adapters.active("sentiment").version == active.version  # recorded as is, for the owner
    assert shopbot(["--config", str(_config_for(settings)), "health"]) == 1
    assert f"adapter {active.version} is corrupt" in capsys.readouterr().out
    assert trained.take_errors() == []


def _config_for(settings) -> Path:
    """A config file with these settings' paths and model (for the `shopbot health` command)."""
    folder = Path(settings.paths.database).parent
    path = folder / "config.toml"
    path.write_text(textwrap.dedent(f"""
        [model]
        base = "{settings.model.base}"
        top_layers = {settings.model.top_layers}
        [paths]
        database = "{settings.paths.database}"
        adapters = "{settings.paths.adapters}"
        model_cache = "{settings.paths.model_cache}"
        reports = "{settings.paths.reports}"
    """), encoding="utf-8")
    return path


# ---------------------------------------------------------------------- storage and Telegram
@pytest.fixture(scope="module")
def stub_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotHarness]:
    runtime = StubRuntime()
    with BotHarness(bot_settings(tmp_path_factory.mktemp("faults-stub")), runtime_factory=lambda s: runtime) as bot:
        yield bot


def stored_texts(bot: BotHarness, user_id: int) -> list[str]:
    with bot.store() as store:
        return [row["text"] for row in store.messages.table.rows_where("customer_id = ?", [user_id], order_by="id")]


def wait_for_replies(bot: BotHarness, sent: list[dict], timeout: float = 30) -> None:
    """Wait until every chat has one bot reply per message sent there (after the first one sent)."""
    deadline = time.monotonic() + timeout
    for chat in {m["chat"]["id"] for m in sent}:
        mine = [m["message_id"] for m in sent if m["chat"]["id"] == chat]
        while len([m for m in bot.emulator.messages(chat) if m["message_id"] > min(mine)]) < len(mine):
            assert time.monotonic() < deadline, f"chat {chat}: not every message was answered"
            time.sleep(0.05)


def test_database_locked_by_another_writer_loses_nothing(stub_bot: BotHarness) -> None:
    texts = [f"locked out {n}" for n in range(12)]
    other = sqlite3.connect(stub_bot.settings.paths.database, timeout=1)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock...
    other.execute("update faq_entries set updated_at = updated_at")
    sent = [stub_bot.emulator.send_text(user, text) for user, text in zip([ALICE, XIAO, BOB] * 4, texts)]
    time.sleep(3)  # ...for three seconds, well inside the 30 s busy timeout
    with stub_bot.store() as store:
        assert store.messages.table.count_where("text like 'locked out %'") == 0  # really blocked meanwhile
    other.commit()
    other.close()
    wait_for_replies(stub_bot, sent)
    stored = stored_texts(stub_bot, ALICE.id) + stored_texts(stub_bot, XIAO.id) + stored_texts(stub_bot, BOB.id)
    assert sorted(t for t in stored if t.startswith("locked out")) == sorted(texts)
    with stub_bot.store() as store:
        stub_bot.wait_until(lambda s: s.decisions.table.count_where("staff_message_id is null") == 0)
    assert stub_bot.take_errors() == []


def test_telegram_429_500_and_slow_answers_lose_nothing(stub_bot: BotHarness) -> None:
    emulator = stub_bot.emulator
    calls_before = len(emulator.calls("sendMessage"))
    delivered_before = len([m for m in emulator.messages() if m["method"] == "sendMessage"])
    emulator.fail_next("getUpdates", 500, times=2)  # polling itself fails for a while
    emulator.fail_next("sendMessage", 429, retry_after=1)
    emulator.fail_next("sendMessage", 500, times=2)
    emulator.fail_next("sendMessage", 502)
    emulator.delay_next("sendMessage", 2.0, times=2)  # slow, but inside the request timeout
    texts = [f"flaky telegram {n}" for n in range(8)]
    sent = [emulator.send_text(user, text) for user, text in zip([ALICE, XIAO] * 4, texts)]
    wait_for_replies(stub_bot, sent, timeout=40)
    mirrored = [m for m in emulator.messages(STAFF_CHAT) if "flaky telegram" in m["text"]]
    deadline = time.monotonic() + 30
    while len(mirrored) < len(texts) and time.monotonic() < deadline:
        time.sleep(0.1)
        mirrored = [m for m in emulator.messages(STAFF_CHAT) if "flaky telegram" in m["text"]]
    assert sorted(t for m in mirrored for t in texts if f"“{t}”" in m["text"]) == sorted(texts)
    assert sorted(t for t in stored_texts(stub_bot, ALICE.id) + stored_texts(stub_bot, XIAO.id)
                  if t.startswith("flaky")) == sorted(texts)
    attempts = len(emulator.calls("sendMessage")) - calls_before
    delivered = len([m for m in emulator.messages() if m["method"] == "sendMessage"]) - delivered_before
    assert attempts - delivered == 4  # each injected failure was followed by a successful retry

    # a staff press whose edit meets a 429 and whose answer is slow still ends stored and shown
    mirror = mirrored[0]
    emulator.fail_next("editMessageText", 429, retry_after=1)
    emulator.delay_next("answerCallbackQuery", 1.5)
    answer = stub_bot.press(MEI, mirror, buttons(mirror)["✅ correct"])
    assert answer["text"] == "Saved ✔"
    deadline = time.monotonic() + 20
    while stub_bot.staff_message(mirror["message_id"])["reply_markup"] is not None:
        assert time.monotonic() < deadline, "the mirror was never edited"
        time.sleep(0.05)
    assert "✔ confirmed by Mei" in stub_bot.staff_message(mirror["message_id"])["text"]
    edits = [p for m, p in emulator.calls("editMessageText") if p["message_id"] == mirror["message_id"]]
    assert len(edits) == 2  # the 429, then the retry
    assert stub_bot.take_errors() == []


def test_a_reply_that_times_out_is_still_delivered_stored_and_mirrored(stub_bot: BotHarness) -> None:
    emulator = stub_bot.emulator
    emulator.delay_next("sendMessage", 5.5)  # longer than the bot's 5 s read timeout: it sees TimedOut
    sent = emulator.send_text(BOB, "telegram too slow")
    assert emulator.wait_for_message(BOB.id, after=sent["message_id"], timeout=20)["text"]  # delivered anyway
    assert "telegram too slow" in stored_texts(stub_bot, BOB.id)
    stub_bot.take_errors(at_least=1)  # the timeout is reported (logged, staff told)
    emulator.wait_for_message(STAFF_CHAT, "telegram too slow", timeout=3)


# ---------------------------------------------------------------------- the bot process killed
BOT_PROCESS = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from types import SimpleNamespace
    from bot.app import build_application, running
    from tests.botkit import bot_settings
    from serving.prediction import Prediction

    class StubRuntime:  # every message is a positive review (as in the test module)
        serving = SimpleNamespace(version="stub", versions={}, encoder=None)
        def decide(self, text):
            return Prediction("review", "positive", 0.9, False, (("positive", 0.9),), "model", "stub", 0.1)
        def remember(self, text, task, label):
            pass

    async def main():
        settings = bot_settings(Path(sys.argv[1])).with_bot_api(sys.argv[3], sys.argv[4], token=sys.argv[2])
        app = build_application(settings, runtime_factory=lambda s: StubRuntime())
        async with running(app):
            print("polling", flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
""")


class BotProcess:
    """The bot in a process of its own, polling the test's emulator; `kill()` is kill -9."""

    def __init__(self, folder: Path, emulator: BotAPIEmulator) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", BOT_PROCESS, str(folder), emulator.token, emulator.base_url,
             emulator.base_file_url], cwd=REPO, stdout=subprocess.PIPE, stderr=None, text=True)
        line = self.process.stdout.readline()
        assert line.strip() == "polling", f"the bot process did not start (exit {self.process.poll()})"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def consistent(store: Store, decision_id: int) -> tuple[str, int, int]:
    """(status, corrections, examples) of a decision: pending/0/0 or handled/1/1, never a mixture."""
    status = store.decisions.get(decision_id).status
    corrections = store.corrections.table.count_where("decision_id = ?", [decision_id])
    examples = store.examples.table.count_where("decision_id = ?", [decision_id])
    assert (status, corrections, examples) in (("pending", 0, 0), ("confirmed", 1, 1)), (status, corrections, examples)
    return status, corrections, examples


def test_bot_killed_between_a_press_and_its_storage_leaves_no_half_state(tmp_path: Path) -> None:
    settings = bot_settings(tmp_path)
    with Store(settings.paths.database) as store:
        load_demo(store, MINI_SHOP)
    with BotAPIEmulator() as emulator:
        emulator.add_chat(STAFF_CHAT)
        bot = BotProcess(tmp_path, emulator)
        mirrors = []
        for text in ("Great tea, killed before storing", "Great tea, killed after storing"):
            sent = emulator.send_text(ALICE, text)
            emulator.wait_for_message(ALICE.id, after=sent["message_id"])
            mirrors.append(emulator.wait_for_message(STAFF_CHAT, text))
        with Store(settings.paths.database) as store:
            deadline = time.monotonic() + 10
            while store.decisions.table.count_where("staff_message_id is null") and time.monotonic() < deadline:
                time.sleep(0.05)
            ids = [callbacks.decode(buttons(m)["✅ correct"]).decision_id for m in mirrors]

        # 1. killed while the press waits for the database: nothing stored, the buttons stay, press again
        blocker = sqlite3.connect(settings.paths.database, timeout=1)
        blocker.execute("BEGIN IMMEDIATE")
        emulator.press_button(MEI, mirrors[0], buttons(mirrors[0])["✅ correct"])
        time.sleep(1.0)  # the bot fetched it at once and now waits for the write lock to store it
        bot.kill()
        blocker.rollback()
        blocker.close()
        with Store(settings.paths.database) as store:
            assert consistent(store, ids[0]) == ("pending", 0, 0)
        assert buttons(emulator.messages(STAFF_CHAT)[0])  # still pressable

        # 2. killed after storing, before answering or editing: stored once, a repeated press is told so
        bot = BotProcess(tmp_path, emulator)
        if emulator.pending_updates():  # the first press was never confirmed to Telegram: it comes again
            emulator.wait_for(lambda m, p: m == "editMessageText" and p["message_id"] == mirrors[0]["message_id"])
        emulator.delay_next("answerCallbackQuery", 60)
        emulator.press_button(MEI, mirrors[1], buttons(mirrors[1])["✅ correct"])
        with Store(settings.paths.database) as store:
            deadline = time.monotonic() + 10
            while store.corrections.table.count_where("decision_id = ?", [ids[1]]) == 0:
                assert time.monotonic() < deadline, "the press was never stored"
                time.sleep(0.02)
        bot.kill()
        with Store(settings.paths.database) as store:
            assert consistent(store, ids[1]) == ("confirmed", 1, 1)

        # after a restart both mirrors still carry their buttons; pressing again settles each cleanly
        bot = BotProcess(tmp_path, emulator)
        try:
            answers = []
            for mirror in mirrors:
                current = next(m for m in emulator.messages(STAFF_CHAT) if m["message_id"] == mirror["message_id"])
                if not buttons(current):  # already settled and shown: the press was redelivered at restart
                    answers.append(None)
                    continue
                before = len(emulator.requests)
                query = emulator.press_button(MEI, current, buttons(current)["✅ correct"])
                _, answer = emulator.wait_for(lambda m, p, query=query: m == "answerCallbackQuery"
                                              and p["callback_query_id"] == query["id"], after=before, timeout=20)
                answers.append(answer.get("text"))
            # the first press is either redelivered at restart (Telegram had not seen it confirmed) and
            # stored then, or it was lost with the process and this press stores it: never half of it
            assert answers[0] in ("Saved ✔", "This one has already been handled.", None)
            assert answers[1] == "This one has already been handled."
            with Store(settings.paths.database) as store:
                assert [consistent(store, i) for i in ids] == [("confirmed", 1, 1)] * 2
        finally:
            bot.kill()
