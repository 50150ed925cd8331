"""`shopbot serve --shops DIR`: many shops in one process, one Application each, one base model shared.

    DIR/hosting.toml   (optional) [hosting]: polling | webhook, the endpoint, how often to look; [[shops]]
    DIR/<shop>/config.toml   each shop as `shopbot run` reads it: its token variable, database, adapters, staff

Each shop is its own `build_application(settings)`: its own token (`telegram.token_env`), store,
correction memory, FAQ index, adapters (tops), rate limiter, JobQueue and staff chat. What the
shops share is what never differs between them: the frozen base (trunk + tokenizer + pristine top
layers), one per distinct base configuration (`SharedBases`), and the turn local retrains take (one
retrain at a time across the process, in the order asked: `training.backends.local_turn`). A shop's serving model holds only its own tops
(`encoder.new_top()` deep-copies the top layers; the trunk is referenced), so a shop costs about its
adapters, not a base.

The host looks at DIR every `hosting.watch_seconds`: a new shop is started, a removed one stopped
(its webhook deleted), one whose config.toml changed restarted; the others are not touched. A shop
that fails (a bad config, a missing token, an adapter that raises while loading, Telegram refusing
its token) is logged and started again after `hosting.retry_seconds` (doubling, at most an hour)
while the others keep serving. All shops run on one event loop; their models decide in their own
worker threads. (One module of ~300 lines: the shared base, a shop's life and the host that watches
them are read together.)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.error import TelegramError

from bot.app import build_application, running
from bot.context import BotApplication
from bot.services import RuntimeFactory, ShopMetrics, load_runtime_for
from bot.webhook import WebhookRoutes, WebhookServer
from settings import ConfigError, Hosting, Settings, load_hosting, load_shop_settings, read_env_file

if TYPE_CHECKING:
    from serving.runtime import ModelRuntime
    from training.features import Base

log = logging.getLogger(__name__)
MAX_RETRY_S = 3600.0
STARTS_AT_ONCE = 2  # shops loading their models at the same time (the first ones answer sooner)
POLL_TIMEOUT_S = 10  # getUpdates long poll of each shop in polling mode
# The shop a log line belongs to: set in each shop's task, inherited by what it starts (PTB's tasks, jobs, threads).
CURRENT_SHOP: contextvars.ContextVar[str] = contextvars.ContextVar("shop", default="-")


class ShopLogFilter(logging.Filter):
    """Adds `record.shop` (the shop whose task logged it, "-" for the host) for a `%(shop)s` in the format."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.shop = CURRENT_SHOP.get()
        return True


def tag_logs_with_shops() -> None:
    """Prefix every log line of the root handlers with its shop (`shopbot serve`)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(ShopLogFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(shop)s] %(name)s: %(message)s"))


# ---------------------------------------------------------------------- the shared base
def base_key(settings: Settings) -> tuple[Any, ...]:
    """What makes two shops' bases the same object: the model settings that shape the trunk, and its folder."""
    model = settings.model
    folder = settings.paths.model_cache if model.base == "bundled" else model.base
    return (model.base, str(folder), model.top_layers, model.max_length, model.trunk_dtype, model.device,
            model.load_in_4bit, model.runtime)


class SharedBases:
    """The bases of this process, one per `base_key`, held while some shop's serving model uses it."""

    def __init__(self, load: Callable[[Settings], Base] | None = None) -> None:
        from serving.loading import load_base  # the configured runtime's base, safe to share

        self._load: Callable[[Settings], Base] = load or load_base
        self._bases: weakref.WeakValueDictionary[tuple[Any, ...], Base] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()  # shops load in worker threads; a base is loaded once
        self.loads = 0

    def base_for(self, settings: Settings) -> Base:
        """The shared base for these settings, loaded on first use."""
        key = base_key(settings)
        with self._lock:
            base = self._bases.get(key)
            if base is None:
                base = self._load(settings)
                self._bases[key] = base
                self.loads += 1
            return base

    def runtime(self, settings: Settings) -> ModelRuntime:
        """A runtime factory: this shop's runtime (adapters, index, memory) on the shared base."""
        return load_runtime_for(settings, encoder=self.base_for(settings))

    def __len__(self) -> int:
        return len(self._bases)


