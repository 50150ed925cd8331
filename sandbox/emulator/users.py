"""The user side a test or sandbox visitor plays: ``FakeUser`` writing texts, commands, stickers,
photos, voice notes and replies, pressing buttons, opening chats and blocking the bot; each action
becomes an update the bot receives, as from Telegram."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from sandbox.emulator.state import EmulatorState, as_api_message

TINY_PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489000000"
                         "0d49444154789c63000100000500010d0a2db40000000049454e44ae426082")


@dataclass(frozen=True)
class FakeUser:
    """A Telegram user played by a test or a sandbox visitor."""

    id: int
    first_name: str
    language_code: str | None = None
    username: str | None = None

    def to_api(self) -> dict[str, Any]:
        """Return the Bot API ``User`` object."""
        optional = {"language_code": self.language_code, "username": self.username}
        return {"id": self.id, "is_bot": False, "first_name": self.first_name} | {
            k: v for k, v in optional.items() if v is not None}


class UserSide(EmulatorState):
    """What users do, injected as updates; each method returns the update's payload (a copy)."""

    def send_text(self, user: FakeUser, text: str, chat_id: int | None = None) -> dict:
        """Inject a text message from ``user`` (private chat unless ``chat_id``); return it."""
        return self._user_message(user, chat_id, text=text)

    def send_command(self, user: FakeUser, command: str, args: str = "",
                     chat_id: int | None = None, reply_to: dict | None = None) -> dict:
        """Inject ``/command args`` with a ``bot_command`` entity (replying to ``reply_to``, a message, if given)."""
        command = "/" + command.lstrip("/")
        entity = {"type": "bot_command", "offset": 0, "length": len(command)}
        with self._cond:
            replying = {} if reply_to is None else {
                "reply_to_message": as_api_message(self._known(reply_to), nested=False)}
            return self._user_message(user, chat_id, text=f"{command} {args}".rstrip(),
                                      entities=[entity], **replying)

    def send_sticker(self, user: FakeUser, chat_id: int | None = None, emoji: str = "🙂") -> dict:
        """Inject a sticker message."""
        sticker = self._file(512, width=512, height=512, is_animated=False, is_video=False,
                             type="regular", emoji=emoji)
        return self._user_message(user, chat_id, sticker=sticker)

    def send_photo(self, user: FakeUser, chat_id: int | None = None,
                   caption: str | None = None) -> dict:
        """Inject a photo message."""
        return self._user_message(user, chat_id, photo=[self._file(68, width=1, height=1)],
                                  caption=caption)

    def send_voice(self, user: FakeUser, chat_id: int | None = None, duration: int = 2) -> dict:
        """Inject a voice message."""
        voice = self._file(1000, duration=duration, mime_type="audio/ogg")
        return self._user_message(user, chat_id, voice=voice)

    def send_edited_text(self, user: FakeUser, message: dict, new_text: str) -> dict:
        """Inject an ``edited_message`` update for a message ``user`` sent earlier."""
        with self._cond:
            stored = self._known(message)
            stored.update(text=new_text, edit_date=int(time.time()))
            return self._inject("edited_message", as_api_message(stored))

    def send_channel_post(self, chat_id: int, text: str) -> dict:
        """Inject a ``channel_post`` update."""
        with self._cond:
            chat = self._chats.setdefault(chat_id, {"id": chat_id, "type": "channel",
                                                    "title": "Channel"})
            stored = self._new_message(chat, None, text=text, sender_chat=chat)
            return self._inject("channel_post", as_api_message(stored))

    def reply_to(self, user: FakeUser, message: dict, text: str,
                 chat_id: int | None = None) -> dict:
        """Inject a text replying to ``message``, in that message's chat unless ``chat_id``."""
        with self._cond:
            target = as_api_message(self._known(message), nested=False)
            chat_id = message["chat"]["id"] if chat_id is None else chat_id
            return self._user_message(user, chat_id, text=text, reply_to_message=target)

    # ------------------------------------------------------------------ buttons
    def press_button(self, user: FakeUser, message: dict, data: str) -> dict:
        """Inject a ``callback_query`` for a button now on a bot message (ValueError if absent)."""
        with self._cond:
            stored = self._known(message)
            rows = (stored.get("reply_markup") or {}).get("inline_keyboard", [])
            offered = [button.get("callback_data") for row in rows for button in row]
            if data not in offered:
                raise ValueError(f"no button with callback_data={data!r}; offered: {offered}")
            query_id = str(next(self._query_ids))
            self._open_queries.add(query_id)
            self._pressed_at[query_id] = time.monotonic()
            return self._inject("callback_query", {
                "id": query_id, "from": user.to_api(), "message": as_api_message(stored),
                "chat_instance": str(stored["chat_id"]), "data": data})

    def press_inaccessible(self, user: FakeUser, message: dict, data: str) -> dict:
        """Press a button of a message the bot can no longer see (older than 48 h): ``date`` 0."""
        query = self.press_button(user, message, data)
        with self._cond:
            update = next(u for u in self._updates if u.get("callback_query", {}).get("id") == query["id"])
            inaccessible = {"chat": query["message"]["chat"], "message_id": message["message_id"], "date": 0}
            update["callback_query"]["message"] = query["message"] = inaccessible
            return copy.deepcopy(query)

    # ------------------------------------------------------------------ chats and blocking
    def add_chat(self, chat_id: int, title: str = "Staff") -> dict:
        """Let the bot write to a group (negative id, a supergroup) or user before anyone wrote there."""
        with self._cond:
            return copy.deepcopy(self._open_chat(chat_id, title))

    def block_bot(self, user: FakeUser) -> None:
        """``user`` blocks the bot: what it sends or edits in their chat gets 403 from now on, and the bot
        gets a ``my_chat_member`` update (member → kicked), as from Telegram."""
        with self._cond:
            if user.id not in self._blocked:
                self._blocked.add(user.id)
                self._bot_status_changed(user, "member", "kicked")

    def unblock_bot(self, user: FakeUser) -> None:
        """``user`` unblocks the bot (writing to it does too: a client cannot write to a blocked bot);
        the bot gets a ``my_chat_member`` update (kicked → member)."""
        with self._cond:
            if user.id in self._blocked:
                self._blocked.discard(user.id)
                self._bot_status_changed(user, "kicked", "member")

    def _bot_status_changed(self, user: FakeUser, old: str, new: str) -> None:
        bot = {key: value for key, value in self._bot_user().items() if key in ("id", "is_bot", "first_name",
                                                                                 "username")}

        def member(status: str) -> dict:
            return {"user": bot, "status": status} | ({"until_date": 0} if status == "kicked" else {})

        chat = self._open_chat(user.id, user.first_name)
        self._inject("my_chat_member", {"chat": copy.deepcopy(chat), "from": user.to_api(), "date": int(time.time()),
                                        "old_chat_member": member(old), "new_chat_member": member(new)})

    # ------------------------------------------------------------------ internals
    def _user_message(self, user: FakeUser, chat_id: int | None, **fields: Any) -> dict:
        with self._cond:
            if chat_id is None:
                chat = self._chats[user.id] = {"id": user.id, "type": "private",
                                               "first_name": user.first_name}
                self.unblock_bot(user)
            else:
                chat = self._open_chat(chat_id, "Staff" if chat_id < 0 else f"User {chat_id}")
            stored = self._new_message(chat, user.to_api(), **fields)
            return self._inject("message", as_api_message(stored))

    def _inject(self, kind: str, payload: dict) -> dict:
        self.push_update({kind: payload})
        return copy.deepcopy(payload)
