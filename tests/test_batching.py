"""Decisions under load: bot/batching.py's batches and wait window, the [bot] keys, and the emulator's keep-alive mode
(what bench/load.py measures through)."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from pathlib import Path

import pytest

from bot.batching import DecisionBatcher
from sandbox.emulator import BotAPIEmulator
from serving.prediction import Prediction
from settings import ConfigError, settings_from_dict
from vocabulary import MessageKind


class SlowRuntime:
    """Every batch takes `seconds`; records the texts of each batch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.batches: list[list[str]] = []
        self._lock = threading.Lock()

    def decide(self, text: str) -> Prediction:
        return self.decide_batch([text])[0]

    def decide_batch(self, texts: list[str]) -> list[Prediction]:
        with self._lock:
            self.batches.append(list(texts))
        time.sleep(self.seconds)
        return [Prediction(MessageKind.REVIEW, "positive", 0.9, False) for _ in texts]


async def _burst(batcher: DecisionBatcher, first: str, then: list[str], gap_s: float = 0.05) -> None:
    """One message, and while its batch runs, `then` all at once."""
    lone = asyncio.ensure_future(batcher.decide(first))
    await asyncio.sleep(gap_s)
    await asyncio.gather(lone, *(batcher.decide(text) for text in then))


def _run(batcher: DecisionBatcher, coroutine) -> None:
    try:
        asyncio.run(coroutine)
    finally:
        batcher.close()


def test_a_lone_message_never_waits_for_the_window() -> None:
    runtime = SlowRuntime(0.0)
    batcher = DecisionBatcher(runtime, workers=2, wait_s=5.0)
    started = time.monotonic()
    _run(batcher, batcher.decide("alone"))
    assert time.monotonic() - started < 2.0
    assert runtime.batches == [["alone"]]


def test_while_a_batch_runs_the_window_gathers_the_next_messages_into_one_batch() -> None:
    runtime = SlowRuntime(0.3)
    batcher = DecisionBatcher(runtime, workers=2, wait_s=0.15)
    _run(batcher, _burst(batcher, "first", [f"m{i}" for i in range(5)]))
    assert runtime.batches == [["first"], [f"m{i}" for i in range(5)]]


def test_without_a_window_a_free_worker_starts_at_once() -> None:
    runtime = SlowRuntime(0.3)
    batcher = DecisionBatcher(runtime, workers=2)
    _run(batcher, _burst(batcher, "first", [f"m{i}" for i in range(5)]))
    assert runtime.batches[0] == ["first"] and runtime.batches[1] == ["m0"]  # the second worker took what was there
    assert sorted(text for batch in runtime.batches for text in batch) == sorted(["first"] + [f"m{i}" for i in range(5)])


def test_a_full_batch_does_not_wait_and_max_batch_caps_it() -> None:
    runtime = SlowRuntime(0.3)
    batcher = DecisionBatcher(runtime, workers=2, max_batch=3, wait_s=10.0)
    started = time.monotonic()
    _run(batcher, _burst(batcher, "first", [f"m{i}" for i in range(6)]))
    assert time.monotonic() - started < 5.0  # never the 10 s window: the queue held full batches
    assert all(len(batch) <= 3 for batch in runtime.batches)
    assert batcher.batched == 7 and batcher.batches == len(runtime.batches)


def test_max_batch_one_decides_one_by_one() -> None:
    runtime = SlowRuntime(0.05)
    batcher = DecisionBatcher(runtime, workers=1, max_batch=1)
    _run(batcher, _burst(batcher, "first", ["a", "b"]))
    assert [len(batch) for batch in runtime.batches] == [1, 1, 1]


@pytest.mark.parametrize(("values", "message"), [
    ({"model_workers": 0}, "bot.model_workers: must be between 1 and 16"),
    ({"max_batch": 0}, "bot.max_batch: must be between 1 and 256"),
    ({"batch_wait_ms": -1}, "bot.batch_wait_ms: must be between 0 and 100"),
    ({"max_batch": "many"}, "bot.max_batch: must be an integer"),
])
def test_bot_keys_are_checked(tmp_path: Path, values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_dict({"bot": values}, tmp_path, env={})


def test_bot_defaults(tmp_path: Path) -> None:
    bot = settings_from_dict({}, tmp_path, env={}).bot
    assert (bot.model_workers, bot.max_batch, bot.batch_wait_ms) == (2, 32, 0.0)


def test_the_keep_alive_emulator_answers_many_calls_on_one_connection_and_stops_promptly() -> None:
    emulator = BotAPIEmulator(keep_alive=True).start()
    try:
        connection = http.client.HTTPConnection(emulator.host, emulator.port, timeout=5)
        for _ in range(3):
            connection.request("POST", f"/bot{emulator.token}/getMe", body=b"{}",
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())["result"]["is_bot"]
    finally:
        started = time.monotonic()
        emulator.stop()  # the connection is still open: stop hangs it up instead of waiting for its timeout
    assert time.monotonic() - started < 2.0
    connection.close()
