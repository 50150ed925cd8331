"""The web sandbox's HTTP server: the page (sandbox/web/page.html) and a small JSON API onto the
sandbox users' actions (`Sandbox` in sandbox/web/session.py):

    GET  /                               the page
    GET  /api/state                      the three chats: messages, buttons, pop-up answers
    GET  /api/file/<chat>/<message id>   a photo or document the bot sent (the /report chart)
    POST /api/send      {"as": "customer"|"staff"|"owner", "text": "...", "reply_to": <message id>}
                        (text or a /command; reply_to: the bot message it replies to, e.g. /resume on a mirror)
    POST /api/press     {"as": ..., "message_id": <id>, "data": "<callback_data>"}
    POST /api/media     {"as": "customer", "kind": "sticker"|"photo"|"voice"}
    POST /api/language  {"code": "en"|"zh"|null}     the customer's Telegram language

The server binds 127.0.0.1 only, answers only requests whose Host is this machine, and takes
POSTs only as application/json (which a web page elsewhere cannot send without a CORS preflight
this server never grants), so other sites open in the same browser cannot drive it.
"""

from __future__ import annotations

import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sandbox.emulator import TINY_PNG

if TYPE_CHECKING:
    from sandbox.web.session import Sandbox

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # loopback only, never another address
DEFAULT_PORT = 8080
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


class SandboxError(ValueError):
    """A request the sandbox cannot carry out (answered as HTTP 400 with the reason)."""


class WebServer(ThreadingHTTPServer):
    """The page's server on ``HOST``: ``port`` 0 takes a free one."""

    daemon_threads = True

    def __init__(self, port: int, sandbox: Sandbox) -> None:
        super().__init__((HOST, port), _Handler)
        self.sandbox = sandbox


class _Handler(BaseHTTPRequestHandler):
    server: WebServer
    protocol_version = "HTTP/1.0"
    timeout = 10

    def do_GET(self) -> None:
        if not self._local():
            return
        path = urlsplit(self.path).path
        sandbox = self.server.sandbox
        if path in ("/", "/index.html"):
            page = resources.files("sandbox.web").joinpath("page.html").read_bytes()
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
