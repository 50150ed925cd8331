"""The bot's long-lived services: settings, the store, the model runtime, and the model jobs around them.

Opened once in `post_init` and closed in `post_shutdown` (see bot/app.py). The store is a
sqlite connection that belongs to the event-loop thread; anything that needs the database in
another thread (building a serving model, training) opens its own `Store` there.
"""

from __future__ import annotations

import asyncio
import logging
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
class Services:
    """What every handler uses; reach it as `context.services`."""

    settings: Settings
    store: Store
    runtime: ModelRuntime
    batcher: DecisionBatcher
    retrain_task: asyncio.Task[object] | None = None  # /retrain (None) or the weekly job (its result)
    _swap_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _index_dirty: bool = False
    _index_task: asyncio.Task[None] | None = None

    async def decide(self, text: str) -> Prediction:
        """The model's decision for a customer message (never on the event loop)."""
        return await self.batcher.decide(text)

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
            self.runtime.swap(serving)

    async def reload_adapters(self) -> str:
        """Serve the active adapters (after a promotion or rollback); returns the new version string."""
        async with self._swap_lock:
            serving = await asyncio.to_thread(_active_serving, self.settings, self.runtime.serving.encoder)
            self.runtime.swap(serving)
        return self.runtime.serving.version

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
                        workers: int = 2) -> Services:
    """Open the store on this (event-loop) thread and load the runtime in a worker thread."""
    store = Store(settings.paths.database)
    try:
        runtime = await asyncio.to_thread(runtime_factory or load_runtime_for, settings)
    except BaseException:
        store.close()
        raise
    return Services(settings, store, runtime, DecisionBatcher(runtime, workers=workers))
