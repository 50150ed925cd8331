"""Typed callback context (handlers reach the services as `context.services`) and the application typed with it."""

from __future__ import annotations

from typing import Any

from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot, JobQueue

from bot.services import Services

__all__ = ["BotApplication", "BotContext", "BotData", "Services", "context_types"]


class BotData:
    """Application-wide data: the services, once post_init has opened them."""

    def __init__(self) -> None:
        self.services: Services | None = None
        self.answer_timeout_s: float = 300.0  # how long "✍ write the answer" waits for the text
        self.last_error_notice: float = float("-inf")  # time.monotonic() of the last staff-chat error notice


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], BotData]):
    """CallbackContext with typed access to the services."""

    @property
    def services(self) -> Services:
        """Settings, store and model runtime (RuntimeError before post_init or after post_shutdown)."""
        services = self.bot_data.services
        if services is None:
            raise RuntimeError("bot services are not open: post_init has not run (or post_shutdown has)")
        return services


# The bot's type argument is the rate limiter's (AIORateLimiter: int); PTB's builder types the job queue with
# the default context, though its jobs get a BotContext: Any for both.
BotApplication = Application[ExtBot[Any], BotContext, dict[Any, Any], dict[Any, Any], BotData, JobQueue[Any]]


def context_types() -> ContextTypes[BotContext, dict[Any, Any], dict[Any, Any], BotData]:
    """The ContextTypes for build_application."""
    return ContextTypes(context=BotContext, bot_data=BotData)
