"""`build_application(settings)`: the only place where the bot is wired together."""

from __future__ import annotations

import asyncio
import logging
import secrets
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, nullcontext
from typing import Any
from urllib.parse import urlsplit

from aiolimiter import AsyncLimiter
from telegram import BotCommand, BotCommandScopeChat, BotCommandScopeDefault, Update
from telegram.error import BadRequest, NetworkError, TelegramError, TimedOut
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot import jobs
from bot.context import BotApplication, context_types
from bot.handlers import (
    conversation,
    customer,
    errors,
    faq,
    faq_edit,
    owner,
    review,
    staff,
    staff_answer,
    suggestions,
    takeover,
)
from bot.limits import CHAT_BURST, CHAT_INTERVAL_S, GROUP_BURST, GROUP_INTERVAL_S
from bot.services import RuntimeFactory, ShopMetrics, open_services
from bot.updates import ChatOrderedUpdateProcessor
from settings import Settings
from shop.texts.commands import COMMANDS

log = logging.getLogger(__name__)

CUSTOMER_COMMANDS = ("start", "help", "forget", "optout", "optin")
OWNER_COMMANDS = ("status", "retrain", "rollback", "report")
FAQ_COMMANDS = ("faq",)  # owners', and staff's too with roles.faq_editors = "staff"
MAX_CONCURRENT_UPDATES = 64
ApiResult = bool | dict[str, Any] | list[dict[str, Any]]  # what a Bot API request returns (PTB's JSONDict is private)


class RetryingRateLimiter(AIORateLimiter):
    """AIORateLimiter (flood limits, retries on RetryAfter) that also paces each chat and retries plain
    network failures.

    AIORateLimiter paces 30 requests/s overall and 20/min per group; messages sent to one chat are
    paced here too (`chat_burst` at once, then 1/s), so a busy chat is slowed down on its own instead
    of earning a 429, whose retry_after AIORateLimiter applies to every chat. Only errors where
    Telegram cannot have acted are retried: connection failures and 5xx (`NetworkError`), never
    `BadRequest` or `TimedOut` (a timed-out send may have been delivered).
    """

    def __init__(self, *args: Any, network_retries: int = 3, backoff_s: float = 0.5, chat_burst: int = CHAT_BURST,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.network_retries = network_retries
        self.backoff_s = backoff_s
        self.chat_burst = chat_burst
        self._chat_limiters: dict[str, AsyncLimiter] = {}

    def _chat_limiter(self, endpoint: str, data: dict[str, Any]) -> AsyncLimiter | None:
        chat_id = data.get("chat_id")
        if not self.chat_burst or chat_id is None or not endpoint.startswith("send"):
            return None
        if len(self._chat_limiters) > 1024:  # forget idle chats
            self._chat_limiters = {key: limiter for key, limiter in self._chat_limiters.items()
                                   if not limiter.has_capacity(limiter.max_rate)}
        return self._chat_limiters.setdefault(str(chat_id), AsyncLimiter(self.chat_burst,
                                                                         self.chat_burst * CHAT_INTERVAL_S))

    async def process_request(self, callback: Callable[..., Coroutine[Any, Any, ApiResult]], args: Any,
                              kwargs: dict[str, Any], endpoint: str, data: dict[str, Any],
                              rate_limit_args: int | None) -> ApiResult:
        """Rate-limit one request; retry it after RetryAfter or a network failure."""
        for attempt in range(self.network_retries + 1):
            try:
                async with self._chat_limiter(endpoint, data) or nullcontext():  # each attempt is a message
                    return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)
            except (BadRequest, TimedOut):
                raise
            except NetworkError as error:
                if attempt == self.network_retries or endpoint == "getUpdates":
                    raise
                log.info("%s failed (%s); retry %d of %d", endpoint, error, attempt + 1, self.network_retries)
                await asyncio.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")


def _rate_limiter(flood_limits: bool) -> AIORateLimiter:
    if flood_limits:  # Telegram's limits: 30 messages/s overall, 20/min per group, about 1/s per chat
        return RetryingRateLimiter(group_max_rate=GROUP_BURST, group_time_period=GROUP_BURST * GROUP_INTERVAL_S,
                                   max_retries=3)
    return RetryingRateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=3, chat_burst=0)


def _commands(names: tuple[str, ...], language: str) -> list[BotCommand]:
    return [BotCommand(name, COMMANDS[language][name]) for name in names]


