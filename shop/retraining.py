"""Retrain, then swap: the one path from "train new adapters" to "the bot serves them"; and going back.

Used by the weekly job (bot/jobs.py) and an owner's /retrain, for every shop a process hosts. Training
runs through the configured backend (`training.pipeline.run_retrain`: a child process taking its turn
with the process's other retrains, first come first served, or a Ray task; stopped after
`schedule.retrain_timeout_minutes`) waited for in a daemon thread, so the event loop keeps answering
and shutting down never waits for it. Only a promoted run changes what is served, through `reload`
(build the new serving model aside, swap one reference); whatever fails, the old adapters keep
serving and the reason is in the result.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from settings import Settings
from storage.records import AdapterRecord
from storage.store import Store
from vocabulary import TASKS, RunStatus, Task

log = logging.getLogger(__name__)
T = TypeVar("T")
RunRetrain = Callable[[Settings, str], dict[str, Any]]


@dataclass(frozen=True)
class Retrained:
    """How a retrain went: the run's result, and what is served now."""

    result: dict[str, Any]
    serving: str | None = None  # the version served after a promotion was swapped in
    swap_problem: str | None = None  # a promotion that could not be swapped in (the previous model serves)

    @property
    def status(self) -> str:
        """promoted, refused, skipped or failed (vocabulary.RunStatus)."""
        return str(self.result.get("status", RunStatus.FAILED))


async def in_daemon_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a long blocking call (training) in a daemon thread, so shutting down never waits for it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def work() -> None:
        try:
            result = function(*args)
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
            loop.call_soon_threadsafe(settle, future.set_exception, error)
        else:
            loop.call_soon_threadsafe(settle, future.set_result, result)

    threading.Thread(target=work, name=f"shopbot-{getattr(function, '__name__', 'job')}", daemon=True).start()
    return await future


async def retrain_and_swap(settings: Settings, trigger: str, reload: Callable[[], Awaitable[str]],
                           run_retrain: RunRetrain | None = None) -> Retrained:
    """Retrain through the configured backend (at most `schedule.retrain_timeout_minutes`), then serve what it promoted."""
    from training import pipeline  # deferred: only a retrain needs it (and no torch: the child trains)

    try:
        result = await in_daemon_thread(run_retrain or pipeline.run_retrain, settings, trigger)
    except Exception as error:  # the run could not even start: reported like a failed run
        log.exception("%s retrain could not run", trigger)
        result = {"status": RunStatus.FAILED, "reasons": [f"{type(error).__name__}: {error}"]}
    if result.get("status") != RunStatus.PROMOTED:
        return Retrained(result)
    try:
        return Retrained(result, serving=await reload())
    except Exception as error:  # the previous model keeps serving
        log.exception("promoted adapters could not be swapped in")
        return Retrained(result, swap_problem=f"{type(error).__name__}: {error}")


def waits_for_turn(settings: Settings) -> bool:
    """Whether this shop's retrain waits while another shop of this process trains (`training.backend = "local"`)."""
    from training.backends import local_turn, turn_owner  # deferred: a /status that never retrains needs none of it

    return local_turn().waiting(turn_owner(settings))


def roll_back(settings: Settings, store: Store, tasks: Sequence[str] = TASKS) -> list[tuple[Task, AdapterRecord | str]]:
    """Make each task's previous adapter the active one: per task, the record now active, or why not.

    A running bot serves the result at once after /rollback, and within a few seconds after
    `shopbot rollback` (it watches the active adapters).
    """
    from training.registry import AdapterRegistry, RollbackError

    registry = AdapterRegistry(settings.paths.adapters, store)
    done: list[tuple[Task, AdapterRecord | str]] = []
    for task in map(Task, tasks):
        try:
            done.append((task, registry.rollback(task)))
        except RollbackError as error:
            done.append((task, str(error)))
    return done


def prune_adapters(settings: Settings) -> list[str]:
    """Delete old adapter folders, keeping per task the active, the previous and `schedule.keep_adapters` more."""
    from training.registry import AdapterRegistry

    with Store(settings.paths.database) as store:  # this thread's own connection
        return AdapterRegistry(settings.paths.adapters, store).prune(settings.schedule.keep_adapters)
