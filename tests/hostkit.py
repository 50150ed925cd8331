"""Helpers for the hosting tests: shop folders on disk, one Bot API emulator per shop, `ShopHost` in a thread.

Each shop is a folder with its config.toml (its token variable, its emulator as api_url, its staff chat and
owner) and a database seeded with the mini shop; the host serves the hosting folder in its own thread and
event loop, as `shopbot serve --shops DIR` does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.hosting import HostOptions, SharedBases, ShopHost
from sandbox.emulator import BotAPIEmulator, FakeUser
from storage.seed import load_demo
from storage.store import Store
from tests.botkit import MINI_SHOP


@dataclass
class Shop:
    """One hosted test shop: its folder, emulator, people and chats."""

    name: str
    folder: Path
    emulator: BotAPIEmulator
    owner: FakeUser
    staff: FakeUser
    staff_chat: int

    @property
    def database(self) -> Path:
        return self.folder / "var" / "shopbot.db"

    @property
    def token_env(self) -> str:
        return f"TOKEN_{self.name.upper().replace('-', '_')}"

    def say(self, user: FakeUser, text: str, timeout: float = 20) -> dict:
        """`user` writes to this shop's bot; returns the bot's reply."""
        sent = self.emulator.send_text(user, text)
        return self.emulator.wait_for_message(user.id, after=sent["message_id"], timeout=timeout)

    def command(self, user: FakeUser, command: str, args: str = "", timeout: float = 20) -> dict:
        sent = self.emulator.send_command(user, command, args)
        return self.emulator.wait_for_message(user.id, after=sent["message_id"], timeout=timeout)

    def cursor(self, chat_id: int) -> int:
        return max((m["message_id"] for m in self.emulator.messages(chat_id, include_deleted=True)), default=0)

    def ask(self, user: FakeUser, text: str) -> tuple[dict, dict]:
        """(the reply, the staff-chat mirror) of a customer message."""
        after = self.cursor(self.staff_chat)
        reply = self.say(user, text)
        return reply, self.emulator.wait_for_message(self.staff_chat, text[:50], after=after, timeout=20)


def _toml(sections: dict[str, dict[str, Any]]) -> str:
    """TOML for flat sections (JSON's strings, numbers, booleans and lists are TOML's too)."""
    return "".join(f"[{name}]\n" + "".join(f"{key} = {json.dumps(value, ensure_ascii=False)}\n"
                                           for key, value in values.items()) + "\n"
                   for name, values in sections.items())


def make_shop(hosting: Path, name: str, number: int, base: Path, **sections: dict[str, Any]) -> Shop:
    """A shop folder under `hosting` with its own emulator (started; token `<number>:T`), people and database."""
    emulator = BotAPIEmulator(token=f"{number}:T{name}", bot_username=f"{name}_bot").start()
    shop = Shop(name, hosting / name, emulator, FakeUser(3000 + number, f"Boss{number}", "en"),
                FakeUser(2000 + number, f"Staff{number}", "en"), -100_000 - number)
    emulator.add_chat(shop.staff_chat)
    emulator.add_chat(shop.owner.id, "Owner")
    data: dict[str, dict[str, Any]] = {
        "shop": {"name": f"{name} 店", "name_en": f"Shop {name}", "languages": ["en", "zh"], "demo_data": str(MINI_SHOP)},
        "roles": {"owner_ids": [shop.owner.id], "staff_ids": [shop.staff.id], "staff_chat_id": shop.staff_chat},
        "thresholds": {"answer_confidence": 1.0, "suggest_confidence": 1.0},
        "conversation": {"takeover_minutes": 0},
        "model": {"base": str(base), "top_layers": 1},
        "telegram": {"api_url": emulator.base_url, "file_url": emulator.base_file_url, "token_env": shop.token_env},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    shop.folder.mkdir(parents=True, exist_ok=True)
    with Store(shop.database) as store:
        load_demo(store, MINI_SHOP)
    (shop.folder / "config.toml").write_text(_toml(data), encoding="utf-8")
    return shop


def exact_memory_runtimes(bases: SharedBases) -> Callable[[Any], Any]:
    """The real loader on `bases`, keeping the correction memory to exact matches (the tiny model embeds all texts
    alike; see tests.botkit.load_real_runtime)."""
    def factory(settings: Any) -> Any:
        runtime = bases.runtime(settings)
        runtime.memory.near_threshold = 1.01
        return runtime
    return factory


class HostHarness:
    """`ShopHost(folder)` running in a background thread until `stop()`."""

    def __init__(self, folder: Path, shops: list[Shop], options: HostOptions, hosting_toml: str = "",
                 env: dict[str, str] | None = None) -> None:
        if hosting_toml:
            (folder / "hosting.toml").write_text(hosting_toml, encoding="utf-8")
        self.env = {shop.token_env: shop.emulator.token for shop in shops} | (env or {})
        self.host = ShopHost(folder, self.env, options)
        self._ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="host-under-test", daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self.host.run(self._stop)

    def start(self, *running: str, timeout: float = 60) -> HostHarness:
        self._thread.start()
        self._ready.wait(10)
        for name in running:
            self.wait_state(name, "running", timeout)
        return self

    def wait_state(self, name: str, state: str, timeout: float = 60) -> None:
        """Wait until shop `name` is in `state` (AssertionError with its problem otherwise)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shop = self.host.shops.get(name)
            if (shop.state if shop else "absent") == state:
                return
            time.sleep(0.05)
        shop = self.host.shops.get(name)
        raise AssertionError(f"shop {name} is {shop and shop.state} ({shop and shop.problem}), not {state}")

    def services(self, name: str) -> Any:
        application = self.host.shops[name].application
        assert application is not None, f"shop {name} is not running"
        return application.bot_data.services

    def run(self, coroutine: Any, timeout: float = 60) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the host did not stop"