async def _set_commands(application: BotApplication, settings: Settings) -> None:
    """The command menus: customers everywhere, owner commands in owners' chats (/faq in staff's too when
    roles.faq_editors = "staff"), /cancel and /resume in the staff chat."""
    bot = application.bot
    menus: list[tuple[list[BotCommand], Any, str | None]] = []
    for language in ("en", "zh"):
        menus.append((_commands(CUSTOMER_COMMANDS, language), BotCommandScopeDefault(),
                      None if language == "en" else language))
    owner_language = settings.default_language
    for owner_id in settings.roles.owner_ids:
        menus.append((_commands(CUSTOMER_COMMANDS + OWNER_COMMANDS + FAQ_COMMANDS, owner_language),
                      BotCommandScopeChat(owner_id), None))
    if settings.roles.faq_editors == "staff":
        for staff_id in sorted(set(settings.roles.staff_ids) - set(settings.roles.owner_ids)):
            menus.append((_commands(CUSTOMER_COMMANDS + FAQ_COMMANDS, owner_language), BotCommandScopeChat(staff_id),
                          None))
    if settings.roles.staff_chat_id:
        menus.append((_commands(("cancel", "review", "resume"), settings.default_language),
                      BotCommandScopeChat(settings.roles.staff_chat_id), None))
    for commands, scope, language_code in menus:
        try:
            await bot.set_my_commands(commands, scope=scope, language_code=language_code)
        except TelegramError as error:  # e.g. an owner who never opened the bot: not fatal
            log.warning("could not set the command menu for %s: %s", scope, error)


def _add_handlers(application: BotApplication, settings: Settings, answer_timeout_s: float) -> None:
    private = filters.ChatType.PRIVATE
    new_message = filters.UpdateType.MESSAGE  # an edited "/retrain" must not run it again
    application.add_handler(CommandHandler("start", customer.start, filters=private & new_message))
    application.add_handler(CommandHandler("help", customer.help_command, filters=private & new_message))
    application.add_handler(CommandHandler("forget", customer.forget, filters=private & new_message))
    application.add_handler(CommandHandler("optout", customer.opt_out, filters=private & new_message))
    application.add_handler(CommandHandler("optin", customer.opt_in, filters=private & new_message))
    application.add_handler(ChatMemberHandler(customer.on_bot_status, ChatMemberHandler.MY_CHAT_MEMBER))
    for name in OWNER_COMMANDS:
        application.add_handler(CommandHandler(name, getattr(owner, name), filters=new_message))
    application.add_handler(CommandHandler("faq", faq.command, filters=new_message))
    if settings.roles.staff_chat_id:  # /review: the active-learning queue, in the staff chat only
        application.add_handler(CommandHandler("review", review.command,
                                               filters=filters.Chat(chat_id=settings.roles.staff_chat_id) & new_message))
    with warnings.catch_warnings():  # per_message=False with a CallbackQueryHandler entry is intended
        warnings.simplefilter("ignore", PTBUserWarning)
        application.add_handler(faq_edit.conversation(answer_timeout_s))  # before customer.on_text: the typed texts
    # Before the staff buttons, which take (and refuse) every other press.
    application.add_handler(faq.button_handler())  # pattern ^fq1:
    application.add_handler(suggestions.button_handler())  # pattern ^sg1:
    application.add_handler(conversation.button_handler())  # pattern ^c1: (customers' own buttons)
    application.add_handler(takeover.button_handler())  # pattern ^t1: (▶ resume the bot)
    staff_chat_id = settings.roles.staff_chat_id
    if staff_chat_id:
        with warnings.catch_warnings():  # per_message=False with a CallbackQueryHandler entry is intended
            warnings.simplefilter("ignore", PTBUserWarning)
            application.add_handler(staff_answer.conversation(staff_chat_id, answer_timeout_s))
        application.add_handler(CallbackQueryHandler(staff.on_button))
        in_staff_chat = filters.Chat(chat_id=staff_chat_id)
        application.add_handler(CommandHandler("resume", takeover.resume_command, filters=in_staff_chat & new_message))
        application.add_handler(MessageHandler(
            in_staff_chat & filters.REPLY & filters.TEXT & ~filters.COMMAND & new_message, staff.on_staff_reply))
    else:
        application.add_handler(CallbackQueryHandler(staff.on_button))  # still refuses stray presses clearly
    application.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND & new_message, customer.on_text))
    application.add_handler(MessageHandler(private & filters.COMMAND & new_message, customer.help_command))
    application.add_handler(MessageHandler(private & ~filters.TEXT & new_message, customer.on_other))
    application.add_error_handler(errors.on_error)


