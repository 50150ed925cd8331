"""How numbers, quotes and times are written in what people read: one rule each, for every audience."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo


def number(value: object) -> float | None:
    """The value as a finite float, or None if missing, NaN, infinite or not a number (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def percent(value: float | None, digits: int = 0) -> str:
    """0.914 as "91%" (or "91.4%" with digits=1); "–" for a missing or NaN value."""
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}%}"


def shorten(text: str, limit: int = 60) -> str:
    """`text` on one line (runs of whitespace become one space), cut to `limit` characters with "…"."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """"2024-05-06 14:30": a moment in the shop's time zone, to the minute."""
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"
