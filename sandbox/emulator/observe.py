"""What a test sees of the bot: the calls it made (``calls``/``requests``/``wait_for``) and the
messages it sent, edits applied (``messages``/``wait_for_message``); all return copies."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

from sandbox.emulator.state import EmulatorState, public_copy


class Observation(EmulatorState):
    """Snapshots of, and waits on, the bot's calls and messages."""

    @property
    def requests(self) -> list[tuple[str, dict]]:
        """Snapshot of every API call as ``(method, decoded params)``, failed ones included."""
        return self.calls()

    def calls(self, method: str | None = None) -> list[tuple[str, dict]]:
        """Snapshot of the API calls, optionally only those of ``method`` (case-insensitive)."""
        with self._cond:
            return copy.deepcopy([(m, p) for m, p in self._requests
                                  if method is None or m.lower() == method.lower()])

    def messages(self, chat_id: int | None = None, include_deleted: bool = False) -> list[dict]:
        """Messages the bot sent, oldest first, edits applied (keys: see sandbox.emulator's docstring)."""
        with self._cond:
            return [public_copy(m) for m in self._bot_messages(chat_id, include_deleted)]

    def _bot_messages(self, chat_id: int | None, include_deleted: bool = False) -> Iterator[dict]:
        """The stored (not copied) bot messages of one chat or all; call with the lock held."""
        pool = self._messages.values() if chat_id is None else self._chat_messages.get(chat_id, ())
        return (m for m in pool if m["from_bot"] and (include_deleted or not m["deleted"]))

    def wait_for(self, predicate: Callable[[str, dict], bool], timeout: float = 10,
                 after: int = 0) -> tuple[str, dict]:
        """Return the first call with index >= ``after`` (default 0: old calls count) matching."""
        def find() -> tuple[str, dict] | None:
            return next(((m, copy.deepcopy(p)) for m, p in self._requests[after:]
                         if predicate(m, p)), None)
        return self._wait(find, timeout, lambda: "no matching Bot API call")

    def wait_for_message(self, chat_id: int, contains: str | None = None, timeout: float = 10,
                         after: int = 0) -> dict:
        """Return the first bot message in ``chat_id`` with message_id > ``after`` (and text)."""
        def shown(message: dict) -> str:
            return message.get("text") or message.get("caption") or ""

        def find() -> dict | None:  # runs on every change while someone waits: copy only the match
            return next((public_copy(m) for m in self._bot_messages(chat_id) if m["message_id"] > after
                         and (contains is None or contains in shown(m))), None)

        def describe() -> str:
            seen = [(m["message_id"], shown(m)) for m in self.messages(chat_id)]
            return (f"no bot message in chat {chat_id} with id > {after} containing "
                    f"{contains!r}; bot messages there: {seen}")
        return self._wait(find, timeout, describe)
