"""What /faq shows: a page of the FAQ list, one entry with its edit buttons, the retire question, the history
(plain text, within Telegram's 4,096 units: long questions and answers are cut with "…").

    list:   [key · question] × 8   [◀ previous] [next ▶]   [➕ new entry]
    entry:  [✏ question (zh)] [✏ answer (zh)]   (a language it lacks: [➕ add English])
            [➕ another wording] [📜 history]   [🗄 retire] [↩ list]
    retire: [🗄 yes, retire it] [↩ no, keep it]
    typing: [✖ cancel]
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot import faq_callbacks
from bot.faq_callbacks import FaqAction
from bot.limits import MAX_TEXT, utf16_cut
from settings import Settings
from shop.formatting import local_time
from shop.texts import faq_text
from storage.records import FaqChange, FaqEntry

PAGE_SIZE = 8
MAX_BUTTON = 40  # UTF-16 units of a button's text, as all the cuts below
MAX_LIST_QUESTION = 80
MAX_PROMPT_CURRENT = 1500  # the current text quoted in a "type the new one" prompt
MAX_HISTORY_VALUE = 150
HISTORY_LINES = 10


@dataclass(frozen=True)
class View:
    """A message to send or edit: its text and buttons."""

    text: str
    markup: InlineKeyboardMarkup | None


def _button(text: str, action: FaqAction, key: str | None = None, language: str | None = None,
            page: int | None = None) -> InlineKeyboardButton:
    data = faq_callbacks.encode(action, key=key, language=language, page=page)
    return InlineKeyboardButton(utf16_cut(text, MAX_BUTTON), callback_data=data)


def language_name(settings: Settings, language: str, code: str) -> str:
    """"English" / "中文": the name of entry language `code`, in the reader's `language`."""
    return faq_text(settings, language, f"lang_{code}")


def _when(settings: Settings, stamp: str) -> str:
    return local_time(datetime.fromisoformat(stamp), ZoneInfo(settings.schedule.timezone))


def _who(user_id: int | None) -> str:
    return "?" if user_id is None else f"#{user_id}"


def title_of(rows: Sequence[FaqEntry], language: str) -> str:
    """An entry's question in `language`, else in its first language."""
    return next((row.question for row in rows if row.language == language), rows[0].question)


