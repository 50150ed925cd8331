"""The emulator's HTTP plumbing: a loopback server taking ``/bot<token>/<method>`` calls, their
parameters decoded (query string, urlencoded, multipart or JSON) and handed to one callable."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sandbox.emulator.refusals import bad_request

# Answers a call: (token, method, decoded params) -> (HTTP status, JSON payload).
CallHandler = Callable[[str, str, dict], tuple[int, dict]]
_TEXT_PARAMS = frozenset("text caption parse_mode callback_query_id url action photo document "
                         "language_code title description emoji secret_token".split())


class Server(ThreadingHTTPServer):
    """The Bot API's HTTP server: one thread per call, all joined on close."""

    daemon_threads = False
    block_on_close = True  # server_close() joins request threads, so stop() leaves none behind
    request_queue_size = 128  # listen backlog: the default 5 resets bursts of concurrent calls

    def __init__(self, address: tuple[str, int], handle_call: CallHandler, keep_alive: bool = False) -> None:
        super().__init__(address, _KeepAliveHandler if keep_alive else _RequestHandler)
        self.handle_call = handle_call
        self.keep_alive = keep_alive
        self._open: set[socket.socket] = set()  # keep-alive connections, closed by server_close
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Hang up idle keep-alive connections first, so that joining their threads does not wait for them."""
        if self.keep_alive:  # (one call per connection: every call in flight finishes, as before)
            with self._open_lock:
                for request in self._open:
                    with contextlib.suppress(OSError):  # already gone
                        request.shutdown(socket.SHUT_RDWR)
        super().server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # bots hang up on long polls
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    server: Server
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
                status, payload = 400, bad_request(f"can't parse request: {error}").payload()
            else:
                status, payload = self.server.handle_call(api_call[1], api_call[2], params)
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


class _KeepAliveHandler(_RequestHandler):
    """HTTP/1.1 with keep-alive, as Telegram's servers: a client reuses its connections (idle ones close after 5 s)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: Nagle + delayed ACK would add 40 ms to each call


def _decode_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """Decode the query string and an urlencoded, multipart or JSON body.

    JSON values (ints, bools, ``reply_markup``) become Python objects, free text (``text``,
    ``caption``...) stays ``str``, uploaded files become ``bytes``, ``attach://<part>`` is resolved.
    """
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