# ---------------------------------------------------------------------- one shop
def fingerprint(path: Path) -> str | None:
    """The config file's content hash (None when it cannot be read): a change restarts the shop."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


@dataclass
class HostedShop:
    """One shop under the host: where its config is, how it is doing, and its Application while it runs."""

    name: str
    config: Path
    fingerprint: str | None
    metrics: ShopMetrics = field(default_factory=ShopMetrics)
    state: str = "starting"  # starting | running | failed | stopped
    problem: str | None = None
    failures: int = 0
    retry_at: float = 0.0
    application: BotApplication | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    removed: bool = False
    bot_id: str = ""  # the token's bot id, once its settings are read (two shops must not be one bot)
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class HostOptions:
    """How the host builds each shop's Application (tests: a fake runtime, no flood pacing, short polls)."""

    runtime_factory: RuntimeFactory | None = None  # default: SharedBases().runtime
    flood_limits: bool = True
    answer_timeout_s: float = 300.0
    poll_timeout_s: int = POLL_TIMEOUT_S


class ShopHost:
    """Runs the shops of DIR until `stop` is set; picks up shops added, removed or changed meanwhile."""

    def __init__(self, folder: Path, env: Mapping[str, str] = os.environ, options: HostOptions | None = None) -> None:
        self.folder = Path(folder)
        self.env = env
        self.options = options or HostOptions()
        self.bases = SharedBases()
        self.runtime_factory = self.options.runtime_factory or self.bases.runtime
        self.hosting: Hosting = load_hosting(self.folder)  # a bad hosting file stops `serve` at once
        self.routes = WebhookRoutes()
        self.shops: dict[str, HostedShop] = {}
        self._starting: asyncio.Semaphore | None = None

    @property
    def webhook(self) -> bool:
        """Whether the shops receive updates on the one webhook endpoint (else each polls)."""
        return self.hosting.settings.mode == "webhook"

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then stop every shop (and the endpoint)."""
        self._starting = asyncio.Semaphore(STARTS_AT_ONCE)
        hosting = self.hosting.settings
        server = WebhookServer(self.routes, hosting.webhook_url, hosting.webhook_listen,
                               hosting.webhook_port) if self.webhook else None
        if server is not None:
            await server.start()
            log.info("webhook endpoint on %s:%d for %s/<shop>", hosting.webhook_listen, hosting.webhook_port,
                     hosting.webhook_url.rstrip("/"))
        try:
            while not stop.is_set():
                await self.look()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.hosting.settings.watch_seconds)
        finally:
            await asyncio.gather(*(self._stop(shop) for shop in list(self.shops.values())))
            if server is not None:
                await server.stop()

    async def look(self) -> None:
        """Bring the running shops in line with DIR: start new ones, stop removed ones, restart changed or failed."""
        try:
            hosting = load_hosting(self.folder)
        except ConfigError as error:
            log.error("hosting: %s; the shops keep running as they are", error)
            return
        if hosting.settings != self.hosting.settings:
            log.warning("hosting: [hosting] changed; restart `shopbot serve` to apply it (the shops list applies now)")
        self.hosting = Hosting(self.hosting.settings, hosting.shops)
        for name in [name for name in self.shops if name not in hosting.shops]:
            gone = self.shops.pop(name)
            gone.removed = True
            log.warning("shop %s removed from %s: stopping it", name, self.folder)
            await self._stop(gone)
        now = time.monotonic()
        for name, config in hosting.shops.items():
            shop, seen = self.shops.get(name), fingerprint(config)
            if shop is None:
                self._start(HostedShop(name, config, seen))
            elif shop.config != config or shop.fingerprint != seen:
                log.warning("shop %s: its config changed: restarting it", name)
                await self._stop(shop)
                self._start(replace(shop, config=config, fingerprint=seen, failures=0, stop=asyncio.Event()))
            elif shop.state == "failed" and now >= shop.retry_at:
                log.info("shop %s: trying again (%d failures so far)", name, shop.failures)
                self._start(replace(shop, stop=asyncio.Event()))

    def states(self) -> dict[str, str]:
        """{shop: starting | running | failed} (for logs and tests)."""
        return {name: shop.state for name, shop in self.shops.items()}

    # ------------------------------------------------------------------ one shop's life
    def _start(self, shop: HostedShop) -> None:
        if shop.state == "failed" or shop.state == "stopped":
            shop.metrics.restarts += 1
        shop.state, shop.problem = "starting", None
        self.shops[shop.name] = shop
        shop.task = asyncio.get_running_loop().create_task(self._serve(shop), name=f"shop-{shop.name}")

    async def _stop(self, shop: HostedShop) -> None:
        shop.stop.set()
        if shop.task is not None:
            await asyncio.gather(shop.task, return_exceptions=True)

    async def _serve(self, shop: HostedShop) -> None:
        """One shop from start to stop; a failure is recorded for a later retry, never raised to the others."""
        CURRENT_SHOP.set(shop.name)  # this task's context: what it starts logs as this shop
        try:
            settings = load_shop_settings(shop.config, self.hosting.settings.model_cache, self._environment())
            shop.bot_id = (settings.token or "").partition(":")[0]
            if settings.token and (twin := next((other.name for other in self.shops.values() if other is not shop and other.bot_id
                             == shop.bot_id and other.state in ("starting", "running")), None)):
                raise ConfigError(f"{settings.telegram.token_env} is the bot token of shop {twin} too: one bot per shop")
            if settings.telegram.mode != "polling":
                log.warning("shop %s: telegram.mode is ignored under `shopbot serve` (hosting.mode = %s)", shop.name,
                            self.hosting.settings.mode)
            application = build_application(settings, runtime_factory=self.runtime_factory, metrics=shop.metrics,
                                             flood_limits=self.options.flood_limits,
                                             answer_timeout_s=self.options.answer_timeout_s)
            async with contextlib.AsyncExitStack() as stack:
                assert self._starting is not None
                async with self._starting:
                    await stack.enter_async_context(running(application, timeout=self.options.poll_timeout_s,
                                                            receive=not self.webhook))
                    if self.webhook:
                        stack.callback(self.routes.remove, shop.name)
                        secret = self.routes.add(shop.name, application)
                        await application.bot.set_webhook(self.hosting.settings.webhook_of(shop.name),
                                                          secret_token=secret, allowed_updates=Update.ALL_TYPES)
                shop.application, shop.state, shop.failures = application, "running", 0
                log.info("shop %s: serving %s", shop.name, application.bot_data.services.runtime.serving.version
                         if application.bot_data.services else "?")
                await shop.stop.wait()
                if shop.removed and self.webhook:
                    await self._delete_webhook(shop, application)
            shop.state = "stopped"
        except asyncio.CancelledError:
            shop.state = "stopped"
            raise
        except Exception as error:  # one shop's failure is logged and retried, never the others'
            shop.failures += 1
            delay = min(self.hosting.settings.retry_seconds * 2 ** (shop.failures - 1), MAX_RETRY_S)
            shop.state, shop.problem = "failed", f"{type(error).__name__}: {error}"
            shop.retry_at = time.monotonic() + delay
            log.exception("shop %s failed (%s); the other shops keep serving; trying again in %.1f s", shop.name,
                          shop.problem, delay)
        finally:
            shop.application = None

    def _environment(self) -> Mapping[str, str]:
        """The process environment, plus hosting.env_file read now (a shop added later brings its token there)."""
        name = self.hosting.settings.env_file
        if not name:
            return self.env
        path = self.folder / name
        if path.stat().st_mode & 0o077:
            log.warning("hosting: %s is readable by other users; it holds bot tokens (chmod 600 it)", path)
        return {**self.env, **read_env_file(path)}

    async def _delete_webhook(self, shop: HostedShop, application: BotApplication) -> None:
        self.routes.remove(shop.name)
        try:
            await application.bot.delete_webhook()
        except TelegramError as error:
            log.warning("shop %s: could not delete its webhook: %s", shop.name, error)


async def serve(folder: Path, stop: asyncio.Event, env: Mapping[str, str] = os.environ,
                options: HostOptions | None = None) -> None:
    """Run every shop of `folder` until `stop` is set (what `shopbot serve --shops DIR` runs)."""
    await ShopHost(folder, env, options).run(stop)
