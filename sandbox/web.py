"""`shopbot up` without a token: the real bot against the local Bot API emulator, played from a web page.

The bot half is `shopbot chat`'s (sandbox/chat.py): the same `build_application` polls a
`BotAPIEmulator` on 127.0.0.1, with a sandbox customer, staff member, owner and staff chat added
to the roles in memory. Same handlers, same model, same database as production; only Telegram's
servers are replaced. On top, a stdlib HTTP server on 127.0.0.1 serves one page
(sandbox/page.html) and a small JSON API that maps onto the emulator's user side:

    GET  /                               the page
    GET  /api/state                      the three chats: messages, buttons, pop-up answers
    GET  /api/file/<chat>/<message id>   a photo or document the bot sent (the /report chart)
    POST /api/send      {"as": "customer"|"staff"|"owner", "text": "...", "reply_to": <message id>}
    POST /api/press     {"as": ..., "message_id": <id>, "data": "<callback_data>"}
    POST /api/media     {"as": "customer", "kind": "sticker"|"photo"|"voice"}
    POST /api/language  {"code": "en"|"zh"|null}     the customer's Telegram language

The server binds 127.0.0.1 only, answers only requests whose Host is this machine, and takes
POSTs only as application/json (which a web page elsewhere cannot send without a CORS preflight
this server never grants), so other sites open in the same browser cannot drive it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Self, TextIO
from urllib.parse import urlsplit

from bot.limits import MAX_TEXT, utf16_len
from sandbox.emulator import TINY_PNG, FakeUser
from settings import Settings

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # loopback only, never another address
DEFAULT_PORT = 8080
MAX_SHOWN = 300  # messages per chat sent to the page (the newest)
TASKS = ("sentiment", "faq")
_ROLES = ("customer", "staff", "owner")
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


class SandboxError(ValueError):
    """A request the sandbox cannot carry out (answered as HTTP 400 with the reason)."""


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
        # Imported here, not at module level: sandbox.chat binds sys.stdout as a default argument when imported.
        from sandbox import chat

        self.chat = chat.TerminalChat(settings, out=io.StringIO(), runtime_factory=runtime_factory)
        self.emulator = self.chat.emulator
        self.customer = chat.CUSTOMER
        self.staff, self.owner, self.staff_chat = chat.STAFF, chat.OWNER, chat.STAFF_CHAT
        self._log = _Log()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, port: int = DEFAULT_PORT) -> Sandbox:
        """Take the port (OSError if busy), start the emulator and the bot (loads the model), serve the page."""
        self._server = _Server((HOST, port), _Handler)
        self._server.sandbox = self
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

    def send(self, role: str, text: str, reply_to: int | None = None) -> dict:
        """Send text (or a /command) as `role` in their chat; returns the emulated message."""
        user, chat_id = self._user(role)
        if not isinstance(text, str) or not text.strip():
            raise SandboxError("type something first")
        if utf16_len(text) > MAX_TEXT:
            raise SandboxError(f"Telegram messages are at most {MAX_TEXT} characters (an emoji counts 2); "
                               f"this one has {utf16_len(text)}")
        where = chat_id if role == "staff" else None  # customer and owner write in their private chats
        target = None
        if text.startswith("/") and len(text) > 1 and not text[1].isspace():
            command, _, args = text[1:].partition(" ")
            sent = self.emulator.send_command(user, command, args.strip(), chat_id=where)
        else:
            target = self._bot_message(chat_id, reply_to) if reply_to is not None else None
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


# ---------------------------------------------------------------------- HTTP
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: Sandbox


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    timeout = 10

    def do_GET(self) -> None:
        if not self._local():
            return
        path = urlsplit(self.path).path
        sandbox = self.server.sandbox
        if path in ("/", "/index.html"):
            page = resources.files("sandbox").joinpath("page.html").read_bytes()
            self._reply(200, page, "text/html; charset=utf-8")
        elif path == "/api/state":
            self._json(200, sandbox.state())
        elif found := re.fullmatch(r"/api/file/(-?\d+)/(\d+)", path):
            content = sandbox.file(int(found[1]), int(found[2]))
            if content is None:
                self._json(404, {"error": "no such file"})
            else:
                self._reply(200, *content)
        elif path == "/favicon.ico":
            self._reply(200, TINY_PNG, "image/png")
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        if not self._local():
            return
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            self._json(415, {"error": "send application/json"})
            return
        try:
            body = json.loads(self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 64_000)) or b"{}")
            if not isinstance(body, dict):
                raise SandboxError("the body must be a JSON object")
            result = self._act(urlsplit(self.path).path, body)
        except (SandboxError, ValueError, TypeError, KeyError) as error:
            self._json(400, {"error": str(error)})
            return
        if result is None:
            self._json(404, {"error": "not found"})
        else:
            self._json(200, result)

    def _act(self, path: str, body: dict) -> dict | None:
        sandbox = self.server.sandbox
        role = body.get("as", "customer")
        if path == "/api/send":
            reply_to = body.get("reply_to")
            sent = sandbox.send(role, body.get("text"), int(reply_to) if reply_to is not None else None)
            return {"ok": True, "message_id": sent["message_id"]}
        if path == "/api/press":
            sandbox.press(role, int(body["message_id"]), str(body["data"]))
            return {"ok": True}
        if path == "/api/media":
            sent = sandbox.send_media(role, str(body.get("kind")))
            return {"ok": True, "message_id": sent["message_id"]}
        if path == "/api/language":
            sandbox.set_language(body.get("code"))
            return {"ok": True}
        return None

    def _local(self) -> bool:
        """Refuse requests naming another host (DNS rebinding): this page is for this machine only."""
        host = self.headers.get("Host") or ""
        host = host[:host.find("]") + 1] if host.startswith("[") else host.split(":")[0]
        if host in _LOCAL_HOSTS:
            return True
        self._json(403, {"error": "the sandbox answers only http://127.0.0.1 or http://localhost"})
        return False

    def _json(self, status: int, payload: Any) -> None:
        self._reply(status, json.dumps(payload, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox web: %s", format % args)


# ---------------------------------------------------------------------- `shopbot up`
def prepare(settings: Settings, train: bool = True, out: TextIO = sys.stdout) -> None:
    """Load the demo shop into an empty database and, if nothing was ever trained, train the first adapters."""
    from storage.seed import load_demo
    from storage.store import Store

    with Store(settings.paths.database) as store:
        if not store.faq.keys() and (settings.shop.demo_data / "faq.json").is_file():
            load_demo(store, settings.shop.demo_data)
            print(f"Empty database: loaded the demo shop from {settings.shop.demo_data}", file=out, flush=True)
        active = [task for task in TASKS if store.adapters.active(task) is not None]
        tried = any(run.status in ("promoted", "refused") for run in store.runs.all())
    if active:
        return
    if tried or not train:
        why = "no adapter has passed the quality gate yet" if tried else "no trained adapters yet"
        print(f"Note: {why}; the bot serves the base model (owner: /retrain).", file=out, flush=True)
        return
    from shop.report import format_estimate
    from training.args import TrainArgs
    from training.pipeline import retrain

    print("No trained adapters yet: training the first ones from the demo data.\n"
          "This happens once and takes about 4-6 minutes on 2 CPU cores: a shop this small is judged by "
          "5-fold cross-validation over all its labelled data, then trained on all of it…", file=out, flush=True)
    result = retrain(settings, "cli", args=TrainArgs(progress=True))
    print(f"Training {result.get('status')}: " + "; ".join(map(str, result.get("reasons", []))), file=out, flush=True)
    for task, outcome in (result.get("tasks") or {}).items():
        verdict = "promoted" if outcome.get("promoted") else "refused"
        print(f"  {task}: {verdict}, accuracy {format_estimate(outcome.get('metrics') or {}, 'en')}", file=out, flush=True)


def up(settings: Settings, *, port: int = DEFAULT_PORT, train: bool = True, out: TextIO = sys.stdout,
       stop: threading.Event | None = None, runtime_factory: Callable[[Settings], Any] | None = None) -> int:
    """The local sandbox: prepare the database, start the bot on the emulator, serve the page until Ctrl-C/`stop`."""
    prepare(settings, train, out)
    print("Starting the bot (loading the model)…", file=out, flush=True)
    sandbox = Sandbox(settings, runtime_factory)
    try:
        sandbox.start(port)
    except OSError as error:
        print(f"shopbot up: cannot serve on {HOST}:{port} ({error}); pick another port with --port", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - e.g. the base model cannot be built: say why, no traceback
        print(f"shopbot up: the bot could not start: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"\nSandbox ready (no Telegram needed): open {sandbox.url}\n"
          "Chat as a customer, correct the bot as staff, run /status /retrain /report as the owner.\n"
          "Press Ctrl-C to stop.", file=out, flush=True)
    waiter = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # Ctrl-C, and SIGTERM (docker stop, systemd)
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, lambda *_: waiter.set())
    try:
        while not waiter.wait(0.5):
            pass
        print("\nStopping…", file=out, flush=True)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sandbox.stop()
    return 0