def build_application(settings: Settings, *, runtime_factory: RuntimeFactory | None = None,
                      answer_timeout_s: float = 300.0, flood_limits: bool = True, metrics: ShopMetrics | None = None) -> BotApplication:
    """The complete bot: handlers, error handler, rate limiter, services opened in post_init.

    It talks to the Bot API server of `settings.telegram` (api_url, file_url: Telegram's, a
    self-hosted one, or the emulator in tests and in `shopbot chat`); runtime_factory(settings)
    replaces the model loader (tests; `shopbot serve`: the shop's runtime on the shared base);
    flood_limits=False drops the pacing to Telegram's flood limits (for an emulator started with
    flood_limits=False) but keeps the retries. `shopbot serve` passes each shop its metrics (kept
    across the shop's restarts).
    """
    if not settings.token:
        raise ValueError(f"no bot token: set {settings.telegram.token_env} (or use `shopbot chat` to try the bot "
                         f"without Telegram)")

    async def post_init(application: BotApplication) -> None:
        bot_data = application.bot_data
        bot_data.answer_timeout_s = answer_timeout_s
        bot_data.services = await open_services(settings, runtime_factory, metrics=metrics)
        if not settings.roles.staff_chat_id:
            log.warning("roles.staff_chat_id is 0: decisions are not mirrored and handoffs reach nobody")
        await _set_commands(application, settings)
        jobs.schedule_jobs(application, bot_data.services)  # weekly retrain (+ catch-up), retention, adapter watch
        log.info("bot ready: serving %s", bot_data.services.runtime.serving.version)

    async def post_shutdown(application: BotApplication) -> None:
        bot_data = application.bot_data
        services, bot_data.services = bot_data.services, None
        if services is not None:
            if services.retrain_task is not None:
                services.retrain_task.cancel()  # the training child is a daemon process
            await services.aclose()

    builder = (Application.builder()
               .token(settings.token)
               .base_url(settings.telegram.api_url)
               .base_file_url(settings.telegram.file_url)
               .context_types(context_types())
               .rate_limiter(_rate_limiter(flood_limits))
               .concurrent_updates(ChatOrderedUpdateProcessor(MAX_CONCURRENT_UPDATES))
               .post_init(post_init)
               .post_shutdown(post_shutdown))
    application = builder.build()
    _add_handlers(application, settings, answer_timeout_s)
    return application


def webhook_options(settings: Settings) -> dict[str, Any] | None:
    """The webhook server's arguments (run_webhook / Updater.start_webhook); None in polling mode.

    The secret token (checked on every request) is $TELEGRAM_WEBHOOK_SECRET, else a new random
    one: setWebhook tells Telegram the new one at every start.
    """
    telegram = settings.telegram
    if telegram.mode != "webhook":
        return None
    return {"listen": telegram.webhook_listen, "port": telegram.webhook_port,
            "url_path": urlsplit(telegram.webhook_url).path.lstrip("/"), "webhook_url": telegram.webhook_url,
            "secret_token": settings.webhook_secret or secrets.token_urlsafe(32),
            "allowed_updates": Update.ALL_TYPES}


@asynccontextmanager
async def running(application: BotApplication, poll_interval: float = 0.0, timeout: int = 1,  # noqa: ASYNC109 - getUpdates' long poll, as run_polling's
                  webhook: dict[str, Any] | None = None, receive: bool = True) -> AsyncIterator[BotApplication]:
    """Run the application inside an existing event loop until exit, as run_polling (or, given
    `webhook_options(settings)`, run_webhook) would; receive=False starts no updater (`shopbot serve`'s
    one webhook server puts each shop's updates on its update_queue)."""
    updater = application.updater
    if updater is None:
        raise ValueError("the application has no updater: build it with build_application")
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        await application.start()
        try:
            if receive and webhook is not None:
                await updater.start_webhook(**webhook)
            elif receive:
                await updater.start_polling(poll_interval=poll_interval, timeout=timeout, allowed_updates=Update.ALL_TYPES)
            try:
                yield application
            finally:
                if updater.running:
                    await updater.stop()
        finally:
            await application.stop()
    finally:
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
