"""Telegram's refusals, as the emulator answers them: the error type, flood buckets, the length
and parse-mode checks and the callback_data limit (status codes and descriptions are Telegram's)."""

from __future__ import annotations

import html
import math
import re
from typing import Any

from bot.limits import MAX_CALLBACK_DATA, MAX_CAPTION, MAX_TEXT, utf16_len

_HTML_TAGS = frozenset("b strong i em u ins s strike del span tg-spoiler a code pre blockquote "
                       "tg-emoji".split())
_HTML_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z-]*)[^<>]*>")
NOT_MODIFIED = ("message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message")


class BotAPIError(Exception):
    """An error answered as ``{"ok": false, ...}``; PTB maps the HTTP status to its exception."""

    def __init__(self, status: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters

    def payload(self) -> dict[str, Any]:
        """Return the JSON body Telegram would send."""
        body = {"ok": False, "error_code": self.status, "description": self.description}
        return body | ({"parameters": self.parameters} if self.parameters else {})


def bad_request(reason: str) -> BotAPIError:
    """Telegram's 400 "Bad Request: <reason>"."""
    return BotAPIError(400, f"Bad Request: {reason}")


class FloodBucket:
    """A burst of ``burst`` messages, then one per ``interval`` s (GCRA); ``grace`` s of clock jitter allowed."""

    def __init__(self, burst: int, interval: float, grace: float) -> None:
        self.tolerance, self.interval, self.due = (burst - 1) * interval + grace, interval, 0.0

    def wait(self, now: float) -> int:
        """0 when a message may go at ``now``, else the whole seconds to wait (at least 1)."""
        early = self.due - self.tolerance - now
        return max(1, math.ceil(early)) if early > 0 else 0

    def take(self, now: float) -> None:
        """Count one message sent at ``now``."""
        self.due = max(self.due, now) + self.interval


def flood_check(buckets: list[FloodBucket], now: float) -> None:
    """Count one message sent at ``now`` in every bucket, or refuse it (429) when one is over its limit."""
    waits = [bucket.wait(now) for bucket in buckets]
    if any(waits):
        retry_after = max(waits)
        raise BotAPIError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
    for bucket in buckets:
        bucket.take(now)


def checked_text(p: dict, too_long: str) -> str:
    """The visible text of a send or edit; refused when empty or over 4,096 UTF-16 units (``too_long``)."""
    text = visible_text(str(p.get("text", "")), p.get("parse_mode"))
    if not text.strip():
        raise bad_request("message text is empty")
    if utf16_len(text) > MAX_TEXT:
        raise bad_request(too_long)
    return text


def checked_caption(p: dict) -> dict[str, Any]:
    """``caption`` and ``raw_text`` fields for a call's caption (none without one); over 1,024 units: refused."""
    if p.get("caption") is None:
        return {}
    caption = visible_text(str(p["caption"]), p.get("parse_mode"))
    if utf16_len(caption) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    return {"caption": caption, "raw_text": p["caption"]}


def checked_markup(p: dict) -> dict | None:
    """The call's reply_markup, refused when a button's callback_data is over the limit."""
    markup = p.get("reply_markup")
    if any(len(b.get("callback_data", "").encode()) > MAX_CALLBACK_DATA
           for row in (markup or {}).get("inline_keyboard", []) for b in row):
        raise bad_request("BUTTON_DATA_INVALID")
    return markup


def visible_text(text: str, parse_mode: str | None) -> str:
    """Validate HTML like Telegram and return the text users see (other modes: unchanged)."""
    if (parse_mode or "").lower() != "html":
        return text
    open_tags: list[str] = []
    for tag in _HTML_TAG.finditer(text):
        if tag[2].lower() not in _HTML_TAGS:
            raise bad_request(f'can\'t parse entities: Unsupported start tag "{tag[2]}" at byte '
                              f"offset {tag.start()}")
        if not tag[1]:
            open_tags.append(tag[2].lower())
        elif not open_tags or open_tags.pop() != tag[2].lower():
            raise bad_request(f"can't parse entities: Unexpected end tag at byte offset "
                              f"{tag.start()}")
    if open_tags:
        raise bad_request("can't parse entities: Can't find end tag corresponding to start tag "
                          f'"{open_tags[-1]}"')
    visible = _HTML_TAG.sub("", text)
    if "<" in visible:
        raise bad_request('can\'t parse entities: Unsupported start tag "" at byte offset '
                          f"{text.index('<')}")
    return html.unescape(visible)
