"""`callback_data` for /faq buttons: "fq1:<action>[:<language>][:<page or entry>]", at most 64 bytes.

An entry travels as a token (12 hex digits of the SHA-256 of its key), so any key fits and the data
has one fixed shape; the key, its rows and the permissions are looked up server-side. Parsing is
strict: any other shape raises `CallbackDataError("forged")`; a token no entry has any more is the
handler's to refuse as stale.

Actions: ls:<page> (the list), sh / hi / ph / rt / ry :<entry> (show it, its history, add a wording,
ask to retire it, retire it), ea / eq :<language>:<entry> (type a new answer / question in that
language; a language the entry lacks is added), new (type a new entry), x (stop typing).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from bot.callbacks import CallbackDataError
from bot.limits import MAX_CALLBACK_DATA
from settings import KNOWN_LANGUAGES

VERSION = "fq1"
MAX_PAGE = 9999
TOKEN_LENGTH = 12


class FaqAction(StrEnum):
    """What a /faq button does; the value travels in callback_data."""

    LIST = "ls"  # a page of the list (arg: the page, from 0)
    SHOW = "sh"  # one entry
    HISTORY = "hi"  # its changes
    PHRASING = "ph"  # type another wording of it
    RETIRE = "rt"  # ask to retire it
    RETIRE_YES = "ry"  # retire it
    ANSWER = "ea"  # type its new answer (in a language)
    QUESTION = "eq"  # type its new question (in a language)
    NEW = "new"  # type a new entry
    CANCEL = "x"  # stop typing


_ON_ENTRY = (FaqAction.SHOW, FaqAction.HISTORY, FaqAction.PHRASING, FaqAction.RETIRE, FaqAction.RETIRE_YES)
_IN_LANGUAGE = (FaqAction.ANSWER, FaqAction.QUESTION)
TYPING_ACTIONS = (FaqAction.ANSWER, FaqAction.QUESTION, FaqAction.PHRASING, FaqAction.NEW)  # start a typing flow
_SHAPE = re.compile(rf"{VERSION}:([a-z]{{1,3}})(?::([a-z]{{2}}))?(?::([0-9a-f]{{{TOKEN_LENGTH}}}|0|[1-9][0-9]{{0,3}}))?")


def entry_token(key: str) -> str:
    """The fixed-length token of an entry's key."""
    return hashlib.sha256(key.encode()).hexdigest()[:TOKEN_LENGTH]


@dataclass(frozen=True)
class FaqCallback:
    """A parsed /faq button press: the action, and its page, language or entry token."""

    action: FaqAction
    language: str | None = None
    token: str | None = None
    page: int = 0


def encode(action: FaqAction, *, key: str | None = None, language: str | None = None, page: int | None = None) -> str:
    """The callback_data of a button; ValueError for anything `decode` would refuse."""
    parts = [VERSION, str(action)]
    if language is not None:
        parts.append(language)
    if key is not None:
        parts.append(entry_token(key))
    if page is not None:
        parts.append(str(page))
    data = ":".join(parts)
    if len(data.encode()) > MAX_CALLBACK_DATA:
        raise ValueError(f"callback_data over {MAX_CALLBACK_DATA} bytes: {data!r}")
    try:
        decode(data)  # one definition of "valid"
    except CallbackDataError as error:
        raise ValueError(str(error)) from None
    return data


def decode(data: object) -> FaqCallback:
    """Parse callback_data strictly; CallbackDataError("forged") for anything that is not a /faq button."""
    if not isinstance(data, str) or len(data.encode("utf-8", "replace")) > MAX_CALLBACK_DATA:
        raise CallbackDataError("forged", data)
    match = _SHAPE.fullmatch(data)
    if match is None or match[1] not in tuple(FaqAction):
        raise CallbackDataError("forged", data)
    action, language, arg = FaqAction(match[1]), match[2], match[3]
    is_token = arg is not None and len(arg) == TOKEN_LENGTH
    if (language is not None) != (action in _IN_LANGUAGE) or (language is not None and language not in KNOWN_LANGUAGES):
        raise CallbackDataError("forged", data)
    if action == FaqAction.LIST:
        if arg is None or is_token or int(arg) > MAX_PAGE:
            raise CallbackDataError("forged", data)
        return FaqCallback(action, page=int(arg))
    if action in (*_ON_ENTRY, *_IN_LANGUAGE):
        if not is_token:
            raise CallbackDataError("forged", data)
        return FaqCallback(action, language, arg)
    if arg is not None:  # new, x
        raise CallbackDataError("forged", data)
    return FaqCallback(action)
