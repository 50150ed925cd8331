"""The bot's long-lived services: settings, the store, the model runtime, and the model jobs around them.

Opened once in `post_init` and closed in `post_shutdown` (see bot/app.py). The store is a
sqlite connection that belongs to the event-loop thread; anything that needs the database in
another thread (building a serving model, training) opens its own `Store` there.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from bot.batching import DecisionBatcher
from serving.prediction import Prediction
from settings import Settings
from shop.feedback import StaffFeedback
from storage.store import Store

if TYPE_CHECKING:
    from serving.runtime import ModelRuntime, ServingModel
    from training.features import Base

log = logging.getLogger(__name__)
T = TypeVar("T")
RuntimeFactory = Callable[[Settings], "ModelRuntime"]


def load_runtime_for(settings: Settings, encoder: Base | None = None) -> ModelRuntime:
    """Load the serving runtime with a store of this thread's own (blocking: call it in a thread)."""
    from serving.loading import load_runtime

    with Store(settings.paths.database) as store:
        return load_runtime(settings, store, encoder)


def _rebuilt_index(settings: Settings, serving: ServingModel) -> ServingModel:
    from serving.loading import rebuild_index

    with Store(settings.paths.database) as store:
        return rebuild_index(serving, store)


def _active_serving(settings: Settings, encoder: Base) -> ServingModel:
    from serving.loading import load_active

    with Store(settings.paths.database) as store:
        return load_active(encoder, settings, store)


@dataclass
class ShopMetrics:
    """What /status tells an owner about their own bot's running: decisions and their latency, errors, restarts.

    Under `shopbot serve` the host keeps one per shop across that shop's restarts; never shared between shops.
    """

    started: float = field(default_factory=time.time)
    decided: int = 0
    errors: int = 0
    restarts: int = 0
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=2000))  # the latest decisions'

    def record(self, seconds: float) -> None:
        """One decision took `seconds` (queueing in the batcher included)."""
        self.decided += 1
        self.latencies_s.append(seconds)

    def percentile_ms(self, q: float) -> float | None:
        """The q-th percentile (nearest rank) of the latest decision latencies, in ms; None before any."""
        ordered = sorted(self.latencies_s)
        if not ordered:
            return None
        return 1000 * ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class Services:
    """What every handler uses; reach it as `context.services`."""

    settings: Settings
    store: Store
    runtime: ModelRuntime
    batcher: DecisionBatcher
    retrain_task: asyncio.Task[object] | None = None  # /retrain (None) or the weekly job (its result)
    metrics: ShopMetrics = field(default_factory=ShopMetrics)
    _swap_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _index_dirty: bool = False
    _index_task: asyncio.Task[None] | None = None

    async def decide(self, text: str) -> Prediction:
        """The model's decision for a customer message (never on the event loop)."""
        started = time.perf_counter()
        decision = await self.batcher.decide(text)
        self.metrics.record(time.perf_counter() - started)
        return decision

    @property
    def waiting_to_train(self) -> bool:
        """Whether this shop's retrain waits for another shop's to finish."""
        from shop.retraining import waits_for_turn

        return self.retraining and waits_for_turn(self.settings)

    @property
    def feedback(self) -> StaffFeedback:
        """Staff feedback use cases on this shop's store, teaching this runtime's correction memory and index."""
        return StaffFeedback(self.settings, self.store, self.runtime.remember, self.request_index_refresh)

    @property
    def retraining(self) -> bool:
        """Whether an owner-started retrain is still running."""
        return self.retrain_task is not None and not self.retrain_task.done()

    def request_index_refresh(self) -> None:
        """Rebuild the FAQ index in the background soon (coalesces bursts of corrections)."""
        self._index_dirty = True
        if self._index_task is None or self._index_task.done():
            self._index_task = asyncio.get_running_loop().create_task(self._refresh_index_loop())

    async def _refresh_index_loop(self) -> None:
        while self._index_dirty:
            self._index_dirty = False
            try:
                await self.refresh_index()
            except Exception:  # the old index keeps serving; the memory already applies
                log.exception("rebuilding the FAQ index failed; the previous index keeps serving")

    async def refresh_index(self) -> None:
        """Rebuild the FAQ index from storage now, then swap it in."""
        async with self._swap_lock:
            serving = await asyncio.to_thread(_rebuilt_index, self.settings, self.runtime.serving)
            await self._swap(serving)

    async def reload_adapters(self) -> str:
        """Serve the active adapters (after a promotion or rollback); returns the new version string."""
        async with self._swap_lock:
            serving = await asyncio.to_thread(_active_serving, self.settings, self.runtime.serving.encoder)
            await self._swap(serving)
        return self.runtime.serving.version

    async def _swap(self, serving: ServingModel) -> None:
        """Serve `serving` from the next request on; the old model's memory goes back to the OS once it is free.

        Without the trim, glibc keeps the freed pages of the old tops' sessions: +27 MB of VmRSS per swap.
        """
        from serving.onnx_models import release_freed_heap

        self.runtime.swap(serving)  # the old model: freed here, or by the last request still using it
        await asyncio.to_thread(release_freed_heap)

    def reload_memory(self) -> None:
        """Refill the correction memory from storage (after /forget deleted examples)."""
        from serving.loading import load_memory

        self.runtime.memory = load_memory(self.store)

    async def aclose(self) -> None:
        """Stop background work and close the store."""
        for task in (self._index_task,):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(self.batcher.close)
        self.store.close()


async def open_services(settings: Settings, runtime_factory: RuntimeFactory | None = None,
                        metrics: ShopMetrics | None = None) -> Services:
    """Open the store on this (event-loop) thread and load the runtime in a worker thread; decisions are batched
    as `[bot]` says."""
    store = Store(settings.paths.database)
    try:
        runtime = await asyncio.to_thread(runtime_factory or load_runtime_for, settings)
    except BaseException:
        store.close()
        raise
    bot = settings.bot
    batcher = DecisionBatcher(runtime, workers=bot.model_workers, max_batch=bot.max_batch, wait_s=bot.batch_wait_ms / 1000)
    return Services(settings, store, runtime, batcher, metrics=metrics or ShopMetrics())
