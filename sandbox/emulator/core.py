"""``BotAPIEmulator``: the parts put together, started and stopped; every call is logged, delayed or
failed as a test injected (``fail_next``/``delay_next``), then answered by its ``_api_<Name>`` method."""

from __future__ import annotations

import threading
import time
from typing import Self

from sandbox.emulator.methods import BotAPIMethods
from sandbox.emulator.observe import Observation
from sandbox.emulator.refusals import BotAPIError, bad_request
from sandbox.emulator.transport import Server
from sandbox.emulator.updates import Updates
from sandbox.emulator.users import UserSide


class BotAPIEmulator(UserSide, Observation, BotAPIMethods, Updates):
    """Fake Telegram Bot API server: inject updates, record and answer the bot's calls."""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Bind the HTTP server and serve it from a daemon thread."""
        self._stopping.clear()
        self._server = Server((self.host, self.port), self._handle_call, self.keep_alive)
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

    def delay_next(self, method: str, seconds: float, times: int = 1, effect_first: bool = False) -> None:
        """Sleep before answering the next ``times`` calls of ``method``; they still take effect: after the sleep,
        or (``effect_first``) at once, so that others see the result while the caller still waits for it."""
        with self._cond:
            self._delays.setdefault(method.lower(), []).extend([(seconds, effect_first)] * times)

    # ------------------------------------------------------------------ one call, from the HTTP server
    def _handle_call(self, token: str, method: str, params: dict) -> tuple[int, dict]:
        name, handler = self._api.get(method.lower(), (method, None))
        with self._cond:
            self._requests.append((name, params))
            self._cond.notify_all()
            arrived = time.monotonic()
            delay, effect_first = (self._delays.get(method.lower()) or [(0.0, False)]).pop(0)
            failures = self._failures.get(method.lower()) or []
            index = next((i for i, (chat, _) in enumerate(failures)
                          if chat is None or str(chat) == str(params.get("chat_id"))), None)
            failure = failures.pop(index)[1] if index is not None else None
        if not effect_first:
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
            if effect_first:
                self._stopping.wait(delay)
            return 200, {"ok": True, "result": result}
        except BotAPIError as error:
            return error.status, error.payload()
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            return 400, bad_request(f"invalid parameters ({error!r})").payload()
