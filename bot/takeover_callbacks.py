"""`callback_data` for the ▶ resume button under a takeover mirror: "t1:r:<decision id>", at most 64 bytes.

Only the mirrored decision's id travels; its customer, whether they are still taken over and who may
press are looked up server-side. Parsing is strict: any other shape raises `CallbackDataError("forged")`.
"""

from __future__ import annotations

import re

from bot.callbacks import CallbackDataError
from bot.limits import MAX_CALLBACK_DATA

VERSION = "t1"
RESUME = "r"
_SHAPE = re.compile(rf"{VERSION}:{RESUME}:([1-9][0-9]{{0,17}})")


def encode(decision_id: int) -> str:
    """The ▶ button's data for the mirror of `decision_id`; ValueError for an id `decode` would refuse."""
    data = f"{VERSION}:{RESUME}:{decision_id}"
    if not isinstance(decision_id, int) or _SHAPE.fullmatch(data) is None:
        raise ValueError(f"not a decision id: {decision_id!r}")
    return data


def decode(data: object) -> int:
    """The decision id of a ▶ press; CallbackDataError("forged") for anything else."""
    if not isinstance(data, str) or len(data.encode("utf-8", "replace")) > MAX_CALLBACK_DATA:
        raise CallbackDataError("forged", data)
    match = _SHAPE.fullmatch(data)
    if match is None:
        raise CallbackDataError("forged", data)
    return int(match[1])
