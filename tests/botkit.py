"""Shared helpers for the bot tests: the real PTB application polling the Bot API emulator.

A `BotHarness` runs `build_application(...)` in its own thread and event loop (as `shopbot run`
would) against a `BotAPIEmulator` on 127.0.0.1; tests play customers, staff and owners from
the test thread and read the database through their own `Store`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from bot.app import build_application, running, webhook_options
from bot.services import load_runtime_for
from sandbox.emulator import BotAPIEmulator, FakeUser
from settings import Settings, settings_from_dict
from storage.records import Decision
from storage.seed import load_demo
from storage.store import Store

MINI_SHOP = Path(__file__).parent / "data" / "mini_shop"
STAFF_CHAT = -100500
ALICE = FakeUser(1001, "Alice", "en")  # customer writing English
XIAO = FakeUser(1002, "小美", "zh-hans")  # customer writing Chinese
BOB = FakeUser(1003, "Bob")  # customer without a language_code
MEI = FakeUser(2001, "Mei", "en")  # staff
BOSS = FakeUser(3001, "Boss", "en")  # owner
EVE = FakeUser(4001, "Eve", "en")  # a customer pressing staff buttons


def bot_settings(folder: Path, base: Path | None = None, **sections: dict[str, Any]) -> Settings:
    """Settings for a test bot in `folder` (tiny model at `base`; staff/owner ids above)."""
    data: dict[str, Any] = {
        "shop": {"languages": ["en", "zh"], "demo_data": str(MINI_SHOP)},
        "roles": {"owner_ids": [BOSS.id], "staff_ids": [MEI.id], "staff_chat_id": STAFF_CHAT},
        # the tiny random model never answers by itself, nor offers "did you mean…?" (tests/test_bot_conversation does)
        "thresholds": {"answer_confidence": 1.0, "suggest_confidence": 1.0},
        "conversation": {"takeover_minutes": 0},  # no takeover unless a test asks (tests/test_bot_takeover.py)
    }
    if base is not None:
        data["model"] = {"base": str(base), "top_layers": 1}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return settings_from_dict(data, folder, env={})


_ENCODERS: dict[Any, Any] = {}
_ENCODERS_LOCK = threading.Lock()


def shared_encoder(settings: Settings) -> Any:
    """One loaded encoder per model config for the whole test session (loading takes seconds)."""
    from training.encoder import load_encoder

    with _ENCODERS_LOCK:
        if settings.model not in _ENCODERS:
            _ENCODERS[settings.model] = load_encoder(settings)
        return _ENCODERS[settings.model]


def load_real_runtime(settings: Settings) -> Any:
    """The real loader (load_runtime), with the session's shared encoder: a runtime factory.

    The tiny random model embeds all texts almost alike (cosine > 0.95), so the memory's
    "near-identical message" rule would match unrelated texts: tests keep exact matches only.
    """
    runtime = load_runtime_for(settings, encoder=shared_encoder(settings))
    runtime.memory.near_threshold = 1.01
    return runtime


class BotHarness:
    """The real application polling an emulator (or on its webhook, in webhook mode), in a background thread.

    It talks to the emulator through settings.telegram.api_url; pass a running `emulator` when the
    settings already point at it (it is then the caller's to stop).
    """

    def __init__(self, settings: Settings, runtime_factory: Callable[[Settings], Any] | None = None,
                 answer_timeout_s: float = 300.0, seed: bool = True, emulator: BotAPIEmulator | None = None,
                 flood_limits: bool = True) -> None:
        self.emulator = emulator or BotAPIEmulator(flood_limits=flood_limits)  # the bot paces itself to the same limits
        self._own_emulator = emulator is None
        self.emulator.add_chat(STAFF_CHAT)  # the bot is a member of the staff group
        for owner_id in settings.roles.owner_ids:  # and the owners have started it
            self.emulator.add_chat(owner_id, "Owner")
        self.flood_limits = flood_limits
        self.settings = settings
        self.runtime_factory = runtime_factory or load_real_runtime
        self.answer_timeout_s = answer_timeout_s
        self.errors: list[BaseException] = []
        self.seed = seed
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> BotHarness:
        """Seed the database, start the emulator and the bot; wait until it polls (or its webhook is set)."""
        if self.seed:
            with Store(self.settings.paths.database) as store:
                load_demo(store, MINI_SHOP)
        if self._own_emulator:
            self.emulator.start()
        self.settings = self.settings.with_bot_api(self.emulator.base_url, self.emulator.base_file_url,
                                                   self.emulator.token)
        self.app = build_application(self.settings, runtime_factory=self.runtime_factory,
                                     answer_timeout_s=self.answer_timeout_s, flood_limits=self.flood_limits)

        async def record(update: object, context: Any) -> None:
            self.errors.append(context.error)

        self.app.add_error_handler(record)
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="bot-under-test",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(120):
            raise TimeoutError("bot did not start in 120 s")
        if self._startup_error is not None:
            if self._own_emulator:
                self.emulator.stop()
            raise self._startup_error
        receiving = "getUpdates" if self.settings.telegram.mode == "polling" else "setWebhook"
        self.emulator.wait_for(lambda method, _: method == receiving, timeout=30)
        return self

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with running(self.app, webhook=webhook_options(self.settings)):
                self._ready.set()
                await self._stop.wait()
        except BaseException as error:  # noqa: BLE001 - reported by start()
            self._startup_error = error
            self._ready.set()

    def stop(self) -> None:
        """Stop the bot (post_shutdown included) and the emulator."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(60)
        if self._own_emulator:
            self.emulator.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ bot side
    @property
    def services(self) -> Any:
        """The running bot's Services (touch the runtime only; the store belongs to the bot's thread)."""
        return self.app.bot_data.services

    def run(self, coroutine: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the bot's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @contextmanager
    def store(self) -> Iterator[Store]:
        """A Store of the test thread on the bot's database."""
        with Store(self.settings.paths.database) as store:
            yield store

    def take_errors(self, at_least: int = 0, timeout: float = 10) -> list[BaseException]:
        """Errors the bot's error handlers saw since the last call (waiting for `at_least` of them)."""
        deadline = time.monotonic() + timeout
        while len(self.errors) < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
        errors, self.errors = self.errors, []
        return errors

    # ------------------------------------------------------------------ user side
    def cursor(self, chat_id: int) -> int:
        """The newest bot message id in a chat (wait for messages after it)."""
        return max((m["message_id"] for m in self.emulator.messages(chat_id, include_deleted=True)), default=0)

    def say(self, user: FakeUser, text: str, timeout: float = 20) -> dict:
        """Send text as `user` in their private chat; return the bot's reply."""
        sent = self.emulator.send_text(user, text)
        return self.emulator.wait_for_message(user.id, after=sent["message_id"], timeout=timeout)

    def command(self, user: FakeUser, command: str, args: str = "", chat_id: int | None = None,
                timeout: float = 20) -> dict:
        """Send /command as `user`; return the bot's reply in that chat."""
        sent = self.emulator.send_command(user, command, args, chat_id=chat_id)
        return self.emulator.wait_for_message(chat_id or user.id, after=sent["message_id"], timeout=timeout)

    def wait_mirror(self, contains: str, after: int = 0, timeout: float = 20) -> tuple[dict, Decision]:
        """The staff-chat mirror containing `contains` and its stored decision (once linked)."""
        message = self.emulator.wait_for_message(STAFF_CHAT, contains, after=after, timeout=timeout)
        decision = self.wait_until(lambda store: linked(store, message["message_id"]), timeout)
        return message, decision

    def ask(self, user: FakeUser, text: str) -> tuple[dict, dict, Decision]:
        """Customer message -> (bot reply, staff mirror, stored decision)."""
        after = self.cursor(STAFF_CHAT)
        reply = self.say(user, text)
        mirror, decision = self.wait_mirror(text[:50], after=after)
        return reply, mirror, decision

    def staff_message(self, message_id: int) -> dict:
        """The staff-chat message as it is now (edits applied)."""
        return next(m for m in self.emulator.messages(STAFF_CHAT) if m["message_id"] == message_id)

    def press(self, user: FakeUser, message: dict, data: str) -> dict:
        """Press a button and return the answerCallbackQuery parameters."""
        before = len(self.emulator.requests)
        query = self.emulator.press_button(user, message, data)
        _, answer = self.emulator.wait_for(
            lambda method, params: method == "answerCallbackQuery" and params["callback_query_id"] == query["id"],
            timeout=20, after=before)
        return answer

    def wait_until(self, probe: Callable[[Store], Any], timeout: float = 20) -> Any:
        """Poll the database until `probe(store)` is truthy; return it."""
        deadline = time.monotonic() + timeout
        with self.store() as store:
            while True:
                value = probe(store)
                if value:
                    return value
                if time.monotonic() > deadline:
                    raise TimeoutError(f"database condition not met in {timeout}s")
                time.sleep(0.05)


def linked(store: Store, message_id: int) -> Decision | None:
    """The decision mirrored as this staff-chat message, once the bot has stored where its mirror went."""
    rows = store.decisions.table.rows_where("staff_chat_id = ? and staff_message_id = ?", [STAFF_CHAT, message_id])
    return next((Decision.from_row(row) for row in rows), None)


def buttons(message: dict) -> dict[str, str]:
    """{button text: callback_data} of a bot message."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return {button["text"]: button["callback_data"] for row in rows for button in row}


def button_data(message: dict, starts_with: str) -> str:
    """The callback_data of the first button whose text starts with `starts_with`."""
    for text, data in buttons(message).items():
        if text.startswith(starts_with):
            return data
    raise AssertionError(f"no button starting with {starts_with!r}: {list(buttons(message))}")


_FORGED_IDS = iter(range(1, 1_000_000))


def press_raw(harness: BotHarness, user: FakeUser, message: dict, data: Any) -> dict:
    """Press with any callback_data (forged, truncated, stale) on a bot message; return the answer.

    The emulator only presses buttons that exist, as honest clients do; a modified client can
    send anything, so this queues the raw update itself and opens the query id (emulator
    internals: there is no public API for it).
    """
    emulator = harness.emulator
    query_id = f"raw-{next(_FORGED_IDS)}"
    with emulator._cond:
        emulator._open_queries.add(query_id)
    api_message = {key: message[key] for key in ("message_id", "date", "chat", "from", "text") if key in message}
    if message.get("reply_markup"):
        api_message["reply_markup"] = message["reply_markup"]
    before = len(emulator.requests)
    emulator.push_update({"callback_query": {"id": query_id, "from": user.to_api(), "message": api_message,
                                             "chat_instance": "raw", "data": data}})
    _, answer = emulator.wait_for(
        lambda method, params: method == "answerCallbackQuery" and params["callback_query_id"] == query_id,
        timeout=20, after=before)
    return answer


def publish_promoted(harness: BotHarness, task: str, versions: tuple[str, ...]) -> None:
    """Publish dummy adapter folders under these versions and promote each in turn (last one active)."""
    from training.registry import AdapterRegistry

    with harness.store() as store:
        registry = AdapterRegistry(harness.settings.paths.adapters, store)
        for version in versions:
            staging = registry.staging_dir(task)
            (staging / "weights.bin").write_bytes(version.encode())
            registry.publish(task, staging, {"metrics": {"accuracy": 0.9}, "base_model": "tiny", "version": version})
            registry.promote(version, ["test"])


def publish_refused_sentiment(settings: Settings, version: str, favoured: str) -> None:
    """Publish a real sentiment adapter that always says `favoured`, refused by the gate (the unpromoted candidate
    whose guess the mirrors show); a running bot sees it after `services.reload_adapters()`, a new one at start."""
    import torch

    from training.args import TrainArgs
    from training.registry import AdapterRegistry
    from training.sentiment import new_sentiment_model, save_sentiment
    from vocabulary import SENTIMENT_LABELS

    model = new_sentiment_model(shared_encoder(settings), TrainArgs())
    for name, parameter in model.named_parameters():
        if "classifier" in name:
            with torch.no_grad():
                parameter.zero_()
                if name.endswith("bias"):
                    parameter[SENTIMENT_LABELS.index(favoured)] = 5.0
    with Store(settings.paths.database) as store:
        registry = AdapterRegistry(settings.paths.adapters, store)
        staging = registry.staging_dir("sentiment")
        save_sentiment(model, staging)
        registry.publish("sentiment", staging, {"metrics": {"accuracy": 0.5}, "base_model": "tiny", "version": version})
        registry.reject(version, ["test: below the gate"])