def list_view(settings: Settings, language: str, entries: Sequence[Sequence[FaqEntry]], page: int) -> View:
    """One page of the list (a page past the end shows the last one: the list may have shrunk)."""
    say = functools.partial(faq_text, settings, language)
    new = [_button(say("btn_new"), FaqAction.NEW)]
    if not entries:
        return View(say("list_empty"), InlineKeyboardMarkup([new]))
    pages = -(-len(entries) // PAGE_SIZE)
    page = min(page, pages - 1)
    shown = entries[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    lines = [say("list_title", count=len(entries), page=page + 1, pages=pages), ""]
    rows = []
    for number, entry in enumerate(shown, start=page * PAGE_SIZE + 1):
        key, question = entry[0].key, title_of(entry, language)
        lines.append(say("list_line", number=number, key=key, question=utf16_cut(" ".join(question.split()),
                                                                                 MAX_LIST_QUESTION)))
        rows.append([_button(f"{key} · {question}", FaqAction.SHOW, key=key)])
    lines += ["", say("list_hint")]
    nav = []
    if page > 0:
        nav.append(_button(say("btn_prev"), FaqAction.LIST, page=page - 1))
    if page < pages - 1:
        nav.append(_button(say("btn_next"), FaqAction.LIST, page=page + 1))
    return View(utf16_cut("\n".join(lines), MAX_TEXT), InlineKeyboardMarkup([*rows, *([nav] if nav else []), new]))


def entry_view(settings: Settings, language: str, rows: Sequence[FaqEntry], wordings: int,
               changes: Sequence[FaqChange]) -> View:
    """One entry in every language it has, cut to fit one message, with its buttons (none to edit when retired)."""
    say = functools.partial(faq_text, settings, language)
    key = rows[0].key
    room = (MAX_TEXT - 600) // max(len(rows), 1)  # each language's question and answer share what is left
    lines = [say("entry_title", key=key, topic=rows[0].topic)]
    retired = rows[0].retired_at
    if retired is not None:
        by = next((change.changed_by for change in changes if change.field == "retired"), None)
        lines.append(say("entry_retired", when=_when(settings, retired), who=_who(by)))
    for row in rows:
        lines += ["", say("entry_language", language=language_name(settings, language, row.language)),
                  say("entry_question", question=utf16_cut(row.question, room // 4)),
                  say("entry_answer", answer=utf16_cut(row.answer, room - room // 4))]
    lines += ["", say("entry_phrasings", count=wordings)]
    if changes:
        lines.append(say("entry_changed", when=_when(settings, changes[0].changed_at), who=_who(changes[0].changed_by)))
    buttons = []
    if retired is None:
        have = {row.language for row in rows}
        for code in settings.shop.languages:
            name = language_name(settings, language, code)
            if code in have:
                buttons.append([_button(say("btn_question", language=name), FaqAction.QUESTION, language=code, key=key),
                                _button(say("btn_answer", language=name), FaqAction.ANSWER, language=code, key=key)])
            else:
                buttons.append([_button(say("btn_add_language", language=name), FaqAction.QUESTION, language=code,
                                        key=key)])
        buttons.append([_button(say("btn_phrasing"), FaqAction.PHRASING, key=key),
                        _button(say("btn_history"), FaqAction.HISTORY, key=key)])
        buttons.append([_button(say("btn_retire"), FaqAction.RETIRE, key=key),
                        _button(say("btn_list"), FaqAction.LIST, page=0)])
    else:
        buttons.append([_button(say("btn_history"), FaqAction.HISTORY, key=key),
                        _button(say("btn_list"), FaqAction.LIST, page=0)])
    return View(utf16_cut("\n".join(lines), MAX_TEXT), InlineKeyboardMarkup(buttons))


def retire_view(settings: Settings, language: str, key: str) -> View:
    """Are you sure? Retiring stops the answers at once."""
    say = functools.partial(faq_text, settings, language)
    return View(say("retire_confirm", key=key), InlineKeyboardMarkup([[
        _button(say("btn_retire_yes"), FaqAction.RETIRE_YES, key=key),
        _button(say("btn_retire_no"), FaqAction.SHOW, key=key)]]))


def history_view(settings: Settings, language: str, key: str, changes: Sequence[FaqChange]) -> View:
    """The latest changes of one entry, newest first, with a way back to it."""
    say = functools.partial(faq_text, settings, language)

    def value(text: str | None) -> str:
        return say("none") if text is None else utf16_cut(" ".join(text.split()), MAX_HISTORY_VALUE)

    lines = [say("history_title", key=key)]
    for change in changes[:HISTORY_LINES]:
        where = "" if change.language is None else f" ({language_name(settings, language, change.language)})"
        lines.append(say("history_line", when=_when(settings, change.changed_at), who=_who(change.changed_by),
                         field=say(f"field_{change.field}"), language=where, old=value(change.old),
                         new=value(change.new)))
    if not changes:
        lines.append(say("history_empty"))
    back = InlineKeyboardMarkup([[_button(say("btn_list"), FaqAction.LIST, page=0)],
                                 [_button(f"↩ {key}", FaqAction.SHOW, key=key)]])
    return View(utf16_cut("\n".join(lines), MAX_TEXT), back)


def prompt_view(settings: Settings, language: str, text: str) -> View:
    """A "type the new text" prompt with its ✖ cancel button."""
    cancel = _button(faq_text(settings, language, "btn_cancel"), FaqAction.CANCEL)
    return View(utf16_cut(text, MAX_TEXT), InlineKeyboardMarkup([[cancel]]))


def quoted(text: str) -> str:
    """The current text, cut to fit in a prompt."""
    return utf16_cut(text, MAX_PROMPT_CURRENT)
