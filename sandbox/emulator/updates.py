"""How queued updates reach the bot: ``getUpdates`` long polls, or, after ``setWebhook``, a POST to
the webhook per update (with its ``secret_token`` header), one at a time and retried until answered
2xx, as Telegram does; the URL must be on 127.0.0.1, ::1 or localhost. ``deleteWebhook`` returns to
polling; ``deliveries()``/``wait_for_delivery`` show the attempts.
"""

from __future__ import annotations

import copy
import http.client
import ipaddress
import json
import ssl
import time
from urllib.parse import urlsplit

from sandbox.emulator.refusals import BotAPIError, bad_request
from sandbox.emulator.state import EmulatorState
from settings import WEBHOOK_SECRET_PATTERN


class Updates(EmulatorState):
    """getUpdates, the webhook methods and the thread that delivers to a webhook."""

    long_poll_cap: float = 1.0  # getUpdates blocks at most this long, so bot shutdown stays quick
    webhook_retry_s: float = 0.2  # pause before posting an update again after a failed delivery

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

    def _api_setWebhook(self, p: dict) -> bool:
        url, secret = str(p.get("url") or ""), str(p.get("secret_token") or "")
        if url and not _is_loopback_url(url):
            raise bad_request("bad webhook: this emulator delivers only to http(s) URLs on 127.0.0.1, ::1 or "
                              "localhost")
        if secret and not WEBHOOK_SECRET_PATTERN.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
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
    host = parts.hostname or ""  # set: setWebhook takes only loopback URLs
    if parts.scheme == "https":  # a loopback server's self-signed certificate
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, parts.port, timeout=5, context=ssl._create_unverified_context())
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=5)
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
