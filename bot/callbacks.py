"""`callback_data` for staff buttons: "v1:<decision id>:<action>[:<arg>]", at most 64 bytes.

Only the id of the stored decision and the action travel through Telegram; everything else
(the text, the alternatives, who may press) is looked up server-side. Parsing is strict: any
other shape raises `CallbackDataError` with a reason the handler turns into a short answer.

Actions: ok (✅ confirm), no (❌ open the correction menu), back (close it), lab:<label>
(pick the sentiment), faq:<n> (pick the n-th alternative FAQ entry of the decision), ans (✍
write the answer), x (cancel writing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bot.limits import MAX_CALLBACK_DATA
from vocabulary import SENTIMENT_LABELS

VERSION = "v1"
MAX_ALTERNATIVES = 5


class ButtonAction(StrEnum):
    """What a staff button does; the value travels in callback_data, so it stays short."""

    CONFIRM = "ok"  # ✅ the bot was right
    CORRECT = "no"  # ❌ open the correction menu
    BACK = "back"  # close it
    LABEL = "lab"  # pick the sentiment (arg: the label)
    FAQ = "faq"  # pick the n-th alternative FAQ entry (arg: n)
    ANSWER = "ans"  # ✍ write the answer
    CANCEL = "x"  # stop writing it


_WITH_ARG = (ButtonAction.LABEL, ButtonAction.FAQ)

_SHAPE = re.compile(r"(v[0-9]{1,3}):([1-9][0-9]{0,17}):([a-z]{1,4})(?::([a-z0-9]{1,16}))?")
_ANY_VERSION = re.compile(r"v[0-9]{1,3}:")


class CallbackDataError(ValueError):
    """Button data that is not ours, damaged, or from another version of the bot."""

    def __init__(self, reason: str, data: object) -> None:
        super().__init__(f"{reason}: {data!r}")
        self.reason = reason  # "stale" (older/newer bot version) or "forged" (anything else)


@dataclass(frozen=True)
class Callback:
    """A parsed staff button press."""

    decision_id: int
    action: ButtonAction
    arg: str | None = None

    @property
    def label(self) -> str:
        """The sentiment label of a lab:<label> press."""
        assert self.action == ButtonAction.LABEL and self.arg is not None
        return self.arg

    @property
    def faq_index(self) -> int:
        """The alternative number of a faq:<n> press."""
        assert self.action == ButtonAction.FAQ and self.arg is not None
        return int(self.arg)


def _check(action: str, arg: str | None, data: object) -> None:
    if action not in tuple(ButtonAction):
        raise CallbackDataError("forged", data)
    if (arg is not None) != (action in _WITH_ARG):
        raise CallbackDataError("forged", data)
    if action == ButtonAction.LABEL and arg not in SENTIMENT_LABELS:
        raise CallbackDataError("forged", data)
    if action == ButtonAction.FAQ and not (arg is not None and arg.isdigit() and int(arg) < MAX_ALTERNATIVES
                                and str(int(arg)) == arg):
        raise CallbackDataError("forged", data)


def encode(decision_id: int, action: str, arg: str | int | None = None) -> str:
    """The callback_data for a button; ValueError for anything `decode` would refuse."""
    if isinstance(decision_id, bool) or not isinstance(decision_id, int) or decision_id < 1:
        raise ValueError(f"decision_id must be a positive int, got {decision_id!r}")
    arg_text = None if arg is None else str(arg)
    _check(action, arg_text, action)
    data = f"{VERSION}:{decision_id}:{action}" + ("" if arg_text is None else f":{arg_text}")
    if len(data.encode()) > MAX_CALLBACK_DATA:
        raise ValueError(f"callback_data over {MAX_CALLBACK_DATA} bytes: {data!r}")
    decode(data)  # one definition of "valid"
    return data


def decode(data: object) -> Callback:
    """Parse callback_data strictly; CallbackDataError("stale"|"forged") otherwise."""
    if not isinstance(data, str) or not data or len(data.encode("utf-8", "replace")) > MAX_CALLBACK_DATA:
        raise CallbackDataError("forged", data)
    match = _SHAPE.fullmatch(data)
    if match is None:
        if _ANY_VERSION.match(data) and not data.startswith(VERSION + ":"):
            raise CallbackDataError("stale", data)
        raise CallbackDataError("forged", data)
    version, decision_id, action, arg = match.groups()
    if version != VERSION:
        raise CallbackDataError("stale", data)
    _check(action, arg, data)
    return Callback(int(decision_id), ButtonAction(action), arg)
