"""UTC timestamps stored as ISO-8601 text that sorts chronologically."""

from __future__ import annotations

from datetime import UTC, datetime


def to_timestamp(moment: datetime | str) -> str:
    """Format an aware datetime (or ISO string) as the stored UTC text form."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def utc_now() -> str:
    """The current time in the stored UTC text form."""
    return to_timestamp(datetime.now(UTC))
