"""One webhook endpoint for every shop of `shopbot serve`: a Starlette app on uvicorn, POST <path>/<shop>.

Each shop's setWebhook names its own URL and a secret of its own; a POST is routed by the shop's
path and accepted only with that shop's `X-Telegram-Bot-Api-Secret-Token` (403 otherwise, 404 for
a shop not hosted here), then put on that shop's `application.update_queue`: the Application
processes it as if its own updater had fetched it. Shops are added and removed while it serves.
TLS is a reverse proxy's job, as for `shopbot run`'s webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import Update

from bot.context import BotApplication

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1 << 20  # an update is a few kB; anything near this is not from Telegram


class WebhookRoutes:
    """{shop: (secret, application)}: where the endpoint delivers; changed while it serves."""

    def __init__(self) -> None:
        self._routes: dict[str, tuple[str, BotApplication]] = {}

    def add(self, shop: str, application: BotApplication) -> str:
        """Route `shop`'s path to `application` under a new random secret; returns the secret for setWebhook."""
        secret = secrets.token_urlsafe(32)
        self._routes[shop] = (secret, application)
        return secret

    def remove(self, shop: str) -> None:
        """Stop routing `shop` (its posts get 404 from now on)."""
        self._routes.pop(shop, None)

    def get(self, shop: str) -> tuple[str, BotApplication] | None:
        """The secret and application of `shop`, if it is hosted here."""
        return self._routes.get(shop)


def webhook_app(routes: WebhookRoutes, base_url: str) -> Starlette:
    """The ASGI app: POST <base_url's path>/<shop> with the shop's secret -> that shop's update queue."""

    async def receive(request: Request) -> Response:
        route = routes.get(request.path_params["shop"])
        if route is None:
            return Response(status_code=404)
        secret, application = route
        if not secrets.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), secret.encode()):
            log.warning("webhook post for shop %s without its secret token: refused", request.path_params["shop"])
            return Response(status_code=403)
        body = await request.body()
        if len(body) > MAX_BODY:
            return Response(status_code=413)
        try:
            update = Update.de_json(json.loads(body), application.bot)
        except (ValueError, TypeError, KeyError):
            return Response(status_code=400)
        await application.update_queue.put(update)
        return Response()

    prefix = urlsplit(base_url).path.rstrip("/")
    return Starlette(routes=[Route(prefix + "/{shop}", receive, methods=["POST"])])


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `shopbot serve` stops every shop first, then the server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebhookServer:
    """The endpoint on `listen`:`port`, served in this event loop."""

    def __init__(self, routes: WebhookRoutes, base_url: str, listen: str, port: int) -> None:
        config = uvicorn.Config(webhook_app(routes, base_url), host=listen, port=port, lifespan="off",
                                access_log=False, log_level="warning")
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen; OSError when the address cannot be bound."""
        self._task = asyncio.get_running_loop().create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                with contextlib.suppress(SystemExit):  # uvicorn's way of saying it could not bind
                    self._task.result()
                raise OSError(f"the webhook server could not listen on {self._server.config.host}:"
                              f"{self._server.config.port}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop listening and finish the requests in flight."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(SystemExit):
                await self._task
