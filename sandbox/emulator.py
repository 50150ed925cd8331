"""Local emulator of the Telegram Bot API (loopback HTTP, stdlib only) for tests and the sandbox.

Point a real PTB ``Application`` at it with ``.base_url(emu.base_url)`` and
``.base_file_url(emu.base_file_url)``, play the users with ``send_text``/``press_button``/...,
inspect the bot with ``messages``/``calls``/``wait_for`` and break it with ``fail_next``/
``delay_next``. Conventions:

* Params are decoded: JSON values (ints, bools, ``reply_markup``) become Python objects, free text
  (``text``, ``caption``) stays ``str``, uploaded files become ``bytes``.
* Message ids count up per chat, shared by user and bot messages as in Telegram, so they are
  cursors: ``wait_for_message(chat, after=sent["message_id"])`` is the reply to ``sent``.
* ``parse_mode="HTML"`` is validated like Telegram (unknown/unbalanced tags or a bare ``<`` give
  "can't parse entities"); ``text`` is what users see, ``raw_text`` what the bot sent.
* ``messages()`` gives Bot API Message fields plus ``chat_id``, ``method`` (e.g. "sendPhoto"),
  ``raw_text``, ``reply_markup`` (any kind, or None), ``file_bytes`` (uploads), ``history`` (earlier
  ``{"text", "reply_markup"}`` versions) and ``deleted``.
* Refusals are Telegram's (status and description): text over 4,096 / captions over 1,024
  UTF-16 units (sends and edits), callback_data over 64 bytes, answerCallbackQuery later than
  ``callback_answer_window_s`` after the press, chats nobody wrote in nor ``add_chat`` registered
  ("chat not found"), users who ``block_bot`` (403; the bot gets ``my_chat_member`` updates on
  blocking and unblocking, as from Telegram), unknown methods (404 "Not Found").
* Flood limits are on unless ``flood_limits=False``: messages sent to one chat get a burst of
  ``chat_burst`` then about 1/s, to one group ``group_burst`` then about 20/min; the next one is
  answered 429 "Too Many Requests: retry after N" with ``parameters.retry_after`` (edits and
  callback answers are not counted).
* After ``setWebhook`` each update is POSTed to the webhook (with its ``secret_token`` header), one at
  a time, retried until answered 2xx, as Telegram does; the URL must be on 127.0.0.1, ::1 or localhost.
  ``deliveries()``/``wait_for_delivery`` show the attempts; ``deleteWebhook`` returns to polling.
"""

from __future__ import annotations

import copy
import html
import http.client
import ipaddress
import itertools
import json
import math
import re
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

from bot.limits import (
    CALLBACK_ANSWER_S,
    CHAT_BURST,
    CHAT_INTERVAL_S,
    GROUP_BURST,
    GROUP_INTERVAL_S,
    MAX_CALLBACK_ANSWER,
    MAX_CALLBACK_DATA,
    MAX_CAPTION,
    MAX_TEXT,
    utf16_len,
)
from settings import WEBHOOK_SECRET_PATTERN

Found = TypeVar("Found")
_TEXT_PARAMS = frozenset("text caption parse_mode callback_query_id url action photo document "
                         "language_code title description emoji secret_token".split())
_BOOKKEEPING_KEYS = frozenset("chat_id from_bot method raw_text file_bytes history deleted".split())
_HTML_TAGS = frozenset("b strong i em u ins s strike del span tg-spoiler a code pre blockquote "
                       "tg-emoji".split())
_HTML_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z-]*)[^<>]*>")
_NOT_MODIFIED = ("message is not modified: specified new message content and reply markup are "
                 "exactly the same as a current content and reply markup of the message")
TINY_PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489000000"
                         "0d49444154789c63000100000500010d0a2db40000000049454e44ae426082")


@dataclass(frozen=True)
class FakeUser:
    """A Telegram user played by a test or a sandbox visitor."""

    id: int
    first_name: str
    language_code: str | None = None
    username: str | None = None

    def to_api(self) -> dict[str, Any]:
        """Return the Bot API ``User`` object."""
        optional = {"language_code": self.language_code, "username": self.username}
        return {"id": self.id, "is_bot": False, "first_name": self.first_name} | {
            k: v for k, v in optional.items() if v is not None}


