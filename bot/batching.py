"""Model decisions off the event loop, batched: messages that arrive while a batch runs go together.

An idle bot decides a message at once (a batch of one); under load, everything queued while the
workers are busy goes into the next batch (one trunk pass for up to `max_batch` texts), which
costs far less CPU per message than deciding them one by one. With two workers, one slow batch
never holds up the next one. `wait_s` (`[bot] batch_wait_ms`): while a batch is running, a free
worker waits that long for more messages before it starts a small batch; with nothing running, a
message is decided at once, so a lone message never waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from serving.prediction import Prediction

log = logging.getLogger(__name__)


class Decider(Protocol):
    """What the batcher needs from the model runtime."""

    def decide(self, text: str) -> Prediction: ...


def _decide_many(runtime: Decider, texts: Sequence[str]) -> list[Prediction]:
    batch = getattr(runtime, "decide_batch", None)
    if batch is not None and len(texts) > 1:
        return list(batch(list(texts)))
    return [runtime.decide(text) for text in texts]


class DecisionBatcher:
    """`await decide(text)` from the event loop; the model runs in `workers` threads."""

    def __init__(self, runtime: Decider, workers: int = 2, max_batch: int = 32, wait_s: float = 0.0) -> None:
        self.runtime = runtime
        self.workers = workers
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._timer: asyncio.TimerHandle | None = None
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shopbot-model")
        self._queue: deque[tuple[str, asyncio.Future[Prediction]]] = deque()
        self._busy = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches started, and the messages in them (their ratio: the mean batch size)
        self.batched = 0

    async def decide(self, text: str) -> Prediction:
        """The runtime's decision for `text`, computed in a worker thread."""
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._queue.append((text, future))
        self._kick()
        return await future

    def _kick(self, waited: bool = False) -> None:
        """Start batches on free workers: at once, unless a batch is running, `wait_s` is set and the queue is
        short of a full batch (then once `wait_s` has passed, or the queue fills, or the running batch ends)."""
        if waited:
            self._timer = None
        if not self._queue or self._busy >= self.workers:
            return
        if self.wait_s and not waited and self._busy and len(self._queue) < self.max_batch:
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self.wait_s, self._kick, True)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue and self._busy < self.workers:
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            batch = [(text, future) for text, future in batch if not future.done()]
            if not batch:
                continue
            self._busy += 1
            self.batches += 1
            self.batched += len(batch)
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[str, asyncio.Future[Prediction]]]) -> None:
        texts = [text for text, _ in batch]
        try:
            decisions = await asyncio.get_running_loop().run_in_executor(
                self._executor, _decide_many, self.runtime, texts)
        except Exception as error:  # noqa: BLE001 - handed to every waiting handler
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
        else:
            for (_, future), decision in zip(batch, decisions):
                if not future.done():
                    future.set_result(decision)
        finally:
            self._busy -= 1
            self._kick()

    def close(self) -> None:
        """Stop the worker threads (waiting for a batch in progress)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)
