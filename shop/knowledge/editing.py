"""What editing the shop's FAQ does, without Telegram: edit an entry's answer or question, add a wording, add an
entry (or a language of one), retire one.

Each use case stores the change together with its history row (who, when, field, language, old → new; see
storage/faq.py) and, when what identifies an entry changed (a question, a wording, an entry, a retirement),
asks for the FAQ index to be rebuilt, so the next customer message sees it without a restart. An answer is
read when a customer is answered, so an edited one applies at once. Problems the editor can fix (an empty
text, a name taken, a wording another entry has) are `FaqProblem`s naming a text of shop.texts.faq; /faq
(bot/handlers/faq.py) only shows them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from settings import Settings
from storage.records import FaqChange, FaqEntry, NotFoundError
from storage.store import Store
from storage.text import detect_language

KEY = re.compile(r"[\w-]{1,40}")  # an entry's name: letters (any script), digits, - and _


class FaqProblem(ValueError):
    """A change the FAQ refuses; `reason` is a key of shop.texts.faq.FAQ, `values` fill its placeholders."""

    def __init__(self, reason: str, **values: object) -> None:
        super().__init__(reason, values)
        self.reason = reason
        self.values = values


class Knowledge:
    """The shop's FAQ as its owner edits it: every change versioned, the index refreshed when it must be."""

    def __init__(self, settings: Settings, store: Store, refresh_index: Callable[[], None],
                 reload_memory: Callable[[], None]) -> None:
        self.settings = settings
        self.store = store
        self._refresh_index = refresh_index
        self._reload_memory = reload_memory

    def live(self, key: str) -> list[FaqEntry]:
        """Every language of a live entry; FaqProblem("gone") when it is unknown or retired."""
        rows = self.store.faq.entry(key)
        if not rows or any(row.retired_at is not None for row in rows):
            raise FaqProblem("gone", key=key)
        return rows

    def edit_answer(self, key: str, language: str, text: str, editor: int) -> FaqChange | None:
        """A new answer in one language; None when it says that already. Applies from the next answer on."""
        return self._edit(key, language, "answer", _text(text), editor)

    def edit_question(self, key: str, language: str, text: str, editor: int) -> FaqChange | None:
        """A new canonical question in one language (the old one stays a wording only if it was one)."""
        change = self._edit(key, language, "question", self.check_question(key, text), editor)
        if change is not None:
            self._refresh_index()
        return change

    def add_phrasing(self, key: str, text: str, editor: int) -> FaqChange:
        """Another way customers ask a live entry: it finds the entry from the next message on."""
        text = _text(text)
        self.live(key)
        self._check_wording(key, text, own_ok=False)
        change = self.store.faq.add_phrasing(key, text, self.language_of(text), editor)
        self._refresh_index()
        return change

    def check_new_key(self, key: str) -> str:
        """The name of a new entry, tidied (lower case, spaces as -); FaqProblem if it is bad or taken."""
        key = "-".join(key.strip().lower().split())
        if not KEY.fullmatch(key):
            raise FaqProblem("bad_key")
        rows = self.store.faq.entry(key)
        if any(row.retired_at is not None for row in rows):
            raise FaqProblem("key_retired", key=key)
        if rows:
            raise FaqProblem("key_taken", key=key)
        return key

    def check_question(self, key: str, text: str) -> str:
        """A question for `key`, stripped; FaqProblem if it is empty or another live entry has that wording."""
        text = _text(text)
        self._check_wording(key, text, own_ok=True)
        return text

    def add_entry(self, key: str, question: str, answer: str, editor: int, language: str | None = None) -> FaqEntry:
        """A new entry (`key` unused; its language that of the question unless given), or, for a live `key`, its
        version in another `language`. It answers from the next customer message on."""
        if self.store.faq.entry(key):
            if language is None or any(row.language == language for row in self.live(key)):
                raise FaqProblem("key_taken", key=key)
        else:
            key = self.check_new_key(key)
        question, answer = self.check_question(key, question), _text(answer)
        entry = self.store.faq.create(key, language or self.language_of(question), question, answer, editor)
        self._refresh_index()
        return entry

    def retire(self, key: str, editor: int) -> FaqChange:
        """Stop answering with an entry at once, in every language; its rows, wordings and history stay."""
        self.live(key)
        change = self.store.faq.retire(key, editor)
        self._reload_memory()  # staff corrections naming it no longer answer with it
        self._refresh_index()
        return change

    def _edit(self, key: str, language: str, field: str, text: str, editor: int) -> FaqChange | None:
        self.live(key)
        try:
            return self.store.faq.edit(key, language, field, text, editor)
        except NotFoundError:
            raise FaqProblem("gone", key=key) from None

    def _check_wording(self, key: str, text: str, own_ok: bool) -> None:
        """A text finds one entry only: refuse one that another live entry has (or, for a wording, this one)."""
        other = self.store.faq.key_using(text)
        if other == key and not own_ok:
            raise FaqProblem("phrasing_known", key=key)
        if other is not None and other != key:
            raise FaqProblem("phrasing_taken", other=other)

    def language_of(self, text: str) -> str:
        """The shop language `text` is written in (the default one when it is neither)."""
        language = detect_language(text, default=self.settings.default_language)  # type: ignore[arg-type]
        return language if language in self.settings.shop.languages else self.settings.default_language


def _text(text: str) -> str:
    text = text.strip()
    if not text:
        raise FaqProblem("empty")
    return text
