"""The bot's clock for takeovers and business hours: one function, so tests can move time."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current time (aware, UTC); call it as `clock.now()` so a test can replace it."""
    return datetime.now(UTC)
