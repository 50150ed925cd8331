"""Suggested FAQ entries: the week's staff-handled questions clustered (`shop.suggestions`), kept for the
report's owner buttons, and turned into a staff FAQ entry when the owner confirms one.

The suggestions of the latest report are kept in `store.state` under one tag (a hash of their
questions): a press carrying another tag is from an older report and is refused. Only decision ids
are kept there; the texts are read again at each press, so a customer's /forget or the retention
job removes their words from drafts too. A draft without a staff answer cannot be added (the owner
is told to answer one of the questions in the staff chat first). Adding one makes a staff FAQ entry:
the one staff's chosen answer already became, when it still exists (so no second entry with the same
question competes with it), else a new one; the other wordings become its phrasings (examples
linked to their decisions, source correction), the correction memory learns them and the FAQ index
is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from shop.suggestions import MAX_SUGGESTIONS, suggest
from storage.records import NotFoundError
from storage.store import Store
from storage.text import detect_language
from vocabulary import ExampleSource, MessageKind, Task

Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> FAQ embeddings (ServingModel.embed)
Remember = Callable[[str, MessageKind, str], None]  # the correction memory, as in shop.feedback
STATE_KEY = "faq_suggestions"
_DONE_KEPT = 5000  # ids of questions already turned into an entry (or discarded), never suggested again
ADDED, DISCARDED = "added", "discarded"


@dataclass(frozen=True)
class Suggestion:
    """One suggested entry as the report shows it: who asked, how, and what staff answered."""

    askers: int
    decision_ids: tuple[int, ...]  # central question first
    wordings: tuple[str, ...]  # distinct, central first
    answers: tuple[str, ...]  # staff's typed answers, distinct, most central first
    answer_id: int | None  # the decision whose staff answer a draft uses

    @property
    def label(self) -> str:
        """The most central wording."""
        return self.wordings[0]


def _distinct(values: Sequence[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def find_suggestions(store: Store, since: datetime, embed: Embed, limit: int = MAX_SUGGESTIONS) -> list[Suggestion]:
    """The week's top clusters of staff-handled questions asked by two or more customers."""
    done = set(_state(store).get("done", []))
    questions = [q for q in store.decisions.staff_questions_since(since) if q.decision_id not in done]
    if not questions:
        return []
    texts = [q.text for q in questions]
    found = suggest(texts, np.asarray(embed(texts)), [q.customer_id for q in questions], limit=limit)
    suggestions = []
    for group in found:
        members = [questions[i] for i in group.members]
        answered = next((q for q in members if q.answer), None)
        suggestions.append(Suggestion(group.askers, tuple(q.decision_id for q in members),
                                      _distinct([q.text for q in members]), _distinct([q.answer for q in members]),
                                      answered.decision_id if answered else None))
    return suggestions


def suggestion_tag(suggestions: Sequence[Suggestion]) -> str:
    """8 hex characters naming this set of suggestions (the same questions: the same tag)."""
    content = json.dumps([list(s.decision_ids) for s in suggestions])
    return hashlib.sha256(content.encode()).hexdigest()[:8]


def _state(store: Store) -> dict[str, Any]:
    value = store.state.get(STATE_KEY)
    return value if isinstance(value, dict) else {}


def keep_suggestions(store: Store, tag: str, suggestions: Sequence[Suggestion]) -> None:
    """Remember the latest report's suggestions for its buttons (the same tag again keeps what was done)."""
    state = _state(store)
    if state.get("tag") == tag:
        return
    items = [{"ids": list(s.decision_ids), "answer_id": s.answer_id, "status": None} for s in suggestions]
    store.state.set(STATE_KEY, {"tag": tag, "items": items, "done": state.get("done", [])})


class SuggestionError(Exception):
    """A press that can do nothing: `reason` is "stale", "unknown", "done", "gone" or "no_answer"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Draft:
    """A suggestion as an FAQ entry to confirm: the question, staff's answer (None: not addable), phrasings."""

    number: int
    question: str
    answer: str | None
    phrasings: tuple[str, ...]
    language: str
    answer_key: str | None  # the staff entry that answer already became, extended rather than duplicated
    wordings: tuple[tuple[int, str], ...]  # (decision id, text) of every question still stored, central first


class SuggestionBook:
    """The owner's suggestion buttons on one store: draft, add, discard."""

    def __init__(self, store: Store, remember: Remember, refresh_index: Callable[[], None]) -> None:
        self.store = store
        self._remember = remember
        self._refresh_index = refresh_index

    def _item(self, tag: str, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
        state = _state(self.store)
        if state.get("tag") != tag:
            raise SuggestionError("stale")
        items = state.get("items", [])
        if not 1 <= number <= len(items):
            raise SuggestionError("unknown")
        item = items[number - 1]
        if item.get("status"):
            raise SuggestionError("done")
        return state, item

    def _text(self, decision_id: int) -> str | None:
        try:
            decision = self.store.decisions.get(decision_id)
        except NotFoundError:
            return None
        return self.store.messages.learnable_text(decision.message_id)

    def draft(self, tag: str, number: int) -> Draft:
        """The entry suggestion `number` of report `tag` would make (SuggestionError if it can't be shown)."""
        _, item = self._item(tag, number)
        wordings = [(int(i), text) for i in item["ids"] if (text := self._text(int(i))) is not None]
        if not wordings:
            raise SuggestionError("gone")
        answer = self.store.corrections.latest_answer(item["answer_id"]) if item.get("answer_id") else None
        keys = self.store.faq.keys()  # a query, not a dict view
        key = answer.new_label if answer and answer.new_label in keys else None
        texts = _distinct([text for _, text in wordings])
        return Draft(number, texts[0], answer.answer_text if answer else None, texts[1:], detect_language(texts[0]),
                     key, tuple(wordings))

    def add(self, tag: str, number: int, editor: int) -> tuple[str, int]:
        """Make the draft a staff FAQ entry with its phrasings (versioned, by `editor`); returns (key, phrasings added)."""
        draft = self.draft(tag, number)
        if draft.answer is None:
            raise SuggestionError("no_answer")
        store = self.store
        with store.transaction():
            if draft.answer_key is not None:
                key = draft.answer_key
                for field, text in (("question", draft.question), ("answer", draft.answer)):
                    store.faq.edit(key, draft.language, field, text, editor)
            else:
                key = store.faq.add_entry_from_staff(draft.question, draft.answer, draft.language, editor)
            taken = {e.text: e.label for e in store.examples.all(task=Task.FAQ)}
            taken.update({e.question: e.key for e in store.faq.all() if e.key != key})
            added = []
            for decision_id, text in draft.wordings:
                if text in taken:  # already this entry's, or another entry's phrasing: no contradiction
                    continue
                store.examples.add(Task.FAQ, text, key, detect_language(text), ExampleSource.CORRECTION,
                                   decision_id=decision_id)
                taken[text] = key
                added.append(text)
            self._finish(tag, number, ADDED)
        for text in added:
            self._remember(text, MessageKind.QUESTION, key)
        self._refresh_index()
        return key, len(added)

    def discard(self, tag: str, number: int) -> None:
        """Drop suggestion `number`: its questions are not suggested again."""
        self._item(tag, number)
        self._finish(tag, number, DISCARDED)

    def _finish(self, tag: str, number: int, status: str) -> None:
        state, item = self._item(tag, number)
        item["status"] = status
        state["done"] = [*state.get("done", []), *item["ids"]][-_DONE_KEPT:]
        self.store.state.set(STATE_KEY, state)
