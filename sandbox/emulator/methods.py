"""The Bot API methods the bot calls: sending, editing and deleting messages, answering button
presses, commands and chats; each ``_api_<Name>`` method answers the call ``<Name>``.

Messages the bot sends count against Telegram's flood limits (a burst of ``chat_burst`` per chat,
then about 1/s; ``group_burst`` per group, then about 20/min; edits and callback answers are not
counted) and are refused in a chat nobody opened (400) or whose user blocked the bot (403).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from bot.limits import (
    CALLBACK_ANSWER_S,
    CHAT_BURST,
    CHAT_INTERVAL_S,
    GROUP_BURST,
    GROUP_INTERVAL_S,
    MAX_CALLBACK_ANSWER,
    utf16_len,
)
from sandbox.emulator.refusals import (
    NOT_MODIFIED,
    BotAPIError,
    FloodBucket,
    bad_request,
    checked_caption,
    checked_markup,
    checked_text,
    flood_check,
)
from sandbox.emulator.state import EmulatorState, as_api_message


class BotAPIMethods(EmulatorState):
    """The Bot API methods on messages, callback queries, commands and chats (called with the lock held)."""

    callback_answer_window_s: float = CALLBACK_ANSWER_S  # tests may shrink it
    chat_burst, group_burst = CHAT_BURST, GROUP_BURST  # flood limits: then 1 message/s per chat, 20/min per group
    flood_grace_s = 0.5  # a message this much early still passes (clock jitter between bot and server)

    def _api_getMe(self, p: dict) -> dict:
        return self._bot_user()

    def _api_logOut(self, p: dict) -> bool:
        return True

    _api_close = _api_sendChatAction = _api_setChatMenuButton = _api_logOut

    def _api_sendMessage(self, p: dict) -> dict:
        text = checked_text(p, "message is too long")
        return self._bot_message(p, "sendMessage", text=text, raw_text=p["text"])

    def _api_sendPhoto(self, p: dict) -> dict:
        content = self._upload(p, "photo")
        photo = [self._file(len(content or b""), **_image_size(content or b""))]
        return self._bot_message(p, "sendPhoto", photo=photo, file_bytes=content,
                                 **checked_caption(p))

    def _api_sendDocument(self, p: dict) -> dict:
        content = self._upload(p, "document")
        return self._bot_message(p, "sendDocument", document=self._file(len(content or b"")),
                                 file_bytes=content, **checked_caption(p))

    def _api_editMessageText(self, p: dict) -> dict | bool:
        text = checked_text(p, "MESSAGE_TOO_LONG")
        return self._edit(p, text=text, raw_text=p["text"])

    def _api_editMessageReplyMarkup(self, p: dict) -> dict | bool:
        return self._edit(p)

    def _api_deleteMessage(self, p: dict) -> bool:
        stored = self._messages.get((int(p["chat_id"]), int(p["message_id"])))
        if stored is None or stored["deleted"]:
            raise bad_request("message to delete not found")
        stored["deleted"] = True
        return True

    def _api_answerCallbackQuery(self, p: dict) -> bool:
        query_id = str(p["callback_query_id"])
        pressed = self._pressed_at.pop(query_id, None)  # None for ids opened by hand (forged presses)
        late = pressed is not None and time.monotonic() - pressed > self.callback_answer_window_s
        if query_id not in self._open_queries or late:
            self._open_queries.discard(query_id)
            raise bad_request("query is too old and response timeout expired or query ID is "
                              "invalid")
        if utf16_len(str(p.get("text") or "")) > MAX_CALLBACK_ANSWER:
            raise bad_request("MESSAGE_TOO_LONG")
        self._open_queries.discard(query_id)
        return True

    def _api_setMyCommands(self, p: dict) -> bool:
        if any(not re.fullmatch(r"[a-z0-9_]{1,32}", c["command"]) for c in p["commands"]):
            raise bad_request("BOT_COMMAND_INVALID")
        self._commands[_commands_key(p)] = p["commands"]
        return True

    def _api_getMyCommands(self, p: dict) -> list[dict]:
        return self._commands.get(_commands_key(p), [])

    def _api_deleteMyCommands(self, p: dict) -> bool:
        self._commands.pop(_commands_key(p), None)
        return True

    def _api_getChat(self, p: dict) -> dict:
        gifts = dict.fromkeys(["unlimited_gifts", "limited_gifts", "unique_gifts",
                               "premium_subscription", "gifts_from_channels"], False)
        return self._known_chat(p["chat_id"]) | {"accent_color_id": 0, "max_reaction_count": 11,
                                                 "accepted_gift_types": gifts}

    # ------------------------------------------------------------------ a bot message: checked, stored
    def _writable_chat(self, chat_id: Any) -> dict:
        """A known chat whose user has not blocked the bot (403 otherwise)."""
        chat = self._known_chat(chat_id)
        if chat["id"] in self._blocked:
            raise BotAPIError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _count_flood(self, chat_id: int) -> None:
        """Count one message to ``chat_id``; 429 when over the chat's or the group's limit."""
        if not self.flood_limits:
            return
        buckets = [self._flood.setdefault(("chat", chat_id), FloodBucket(self.chat_burst, CHAT_INTERVAL_S,
                                                                         self.flood_grace_s))]
        if chat_id < 0:
            buckets.append(self._flood.setdefault(("group", chat_id), FloodBucket(
                self.group_burst, GROUP_INTERVAL_S, self.flood_grace_s)))
        flood_check(buckets, self._arrived)

    def _bot_message(self, p: dict, method: str, **content: Any) -> dict:
        chat, markup = self._writable_chat(p["chat_id"]), checked_markup(p)
        self._count_flood(chat["id"])
        reply_id = (p.get("reply_parameters") or {}).get("message_id", p.get("reply_to_message_id"))
        if reply_id is not None and (target := self._messages.get((chat["id"], reply_id))) is not None:
            content["reply_to_message"] = as_api_message(target, nested=False)
        stored = self._new_message(chat, self._bot_user(), from_bot=True, method=method,
                                   reply_markup=markup, **content)
        return as_api_message(stored)

    def _edit(self, p: dict, **changes: Any) -> dict | bool:
        if p.get("inline_message_id"):
            return True
        chat = self._writable_chat(p["chat_id"])
        stored = self._messages.get((chat["id"], int(p["message_id"])))
        if stored is None or stored["deleted"] or not stored["from_bot"]:
            raise bad_request("message to edit not found")
        if "text" in changes and "text" not in stored:
            raise bad_request("there is no text in the message to edit")
        changes["reply_markup"] = checked_markup(p)
        if all(stored.get(k) == changes[k] for k in ("text", "reply_markup") if k in changes):
            raise bad_request(NOT_MODIFIED)
        stored["history"].append({k: stored.get(k) for k in ("text", "reply_markup")})
        stored |= changes | {"edit_date": int(time.time())}
        return as_api_message(stored)

    def _upload(self, p: dict, name: str) -> bytes | None:
        """Uploaded bytes, or None for a file_id/URL (URLs are never fetched)."""
        if not p.get(name):
            raise bad_request(f"there is no {name} in the request")
        return p[name] if isinstance(p[name], bytes) else None


def _commands_key(p: dict) -> str:
    return json.dumps([p.get("scope") or {"type": "default"}, p.get("language_code") or ""])


def _image_size(content: bytes) -> dict[str, int]:
    if content.startswith(b"\x89PNG") and len(content) >= 24:
        return {"width": int.from_bytes(content[16:20]), "height": int.from_bytes(content[20:24])}
    return {"width": 1, "height": 1}
