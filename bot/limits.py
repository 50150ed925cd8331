"""Telegram's limits, written once, and the UTF-16 arithmetic Telegram counts text lengths in.

Telegram measures a message's visible text (after HTML parsing) in UTF-16 code units, so an
emoji such as 🧋 counts 2 and a Chinese character 1. Standard library only: the emulator uses it.
"""

from __future__ import annotations

MAX_TEXT = 4096  # UTF-16 units of one message's visible text
MAX_CAPTION = 1024  # UTF-16 units of a photo's or document's caption
MAX_CALLBACK_DATA = 64  # bytes (UTF-8) of one button's callback_data
MAX_CALLBACK_ANSWER = 200  # UTF-16 units of an answerCallbackQuery pop-up
CALLBACK_ANSWER_S = 15.0  # answerCallbackQuery later than this after the press is refused
# Flood limits (messages sent, not edits): a short burst, then about 1/s per chat and 20/min per group.
CHAT_BURST, CHAT_INTERVAL_S = 3, 1.0
GROUP_BURST, GROUP_INTERVAL_S = 20, 3.0


def utf16_len(text: str) -> int:
    """The length of `text` as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def utf16_cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 units, with "…" when cut (never splits a character)."""
    if utf16_len(text) <= limit:
        return text
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit - 1:  # keep one unit for the ellipsis
            return text[:index] + "…"
    return text