class BotAPIError(Exception):
    """An error answered as ``{"ok": false, ...}``; PTB maps the HTTP status to its exception."""

    def __init__(self, status: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters

    def payload(self) -> dict[str, Any]:
        """Return the JSON body Telegram would send."""
        body = {"ok": False, "error_code": self.status, "description": self.description}
        return body | ({"parameters": self.parameters} if self.parameters else {})


def _bad_request(reason: str) -> BotAPIError:
    return BotAPIError(400, f"Bad Request: {reason}")


class _FloodBucket:
    """A burst of ``burst`` messages, then one per ``interval`` s (GCRA); ``grace`` s of clock jitter allowed."""

    def __init__(self, burst: int, interval: float, grace: float) -> None:
        self.tolerance, self.interval, self.due = (burst - 1) * interval + grace, interval, 0.0

    def wait(self, now: float) -> int:
        """0 when a message may go at ``now``, else the whole seconds to wait (at least 1)."""
        early = self.due - self.tolerance - now
        return max(1, math.ceil(early)) if early > 0 else 0

    def take(self, now: float) -> None:
        """Count one message sent at ``now``."""
        self.due = max(self.due, now) + self.interval


class BotAPIEmulator:
    """Fake Telegram Bot API server: inject updates, record and answer the bot's calls."""

    long_poll_cap: float = 1.0  # getUpdates blocks at most this long, so bot shutdown stays quick
    webhook_retry_s: float = 0.2  # pause before posting an update again after a failed delivery
    callback_answer_window_s: float = CALLBACK_ANSWER_S  # tests may shrink it
    chat_burst, group_burst = CHAT_BURST, GROUP_BURST  # flood limits: then 1 message/s per chat, 20/min per group
    flood_grace_s = 0.5  # a message this much early still passes (clock jitter between bot and server)

    def __init__(self, token: str = "123456:TEST", host: str = "127.0.0.1", port: int = 0,
                 bot_username: str = "shop_test_bot", flood_limits: bool = True):
        self.token, self.host, self.port, self.bot_username = token, host, port, bot_username
        self.flood_limits = flood_limits
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
        self._flood: dict[tuple[str, int], _FloodBucket] = {}
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
        self._delays: dict[str, list[float]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # Bot API methods are the ``_api_<name>`` methods: lower-case name -> (name, handler).
        self._api = {name[5:].lower(): (name[5:], getattr(self, name))
                     for name in dir(self) if name.startswith("_api_")}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> BotAPIEmulator:
        """Bind the HTTP server and serve it from a daemon thread."""
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _RequestHandler)
        self._server.emulator = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"BotAPIEmulator:{self.port}", daemon=True)
        self._thread.start()
        self._deliverer = threading.Thread(target=self._deliver_updates, name=f"BotAPIEmulator:{self.port}:webhook",
                                           daemon=True)
        self._deliverer.start()
        return self

    def stop(self) -> None:
        """Wake long polls and delays, stop serving and join every server thread."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the request threads (block_on_close)
            self._thread.join()
            self._server = self._thread = None
        if self._deliverer is not None:
            self._deliverer.join()
            self._deliverer = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """URL for ``ApplicationBuilder.base_url`` (PTB appends the token and ``/method``)."""
        return f"{self._root_url()}/bot"

    @property
    def base_file_url(self) -> str:
        """URL for ``ApplicationBuilder.base_file_url`` (file downloads are not emulated)."""
        return f"{self._root_url()}/file/bot"

    def _root_url(self) -> str:
        if self._server is None:
            raise RuntimeError("BotAPIEmulator is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ user side
    def send_text(self, user: FakeUser, text: str, chat_id: int | None = None) -> dict:
        """Inject a text message from ``user`` (private chat unless ``chat_id``); return it."""
        return self._user_message(user, chat_id, text=text)

    def send_command(self, user: FakeUser, command: str, args: str = "",
                     chat_id: int | None = None) -> dict:
        """Inject ``/command args`` with a ``bot_command`` entity."""
        command = "/" + command.lstrip("/")
        entity = {"type": "bot_command", "offset": 0, "length": len(command)}
        return self._user_message(user, chat_id, text=f"{command} {args}".rstrip(),
                                  entities=[entity])

    def send_sticker(self, user: FakeUser, chat_id: int | None = None, emoji: str = "🙂") -> dict:
        """Inject a sticker message."""
        sticker = self._file(512, width=512, height=512, is_animated=False, is_video=False,
                             type="regular", emoji=emoji)
        return self._user_message(user, chat_id, sticker=sticker)

    def send_photo(self, user: FakeUser, chat_id: int | None = None,
                   caption: str | None = None) -> dict:
        """Inject a photo message."""
        return self._user_message(user, chat_id, photo=[self._file(68, width=1, height=1)],
                                  caption=caption)

    def send_voice(self, user: FakeUser, chat_id: int | None = None, duration: int = 2) -> dict:
        """Inject a voice message."""
        voice = self._file(1000, duration=duration, mime_type="audio/ogg")
        return self._user_message(user, chat_id, voice=voice)

    def send_edited_text(self, user: FakeUser, message: dict, new_text: str) -> dict:
        """Inject an ``edited_message`` update for a message ``user`` sent earlier."""
        with self._cond:
            stored = self._known(message)
            stored.update(text=new_text, edit_date=int(time.time()))
            return self._inject("edited_message", _as_api_message(stored))

    def send_channel_post(self, chat_id: int, text: str) -> dict:
        """Inject a ``channel_post`` update."""
        with self._cond:
            chat = self._chats.setdefault(chat_id, {"id": chat_id, "type": "channel",
                                                    "title": "Channel"})
            stored = self._new_message(chat, None, text=text, sender_chat=chat)
            return self._inject("channel_post", _as_api_message(stored))

    def press_button(self, user: FakeUser, message: dict, data: str) -> dict:
        """Inject a ``callback_query`` for a button now on a bot message (ValueError if absent)."""
        with self._cond:
            stored = self._known(message)
            rows = (stored.get("reply_markup") or {}).get("inline_keyboard", [])
            offered = [button.get("callback_data") for row in rows for button in row]
            if data not in offered:
                raise ValueError(f"no button with callback_data={data!r}; offered: {offered}")
            query_id = str(next(self._query_ids))
            self._open_queries.add(query_id)
            self._pressed_at[query_id] = time.monotonic()
            return self._inject("callback_query", {
                "id": query_id, "from": user.to_api(), "message": _as_api_message(stored),
                "chat_instance": str(stored["chat_id"]), "data": data})

    def press_inaccessible(self, user: FakeUser, message: dict, data: str) -> dict:
        """Press a button of a message the bot can no longer see (older than 48 h): ``date`` 0."""
        query = self.press_button(user, message, data)
        with self._cond:
            update = next(u for u in self._updates if u.get("callback_query", {}).get("id") == query["id"])
            inaccessible = {"chat": query["message"]["chat"], "message_id": message["message_id"], "date": 0}
            update["callback_query"]["message"] = query["message"] = inaccessible
            return copy.deepcopy(query)

    def add_chat(self, chat_id: int, title: str = "Staff") -> dict:
        """Let the bot write to a group (negative id, a supergroup) or user before anyone wrote there."""
        with self._cond:
            return copy.deepcopy(self._open_chat(chat_id, title))

    def block_bot(self, user: FakeUser) -> None:
        """``user`` blocks the bot: what it sends or edits in their chat gets 403 from now on, and the bot
        gets a ``my_chat_member`` update (member → kicked), as from Telegram."""
        with self._cond:
            if user.id not in self._blocked:
                self._blocked.add(user.id)
                self._bot_status_changed(user, "member", "kicked")

    def unblock_bot(self, user: FakeUser) -> None:
        """``user`` unblocks the bot (writing to it does too: a client cannot write to a blocked bot);
        the bot gets a ``my_chat_member`` update (kicked → member)."""
        with self._cond:
            if user.id in self._blocked:
                self._blocked.discard(user.id)
                self._bot_status_changed(user, "kicked", "member")

    def _bot_status_changed(self, user: FakeUser, old: str, new: str) -> None:
        bot = {key: value for key, value in self._api_getMe({}).items() if key in ("id", "is_bot", "first_name",
                                                                                    "username")}

        def member(status: str) -> dict:
            return {"user": bot, "status": status} | ({"until_date": 0} if status == "kicked" else {})

        chat = self._open_chat(user.id, user.first_name)
        self._inject("my_chat_member", {"chat": copy.deepcopy(chat), "from": user.to_api(), "date": int(time.time()),
                                        "old_chat_member": member(old), "new_chat_member": member(new)})

    def reply_to(self, user: FakeUser, message: dict, text: str,
                 chat_id: int | None = None) -> dict:
        """Inject a text replying to ``message``, in that message's chat unless ``chat_id``."""
        with self._cond:
            target = _as_api_message(self._known(message), nested=False)
            chat_id = message["chat"]["id"] if chat_id is None else chat_id
            return self._user_message(user, chat_id, text=text, reply_to_message=target)

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

    # ------------------------------------------------------------------ webhook deliveries
    def deliveries(self) -> list[dict]:
        """Every webhook delivery attempt, oldest first: ``{"update_id", "url", "status", "ok"}``."""
        with self._cond:
            return copy.deepcopy(self._deliveries)

    def wait_for_delivery(self, update_id: int, ok: bool = True, timeout: float = 10) -> dict:
        """Return the first delivery attempt of ``update_id`` that succeeded (or, ``ok=False``, failed)."""
        def find() -> dict | None:
            return next((dict(d) for d in self._deliveries if d["update_id"] == update_id and d["ok"] == ok), None)
        return self._wait(find, timeout, lambda: f"no {'successful' if ok else 'failed'} delivery of update "
                                                 f"{update_id}; deliveries: {self._deliveries[-5:]}")

    def _deliver_updates(self) -> None:
        """While a webhook is set, POST the oldest pending update to it until it is accepted (own thread)."""
        while True:
            with self._cond:
                while not self._stopping.is_set() and not (self._webhook_url and self._updates):
                    self._cond.wait()
                if self._stopping.is_set():
                    return
                update, url, secret = copy.deepcopy(self._updates[0]), self._webhook_url, self._webhook_secret
            status, reason = _post_update(url, secret, update)
            ok = 200 <= status < 300
            with self._cond:
                self._deliveries.append({"update_id": update["update_id"], "url": url, "status": status, "ok": ok})
                if ok:
                    self._updates = [u for u in self._updates if u["update_id"] != update["update_id"]]
                else:
                    self._webhook_error = (int(time.time()), reason)
                self._cond.notify_all()
            if not ok:
                self._stopping.wait(self.webhook_retry_s)

    # ------------------------------------------------------------------ bot side
    @property
    def requests(self) -> list[tuple[str, dict]]:
        """Snapshot of every API call as ``(method, decoded params)``, failed ones included."""
        return self.calls()

    def calls(self, method: str | None = None) -> list[tuple[str, dict]]:
        """Snapshot of the API calls, optionally only those of ``method`` (case-insensitive)."""
        with self._cond:
            return copy.deepcopy([(m, p) for m, p in self._requests
                                  if method is None or m.lower() == method.lower()])

    def messages(self, chat_id: int | None = None, include_deleted: bool = False) -> list[dict]:
        """Messages the bot sent, oldest first, edits applied (keys: see the module docstring)."""
        with self._cond:
            return [_public(m) for m in self._bot_messages(chat_id, include_deleted)]

    def _bot_messages(self, chat_id: int | None, include_deleted: bool = False) -> Iterator[dict]:
        """The stored (not copied) bot messages of one chat or all; call with the lock held."""
        pool = self._messages.values() if chat_id is None else self._chat_messages.get(chat_id, ())
        return (m for m in pool if m["from_bot"] and (include_deleted or not m["deleted"]))

    def wait_for(self, predicate: Callable[[str, dict], bool], timeout: float = 10,
                 after: int = 0) -> tuple[str, dict]:
        """Return the first call with index >= ``after`` (default 0: old calls count) matching."""
        def find() -> tuple[str, dict] | None:
            return next(((m, copy.deepcopy(p)) for m, p in self._requests[after:]
                         if predicate(m, p)), None)
        return self._wait(find, timeout, lambda: "no matching Bot API call")

    def wait_for_message(self, chat_id: int, contains: str | None = None, timeout: float = 10,
                         after: int = 0) -> dict:
        """Return the first bot message in ``chat_id`` with message_id > ``after`` (and text)."""
        def shown(message: dict) -> str:
            return message.get("text") or message.get("caption") or ""

        def find() -> dict | None:  # runs on every change while someone waits: copy only the match
            return next((_public(m) for m in self._bot_messages(chat_id) if m["message_id"] > after
                         and (contains is None or contains in shown(m))), None)

        def describe() -> str:
            seen = [(m["message_id"], shown(m)) for m in self.messages(chat_id)]
            return (f"no bot message in chat {chat_id} with id > {after} containing "
                    f"{contains!r}; bot messages there: {seen}")
        return self._wait(find, timeout, describe)

    def _wait(self, find: Callable[[], Found | None], timeout: float,
              describe: Callable[[], str]) -> Found:
        deadline = time.monotonic() + timeout
        with self._cond:
            while (found := find()) is None:
                if (remaining := deadline - time.monotonic()) <= 0:
                    raise TimeoutError(f"{describe()} within {timeout}s; recent calls: "
                                       f"{self._recent_calls()}")
                self._cond.wait(remaining)
            return found

    # ------------------------------------------------------------------ fault injection
    def fail_next(self, method: str, status: int = 500, times: int = 1, retry_after: int | None = None,
                  description: str | None = None, chat_id: int | None = None) -> None:
        """Answer the next ``times`` calls of ``method`` (to ``chat_id`` only, if given) with an error
        (429: retry_after >= 1)."""
        parameters = None
        if status == 429:
            parameters = {"retry_after": retry_after or 1}  # PTB ignores retry_after=0
            description = description or f"Too Many Requests: retry after {retry_after or 1}"
        error = BotAPIError(status, description or f"Injected failure ({status})", parameters)
        with self._cond:
            self._failures.setdefault(method.lower(), []).extend([(chat_id, error)] * times)

    def delay_next(self, method: str, seconds: float, times: int = 1) -> None:
        """Sleep before answering the next ``times`` calls of ``method``; they still take effect."""
        with self._cond:
            self._delays.setdefault(method.lower(), []).extend([seconds] * times)

    # ------------------------------------------------------------------ HTTP entry point
    def _handle_call(self, token: str, method: str, params: dict) -> tuple[int, dict]:
        name, handler = self._api.get(method.lower(), (method, None))
        with self._cond:
            self._requests.append((name, params))
            self._cond.notify_all()
            arrived = time.monotonic()
            delay = (self._delays.get(method.lower()) or [0]).pop(0)
            failures = self._failures.get(method.lower()) or []
            index = next((i for i, (chat, _) in enumerate(failures)
                          if chat is None or str(chat) == str(params.get("chat_id"))), None)
            failure = failures.pop(index)[1] if index is not None else None
        self._stopping.wait(delay)
        try:
            if token != self.token:
                raise BotAPIError(401, "Unauthorized")
            if failure:
                raise failure
            if handler is None:
                raise BotAPIError(404, "Not Found")
            with self._cond:
                self._arrived = arrived
                result = handler(params)
                self._cond.notify_all()
            return 200, {"ok": True, "result": result}
        except BotAPIError as error:
            return error.status, error.payload()
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            return 400, _bad_request(f"invalid parameters ({error!r})").payload()

    # ------------------------------------------------------------------ Bot API methods
    def _api_getMe(self, p: dict) -> dict:
        return {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "Shop Bot",
                "username": self.bot_username, "can_join_groups": True,
                "can_read_all_group_messages": False, "supports_inline_queries": False}

    def _api_logOut(self, p: dict) -> bool:
        return True

    _api_close = _api_sendChatAction = _api_setChatMenuButton = _api_logOut

    def _api_setWebhook(self, p: dict) -> bool:
        url, secret = str(p.get("url") or ""), str(p.get("secret_token") or "")
        if url and not _is_loopback_url(url):
            raise _bad_request("bad webhook: this emulator delivers only to http(s) URLs on 127.0.0.1, ::1 or "
                               "localhost")
        if secret and not WEBHOOK_SECRET_PATTERN.fullmatch(secret):
            raise _bad_request("secret token contains unallowed characters")
        self._webhook_url, self._webhook_secret, self._webhook_error = url, secret, None
        if p.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _api_deleteWebhook(self, p: dict) -> bool:
        return self._api_setWebhook({"drop_pending_updates": p.get("drop_pending_updates")})

    def _api_getWebhookInfo(self, p: dict) -> dict:
        info = {"url": self._webhook_url, "has_custom_certificate": False,
                "pending_update_count": len(self._updates)}
        if self._webhook_error is not None:
            info |= {"last_error_date": self._webhook_error[0], "last_error_message": self._webhook_error[1]}
        return info

    def _api_getUpdates(self, p: dict) -> list[dict]:
        if self._webhook_url:
            raise BotAPIError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                   "use deleteWebhook to delete the webhook first")
        offset, limit = int(p.get("offset", 0)), min(max(int(p.get("limit", 100)), 1), 100)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]  # confirm older
        deadline = time.monotonic() + min(float(p.get("timeout", 0)), self.long_poll_cap)
        while not self._updates and not self._stopping.is_set():
            if (remaining := deadline - time.monotonic()) <= 0:
                break
            self._cond.wait(remaining)
        return copy.deepcopy(self._updates[:limit])

    def _api_sendMessage(self, p: dict) -> dict:
        text = _visible_text(str(p.get("text", "")), p.get("parse_mode"))
        if not text.strip():
            raise _bad_request("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise _bad_request("message is too long")
        return self._bot_message(p, "sendMessage", text=text, raw_text=p["text"])

    def _api_sendPhoto(self, p: dict) -> dict:
        content = self._upload(p, "photo")
        photo = [self._file(len(content or b""), **_image_size(content or b""))]
        return self._bot_message(p, "sendPhoto", photo=photo, file_bytes=content,
                                 **self._caption(p))

    def _api_sendDocument(self, p: dict) -> dict:
        content = self._upload(p, "document")
        return self._bot_message(p, "sendDocument", document=self._file(len(content or b"")),
                                 file_bytes=content, **self._caption(p))

    def _api_editMessageText(self, p: dict) -> dict | bool:
        text = _visible_text(str(p.get("text", "")), p.get("parse_mode"))
        if not text.strip():
            raise _bad_request("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise _bad_request("MESSAGE_TOO_LONG")
        return self._edit(p, text=text, raw_text=p["text"])

    def _api_editMessageReplyMarkup(self, p: dict) -> dict | bool:
        return self._edit(p)

    def _api_deleteMessage(self, p: dict) -> bool:
        stored = self._messages.get((int(p["chat_id"]), int(p["message_id"])))
        if stored is None or stored["deleted"]:
            raise _bad_request("message to delete not found")
        stored["deleted"] = True
        return True

    def _api_answerCallbackQuery(self, p: dict) -> bool:
        query_id = str(p["callback_query_id"])
        pressed = self._pressed_at.pop(query_id, None)  # None for ids opened by hand (forged presses)
        late = pressed is not None and time.monotonic() - pressed > self.callback_answer_window_s
        if query_id not in self._open_queries or late:
            self._open_queries.discard(query_id)
            raise _bad_request("query is too old and response timeout expired or query ID is "
                               "invalid")
        if utf16_len(str(p.get("text") or "")) > MAX_CALLBACK_ANSWER:
            raise _bad_request("MESSAGE_TOO_LONG")
        self._open_queries.discard(query_id)
        return True

    def _api_setMyCommands(self, p: dict) -> bool:
        if any(not re.fullmatch(r"[a-z0-9_]{1,32}", c["command"]) for c in p["commands"]):
            raise _bad_request("BOT_COMMAND_INVALID")
        self._commands[_commands_key(p)] = p["commands"]
        return True

    def _api_getMyCommands(self, p: dict) -> list[dict]:
        return self._commands.get(_commands_key(p), [])

    def _api_deleteMyCommands(self, p: dict) -> bool:
        self._commands.pop(_commands_key(p), None)
        return True

    def _api_getChat(self, p: dict) -> dict:
        gifts = dict.fromkeys(["unlimited_gifts", "limited_gifts", "unique_gifts",
                               "premium_subscription", "gifts_from_channels"], False)
        return self._known_chat(p["chat_id"]) | {"accent_color_id": 0, "max_reaction_count": 11,
                                           "accepted_gift_types": gifts}

    # ------------------------------------------------------------------ internals (lock held)
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
            raise _bad_request("chat not found") from None

    def _writable_chat(self, chat_id: Any) -> dict:
        """A known chat whose user has not blocked the bot (403 otherwise)."""
        chat = self._known_chat(chat_id)
        if chat["id"] in self._blocked:
            raise BotAPIError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _count_flood(self, chat_id: int) -> None:
        """Count one message to ``chat_id``; 429 when over the chat's or the group's limit."""
        if not self.flood_limits:
            return
        now = self._arrived
        buckets = [self._flood.setdefault(("chat", chat_id), _FloodBucket(self.chat_burst, CHAT_INTERVAL_S,
                                                                          self.flood_grace_s))]
        if chat_id < 0:
            buckets.append(self._flood.setdefault(("group", chat_id), _FloodBucket(
                self.group_burst, GROUP_INTERVAL_S, self.flood_grace_s)))
        waits = [bucket.wait(now) for bucket in buckets]
        if any(waits):
            retry_after = max(waits)
            raise BotAPIError(429, f"Too Many Requests: retry after {retry_after}",
                              {"retry_after": retry_after})
        for bucket in buckets:
            bucket.take(now)

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

    def _user_message(self, user: FakeUser, chat_id: int | None, **fields: Any) -> dict:
        with self._cond:
            if chat_id is None:
                chat = self._chats[user.id] = {"id": user.id, "type": "private",
                                               "first_name": user.first_name}
                self.unblock_bot(user)
            else:
                chat = self._open_chat(chat_id, "Staff" if chat_id < 0 else f"User {chat_id}")
            stored = self._new_message(chat, user.to_api(), **fields)
            return self._inject("message", _as_api_message(stored))

    def _inject(self, kind: str, payload: dict) -> dict:
        self.push_update({kind: payload})
        return copy.deepcopy(payload)

    def _known(self, message: dict) -> dict:
        stored = self._messages.get((message["chat"]["id"], message["message_id"]))
        if stored is None:
            raise ValueError(f"unknown message {message['message_id']} in {message['chat']['id']}")
        return stored

    def _bot_message(self, p: dict, method: str, **content: Any) -> dict:
        chat, markup = self._writable_chat(p["chat_id"]), _checked_markup(p)
        self._count_flood(chat["id"])
        reply_id = (p.get("reply_parameters") or {}).get("message_id", p.get("reply_to_message_id"))
        if (target := self._messages.get((chat["id"], reply_id))) is not None:
            content["reply_to_message"] = _as_api_message(target, nested=False)
        stored = self._new_message(chat, self._api_getMe(p), from_bot=True, method=method,
                                   reply_markup=markup, **content)
        return _as_api_message(stored)

    def _edit(self, p: dict, **changes: Any) -> dict | bool:
        if p.get("inline_message_id"):
            return True
        chat = self._writable_chat(p["chat_id"])
        stored = self._messages.get((chat["id"], int(p["message_id"])))
        if stored is None or stored["deleted"] or not stored["from_bot"]:
            raise _bad_request("message to edit not found")
        if "text" in changes and "text" not in stored:
            raise _bad_request("there is no text in the message to edit")
        changes["reply_markup"] = _checked_markup(p)
        if all(stored.get(k) == changes[k] for k in ("text", "reply_markup") if k in changes):
            raise _bad_request(_NOT_MODIFIED)
        stored["history"].append({k: stored.get(k) for k in ("text", "reply_markup")})
        stored |= changes | {"edit_date": int(time.time())}
        return _as_api_message(stored)

    def _caption(self, p: dict) -> dict[str, Any]:
        if p.get("caption") is None:
            return {}
        caption = _visible_text(str(p["caption"]), p.get("parse_mode"))
        if utf16_len(caption) > MAX_CAPTION:
            raise _bad_request("message caption is too long")
        return {"caption": caption, "raw_text": p["caption"]}

    def _upload(self, p: dict, name: str) -> bytes | None:
        """Uploaded bytes, or None for a file_id/URL (URLs are never fetched)."""
        if not p.get(name):
            raise _bad_request(f"there is no {name} in the request")
        return p[name] if isinstance(p[name], bytes) else None

    def _file(self, size: int, **fields: Any) -> dict:
        file_id = f"file-{next(self._file_ids)}"
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": size} | {
            k: v for k, v in fields.items() if v is not None}

    def _recent_calls(self, count: int = 10) -> str:
        def short(value: Any) -> str:
            return f"<{len(value)} bytes>" if isinstance(value, bytes) else repr(value)[:60]
        return "; ".join(f"{m}({', '.join(f'{k}={short(v)}' for k, v in p.items())})"
                         for m, p in self._requests[-count:]) or "none"


def _checked_markup(p: dict) -> dict | None:
    """The call's reply_markup, refused when a button's callback_data is over the limit."""
    markup = p.get("reply_markup")
    if any(len(b.get("callback_data", "").encode()) > MAX_CALLBACK_DATA
           for row in (markup or {}).get("inline_keyboard", []) for b in row):
        raise _bad_request("BUTTON_DATA_INVALID")
    return markup


def _public(stored: dict) -> dict:
    """A copy of a stored message as `messages()` returns it (reply_markup always present)."""
    return copy.deepcopy({"reply_markup": None} | stored)


def _as_api_message(stored: dict, nested: bool = True) -> dict:
    """The Bot API Message for a stored one: no bookkeeping, only inline keyboards echoed."""
    message = {k: v for k, v in stored.items() if k not in _BOOKKEEPING_KEYS and v is not None}
    if "inline_keyboard" not in (message.get("reply_markup") or {}):
        message.pop("reply_markup", None)
    if not nested:
        message.pop("reply_to_message", None)
    return copy.deepcopy(message)


def _is_loopback_url(url: str) -> bool:
    """Whether ``url`` is http(s) on a loopback address: the only webhooks this emulator posts to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    try:
        return parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:  # another host name
        return False


def _post_update(url: str, secret: str, update: dict) -> tuple[int, str]:
    """POST one update to a loopback webhook as Telegram does; return (HTTP status or 0, description)."""
    parts = urlsplit(url)
    if parts.scheme == "https":  # a loopback server's self-signed certificate
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=5, context=ssl._create_unverified_context())
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    headers = {"Content-Type": "application/json"} | ({"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {})
    try:
        connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                           json.dumps(update).encode(), headers)
        response = connection.getresponse()
        response.read()
        return response.status, f"Wrong response from the webhook: {response.status} {response.reason}"
    except OSError as error:  # refused, reset, timed out (the webhook server is not up yet, or gone)
        return 0, f"Connection failed: {error}"
    finally:
        connection.close()


def _commands_key(p: dict) -> str:
    return json.dumps([p.get("scope") or {"type": "default"}, p.get("language_code") or ""])


def _image_size(content: bytes) -> dict[str, int]:
    if content.startswith(b"\x89PNG") and len(content) >= 24:
        return {"width": int.from_bytes(content[16:20]), "height": int.from_bytes(content[20:24])}
    return {"width": 1, "height": 1}


def _visible_text(text: str, parse_mode: str | None) -> str:
    """Validate HTML like Telegram and return the text users see (other modes: unchanged)."""
    if (parse_mode or "").lower() != "html":
        return text
    open_tags: list[str] = []
    for tag in _HTML_TAG.finditer(text):
        if tag[2].lower() not in _HTML_TAGS:
            raise _bad_request(f'can\'t parse entities: Unsupported start tag "{tag[2]}" at byte '
                               f"offset {tag.start()}")
        if not tag[1]:
            open_tags.append(tag[2].lower())
        elif not open_tags or open_tags.pop() != tag[2].lower():
            raise _bad_request(f"can't parse entities: Unexpected end tag at byte offset "
                               f"{tag.start()}")
    if open_tags:
        raise _bad_request("can't parse entities: Can't find end tag corresponding to start tag "
                           f'"{open_tags[-1]}"')
    visible = _HTML_TAG.sub("", text)
    if "<" in visible:
        raise _bad_request('can\'t parse entities: Unsupported start tag "" at byte offset '
                           f"{text.index('<')}")
    return html.unescape(visible)


def _decode_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """Decode the query string and an urlencoded, multipart or JSON body."""
    fields: dict[str, str | bytes] = dict(parse_qsl(query, keep_blank_values=True))
    if content_type.startswith("application/json"):
        return {k: _decode_value(k, v) for k, v in fields.items()} | json.loads(body or b"{}")
    if boundary := re.search(r'multipart/form-data;.*boundary="?([^";]+)', content_type):
        for part in body.split(b"--" + boundary[1].encode()):
            head, separator, content = part.partition(b"\r\n\r\n")
            name = re.search(rb'\bname="([^"]*)"', head)
            if separator and name:
                content = content.removesuffix(b"\r\n")
                fields[name[1].decode()] = content if b"filename=" in head else content.decode()
    elif body:
        fields |= dict(parse_qsl(body.decode(), keep_blank_values=True))
    params = {k: _decode_value(k, v) for k, v in fields.items()}
    return {k: fields.get(v.removeprefix("attach://"), v)  # resolve "attach://<part>"
            if isinstance(v, str) and v.startswith("attach://") else v for k, v in params.items()}


def _decode_value(key: str, value: str | bytes) -> Any:
    if isinstance(value, bytes) or key in _TEXT_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # e.g. chat_id="@channel"


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins request threads, so stop() leaves none behind
    request_queue_size = 128  # listen backlog: the default 5 resets bursts of concurrent calls
    emulator: BotAPIEmulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # bots hang up on long polls
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads
    timeout = 5

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload = 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        if api_call := re.fullmatch(r"/bot([^/]+)/(\w+)", url.path):
            try:
                params = _decode_params(url.query, self.headers.get("Content-Type", ""), body)
            except (ValueError, UnicodeDecodeError) as error:
                status, payload = 400, _bad_request(f"can't parse request: {error}").payload()
            else:
                emulator: BotAPIEmulator = self.server.emulator  # type: ignore[attr-defined]
                status, payload = emulator._handle_call(api_call[1], api_call[2], params)
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean
