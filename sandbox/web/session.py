"""The web sandbox itself: the real bot on the Bot API emulator (as `shopbot chat` runs it, from
sandbox/chat.py), its page server, and what the page's users do and see.

`build_application` polls a `BotAPIEmulator` on 127.0.0.1, with a sandbox customer, staff member,
owner and staff chat added to the roles in memory. Same handlers, same model, same database as
production; only Telegram's servers are replaced. `Sandbox` maps the page's JSON API (served by
sandbox/web/server.py) onto the emulator's user side.
"""

from __future__ import annotations

import dataclasses
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from bot.limits import MAX_TEXT, utf16_len
from sandbox import chat
from sandbox.emulator import FakeUser
from sandbox.web.server import DEFAULT_PORT, HOST, SandboxError, WebServer
from settings import Settings

MAX_SHOWN = 300  # messages per chat sent to the page (the newest)
_ROLES = ("customer", "staff", "owner")


@dataclass
class _Sent:
    """A message a sandbox user sent (the emulator keeps only the bot's ones for us)."""

    chat_id: int
    message_id: int
    text: str
    reply_to: int | None = None


@dataclass
class _Log:
    """What the sandbox users did: their messages and the button presses awaiting a pop-up."""

    sent: list[_Sent] = field(default_factory=list)
    presses: dict[str, str] = field(default_factory=dict)  # callback query id -> role


class Sandbox:
    """The bot, its emulator and the web page's HTTP server, started and stopped together."""

    def __init__(self, settings: Settings, runtime_factory: Callable[[Settings], Any] | None = None) -> None:
        self.chat = chat.TerminalChat(settings, out=io.StringIO(), runtime_factory=runtime_factory)
        self.emulator = self.chat.emulator
        self.customer = chat.CUSTOMER
        self.staff, self.owner, self.staff_chat = chat.STAFF, chat.OWNER, chat.STAFF_CHAT
        self._log = _Log()
        self._lock = threading.Lock()
        self._server: WebServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, port: int = DEFAULT_PORT) -> Self:
        """Take the port (OSError if busy), start the emulator and the bot (loads the model), serve the page."""
        self._server = WebServer(port, self)
        try:
            self.chat.start()
        except BaseException:
            self._server.server_close()
            self._server = None
            raise
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name="shopbot-sandbox-web",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the web server, the bot and the emulator."""
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None
        self.chat.stop()

    def __enter__(self) -> Self:
        return self.start(0)

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The web page's port (useful after start(0))."""
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The web page's address."""
        return f"http://{HOST}:{self.port}/"

    # ------------------------------------------------------------------ users
    def _user(self, role: str) -> tuple[FakeUser, int]:
        """(user, chat id) of a sandbox role."""
        if role == "customer":
            return self.customer, self.customer.id
        if role == "staff":
            return self.staff, self.staff_chat
        if role == "owner":
            return self.owner, self.owner.id
        raise SandboxError(f'"as" must be one of {", ".join(_ROLES)}, got {role!r}')

    def send(self, role: str, text: str | None, reply_to: int | None = None) -> dict:
        """Send text (or a /command) as `role` in their chat; returns the emulated message."""
        user, chat_id = self._user(role)
        if not isinstance(text, str) or not text.strip():
            raise SandboxError("type something first")
        if utf16_len(text) > MAX_TEXT:
            raise SandboxError(f"Telegram messages are at most {MAX_TEXT} characters (an emoji counts 2); "
                               f"this one has {utf16_len(text)}")
        where = chat_id if role == "staff" else None  # customer and owner write in their private chats
        target = self._bot_message(chat_id, reply_to) if reply_to is not None else None
        if text.startswith("/") and len(text) > 1 and not text[1].isspace():  # e.g. /resume replying to a mirror
            command, _, args = text[1:].partition(" ")
            sent = self.emulator.send_command(user, command, args.strip(), chat_id=where, reply_to=target)
        else:
            if target is None and role == "staff":
                target = self._open_prompt()  # a Telegram client answers a ForceReply prompt by replying to it
            if target is not None:
                sent = self.emulator.reply_to(user, target, text, chat_id=chat_id)
            else:
                sent = self.emulator.send_text(user, text, chat_id=where)
        self._record(chat_id, sent, text, target)
        return sent

    def send_media(self, role: str, kind: str) -> dict:
        """Send a sticker, photo or voice message as `role`."""
        user, chat_id = self._user(role)
        if kind not in ("sticker", "photo", "voice"):
            raise SandboxError(f'"kind" must be sticker, photo or voice, got {kind!r}')
        sent = getattr(self.emulator, f"send_{kind}")(user, chat_id=None if role != "staff" else chat_id)
        self._record(chat_id, sent, {"sticker": "🙂 (sticker)", "photo": "🖼 (photo)", "voice": "🎤 (voice)"}[kind])
        return sent

    def press(self, role: str, message_id: int, data: str) -> dict:
        """Press a button now on one of the bot's messages in `role`'s chat."""
        user, chat_id = self._user(role)
        message = self._bot_message(chat_id, message_id)
        if message is None:
            raise SandboxError(f"no bot message #{message_id} in the {role} chat")
        try:
            query = self.emulator.press_button(user, message, data)
        except ValueError as error:  # the buttons changed meanwhile
            raise SandboxError(f"that button is gone ({error})") from None
        with self._lock:
            self._log.presses[query["id"]] = role
        return query

    def set_language(self, code: str | None) -> None:
        """Set the customer's Telegram language (None: not set)."""
        if code not in (None, "en", "zh", "zh-hans"):
            raise SandboxError(f"language must be en, zh or null, got {code!r}")
        self.customer = dataclasses.replace(self.customer, language_code=code)

    def _record(self, chat_id: int, sent: dict, text: str, target: dict | None = None) -> None:
        with self._lock:
            self._log.sent.append(_Sent(chat_id, sent["message_id"], text,
                                        None if target is None else target["message_id"]))

    def _bot_message(self, chat_id: int, message_id: int) -> dict | None:
        return next((m for m in self.emulator.messages(chat_id) if m["message_id"] == message_id), None)

    def _open_prompt(self) -> dict | None:
        prompts = [m for m in self.emulator.messages(self.staff_chat) if (m.get("reply_markup") or {}).get("force_reply")]
        return prompts[-1] if prompts else None

    # ------------------------------------------------------------------ what the page shows
    def state(self) -> dict[str, Any]:
        """Everything the page draws: the three chats and the pop-up answers to presses."""
        with self._lock:
            sent = list(self._log.sent)
            presses = dict(self._log.presses)
        chats = {}
        for role in _ROLES:
            user, chat_id = self._user(role)
            shown = [_bot_view(m) for m in self.emulator.messages(chat_id)]
            shown += [{"id": s.message_id, "from": "user", "text": s.text, "reply_to": s.reply_to}
                      for s in sent if s.chat_id == chat_id]
            shown.sort(key=lambda m: m["id"])
            chats[role] = {"chat_id": chat_id, "user": user.first_name, "messages": shown[-MAX_SHOWN:]}
        popups = [{"as": presses[p["callback_query_id"]], "text": p["text"], "alert": bool(p.get("show_alert"))}
                  for _, p in self.emulator.calls("answerCallbackQuery")
                  if p.get("text") and p["callback_query_id"] in presses]
        return {"chats": chats, "popups": popups, "language": self.customer.language_code,
                "waiting": self.emulator.pending_updates()}

    def file(self, chat_id: int, message_id: int) -> tuple[bytes, str] | None:
        """(bytes, content type) of a photo or document the bot uploaded."""
        message = self._bot_message(chat_id, message_id)
        content = (message or {}).get("file_bytes")
        if not isinstance(content, bytes):
            return None
        kind = "image/png" if content.startswith(b"\x89PNG") else (
            "image/jpeg" if content.startswith(b"\xff\xd8") else "application/octet-stream")
        return content, kind


def _bot_view(message: dict) -> dict[str, Any]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    method = message.get("method")
    file_url = f"/api/file/{message['chat_id']}/{message['message_id']}" if message.get("file_bytes") else None
    reply = message.get("reply_to_message") or {}
    return {
        "id": message["message_id"], "from": "bot", "text": message.get("text") or message.get("caption") or "",
        "buttons": [[{"text": b.get("text", ""), "data": b.get("callback_data")} for b in row] for row in rows],
        "photo": file_url if method == "sendPhoto" else None,
        "document": file_url if method == "sendDocument" else None,
        "edited": bool(message.get("history")),
        "force_reply": bool((message.get("reply_markup") or {}).get("force_reply")),
        "reply_to": reply.get("message_id"),
    }
