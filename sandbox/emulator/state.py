"""What the emulator holds: chats, stored messages, the update queue and the call log, under one lock.

``EmulatorState`` is the base the emulator's parts (users, methods, updates, observe, core) build on;
its helpers expect the lock (``_cond``) held by the caller unless they take it themselves.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sandbox.emulator.refusals import BotAPIError, FloodBucket, bad_request
from sandbox.emulator.transport import Server

Found = TypeVar("Found")
_BOOKKEEPING_KEYS = frozenset("chat_id from_bot method raw_text file_bytes history deleted".split())


class EmulatorState:
    """The emulator's state, as ``BotAPIEmulator(token, host, port, bot_username, flood_limits, keep_alive)`` starts
    it (keep_alive: HTTP/1.1 connections stay open between calls, as Telegram's; else one call per connection)."""

    def __init__(self, token: str = "123456:TEST", host: str = "127.0.0.1", port: int = 0,
                 bot_username: str = "shop_test_bot", flood_limits: bool = True, keep_alive: bool = False):
        self.token, self.host, self.port, self.bot_username = token, host, port, bot_username
        self.flood_limits = flood_limits
        self.keep_alive = keep_alive
        self._cond = threading.Condition()  # guards all state below, notified on every change
        self._stopping = threading.Event()
        self._requests: list[tuple[str, dict]] = []
        self._updates: list[dict] = []  # not yet confirmed by a getUpdates offset
        self._next_update_id = 1
        self._query_ids, self._file_ids = itertools.count(1), itertools.count(1)
        self._open_queries: set[str] = set()
        self._pressed_at: dict[str, float] = {}  # query id -> monotonic time of the press
        self._chats: dict[int, dict] = {}  # the chats the bot may write to
        self._blocked: set[int] = set()  # users who blocked the bot
        self._flood: dict[tuple[str, int], FloodBucket] = {}
        self._arrived = 0.0  # when the call being handled arrived (flood limits count arrivals)
        self._last_message_id: dict[int, int] = {}
        self._messages: dict[tuple[int, int], dict] = {}  # (chat_id, message_id) -> stored message
        self._chat_messages: dict[int, list[dict]] = {}  # chat_id -> the same dicts, oldest first
        self._commands: dict[str, list] = {}
        self._webhook_url = self._webhook_secret = ""
        self._webhook_error: tuple[int, str] | None = None  # (unix time, description) of the last failure
        self._deliveries: list[dict] = []
        self._deliverer: threading.Thread | None = None
        self._failures: dict[str, list[tuple[int | None, BotAPIError]]] = {}  # (only to this chat, error)
        self._delays: dict[str, list[tuple[float, bool]]] = {}  # method: [(seconds, effect_first)]
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        # Bot API methods are the parts' ``_api_<name>`` methods (methods.py, updates.py): lower-case name ->
        # (name, handler).
        self._api = {name[5:].lower(): (name[5:], getattr(self, name))
                     for name in dir(self) if name.startswith("_api_")}

    # ------------------------------------------------------------------ the update queue
    def push_update(self, update: dict) -> int:
        """Queue a raw update (``update_id`` is assigned when missing); return its id."""
        with self._cond:
            update = copy.deepcopy(update)
            update.setdefault("update_id", self._next_update_id)
            if not isinstance(update["update_id"], int):
                raise TypeError("update_id must be an int")
            self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
            self._updates.append(update)
            self._cond.notify_all()
            return update["update_id"]

    def pending_updates(self) -> int:
        """Count updates the bot has not confirmed yet (Telegram's ``pending_update_count``)."""
        with self._cond:
            return len(self._updates)

    # ------------------------------------------------------------------ chats and messages (lock held)
    def _bot_user(self) -> dict:
        """The bot's own ``User`` (what getMe answers)."""
        return {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "Shop Bot",
                "username": self.bot_username, "can_join_groups": True,
                "can_read_all_group_messages": False, "supports_inline_queries": False}

    def _open_chat(self, chat_id: int, name: str) -> dict:
        """The stored chat, created if new: a supergroup titled `name` for a negative id, else a private chat."""
        return self._chats.setdefault(chat_id, (
            {"id": chat_id, "type": "supergroup", "title": name} if chat_id < 0
            else {"id": chat_id, "type": "private", "first_name": name}))

    def _known_chat(self, chat_id: Any) -> dict:
        """A chat the bot knows, else 400 "chat not found"."""
        try:
            return self._chats[int(chat_id)]
        except (TypeError, ValueError, KeyError):
            raise bad_request("chat not found") from None

    def _new_message(self, chat: dict, sender: dict | None, from_bot: bool = False,
                     **fields: Any) -> dict:
        chat_id = chat["id"]
        message_id = self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        stored = {"message_id": message_id, "date": int(time.time()), "chat": chat}
        stored |= ({"from": sender} if sender else {}) | fields
        stored |= {"chat_id": chat_id, "from_bot": from_bot, "history": [], "deleted": False}
        self._messages[(chat_id, message_id)] = stored
        self._chat_messages.setdefault(chat_id, []).append(stored)
        return stored

    def _known(self, message: dict) -> dict:
        """The stored message behind a Message dict (ValueError if the emulator never saw it)."""
        stored = self._messages.get((message["chat"]["id"], message["message_id"]))
        if stored is None:
            raise ValueError(f"unknown message {message['message_id']} in {message['chat']['id']}")
        return stored

    def _file(self, size: int, **fields: Any) -> dict:
        """A new file object (``file_id``, ``file_unique_id``, ``file_size`` and the given fields)."""
        file_id = f"file-{next(self._file_ids)}"
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": size} | {
            k: v for k, v in fields.items() if v is not None}

    # ------------------------------------------------------------------ waiting
    def _wait(self, find: Callable[[], Found | None], timeout: float,
              describe: Callable[[], str]) -> Found:
        """What ``find`` returns once it is not None (rechecked on every change); TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (found := find()) is None:
                if (remaining := deadline - time.monotonic()) <= 0:
                    raise TimeoutError(f"{describe()} within {timeout}s; recent calls: "
                                       f"{self._recent_calls()}")
                self._cond.wait(remaining)
            return found

    def _recent_calls(self, count: int = 10) -> str:
        def short(value: Any) -> str:
            return f"<{len(value)} bytes>" if isinstance(value, bytes) else repr(value)[:60]
        return "; ".join(f"{m}({', '.join(f'{k}={short(v)}' for k, v in p.items())})"
                         for m, p in self._requests[-count:]) or "none"


def public_copy(stored: dict) -> dict:
    """A copy of a stored message as `messages()` returns it (reply_markup always present)."""
    return copy.deepcopy({"reply_markup": None} | stored)


def as_api_message(stored: dict, nested: bool = True) -> dict:
    """The Bot API Message for a stored one: no bookkeeping, only inline keyboards echoed."""
    message = {k: v for k, v in stored.items() if k not in _BOOKKEEPING_KEYS and v is not None}
    if "inline_keyboard" not in (message.get("reply_markup") or {}):
        message.pop("reply_markup", None)
    if not nested:
        message.pop("reply_to_message", None)
    return copy.deepcopy(message)
