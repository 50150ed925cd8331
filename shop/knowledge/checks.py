"""What makes an imported row good: each row on its own (the checks shared with the demo loader,
storage.seed), then the rows together and against the database (a key given two different answers,
a phrasing that already identifies another entry, a review labelled twice)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shop.knowledge.layout import FAQ, Place, Row, Sheet, split_phrasings
from storage.records import FaqEntry
from storage.seed import faq_problem, key_problem, review_problem
from storage.store import Store
from storage.text import detect_language, normalise_text
from vocabulary import ExampleSource, Task


@dataclass(frozen=True)
class FaqRow:
    """An FAQ row that is good on its own: an entry (question + answer, maybe phrasings) or only phrasings."""

    place: Place
    key: str
    language: str
    topic: str
    question: str
    answer: str
    phrasings: tuple[str, ...]

    @property
    def gives_entry(self) -> bool:
        """Whether this row gives the entry's question and answer (else it only adds phrasings)."""
        return bool(self.question)

    @property
    def texts(self) -> tuple[str, ...]:
        """Every text that will identify the entry: its question and its phrasings."""
        return ((self.question,) if self.question else ()) + self.phrasings


@dataclass(frozen=True)
class ReviewRow:
    """A labelled review that is good on its own."""

    place: Place
    text: str
    label: str
    language: str


@dataclass(frozen=True)
class Problem:
    """What is wrong, and where: a row (place), or a whole file (place None, `where` names it)."""

    where: str
    message: str
    place: Place | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Known:
    """What the database already holds, as the checks and the import compare with it."""

    entries: dict[tuple[str, str], FaqEntry]  # (key, language) -> entry
    owners: dict[str, set[str]]  # normalised question or phrasing -> the FAQ keys it identifies
    reviews: dict[str, set[str]]  # the shop's own (seed) review text -> its labels
    retired: frozenset[str] = frozenset()  # keys retired with /faq: never reused

    @classmethod
    def read(cls, store: Store) -> Known:
        """Read it from the store."""
        entries = {(entry.key, entry.language): entry for entry in store.faq.all()}
        retired = frozenset(store.faq.retired_keys())
        owners: dict[str, set[str]] = {}
        texts = [(entry.question, entry.key) for entry in entries.values()]
        texts += [(example.text, example.label) for example in store.examples.all(task=Task.FAQ)
                  if example.label not in retired]  # a retired entry's wordings are free again
        for text, key in texts:
            owners.setdefault(normalise_text(text), set()).add(key)
        reviews: dict[str, set[str]] = {}
        for example in store.examples.all(task=Task.SENTIMENT):
            if example.source == ExampleSource.SEED:
                reviews.setdefault(example.text, set()).add(example.label)
        return cls(entries, owners, reviews, retired)


def _language_problem(language: str, languages: Sequence[str], required: bool) -> str | None:
    if not language:
        return f"missing language ({' or '.join(languages)})" if required else None
    if language not in languages:
        return f"unknown language {language!r} (this shop's languages: {', '.join(languages)})"
    return None


def _faq_row(place: Place, row: Row, languages: Sequence[str]) -> FaqRow | str:
    key, language, question, answer = (row.get(column) for column in ("key", "language", "question", "answer"))
    phrasings = tuple(dict.fromkeys(split_phrasings(row.get("phrasings"))))
    problem = key_problem(key) or _language_problem(language.lower(), languages, required=True)
    if problem is None and (question or answer or not phrasings):  # a row of only phrasings adds them to its entry
        problem = faq_problem(question, answer)
    return problem or FaqRow(place, key, language.lower(), row.get("topic"), question, answer, phrasings)


def _review_row(place: Place, row: Row, languages: Sequence[str]) -> ReviewRow | str:
    text, label, language = row.get("text"), row.get("label").lower(), row.get("language").lower()
    problem = review_problem(text, label) or _language_problem(language, languages, required=False)
    return problem or ReviewRow(place, text, label, language or detect_language(text))  # no language: detected


def checked_row(sheet: Sheet, row: Row, languages: Sequence[str]) -> FaqRow | ReviewRow | Problem | None:
    """One row checked on its own (an FAQ or a review row, as its sheet's kind); None for an empty row."""
    place = sheet.place(row)
    if row.problem:
        return Problem(str(place), row.problem, place)
    if not any(row.cells.values()):
        return None  # skipped silently
    checked = (_faq_row if sheet.kind == FAQ else _review_row)(place, row, languages)
    return Problem(str(place), checked, place) if isinstance(checked, str) else checked


def _same_entry(first: FaqRow, other: FaqRow) -> bool:
    topics_agree = not first.topic or not other.topic or first.topic == other.topic
    return (first.question, first.answer) == (other.question, other.answer) and topics_agree


def _claim_problem(row: FaqRow, claims: dict[str, FaqRow], known: Known) -> str | None:
    """Why one of the row's texts cannot identify its entry: another entry (in the file, or stored) has it."""
    for text in row.texts:
        what = "question" if text == row.question else "phrasing"
        holder = claims.get(normalise_text(text))
        if holder is not None and holder.key != row.key:
            return f"{what} {text!r} is already used by entry {holder.key} ({holder.place.seen_from(row.place)})"
        if others := known.owners.get(normalise_text(text), set()) - {row.key}:
            return f"{what} {text!r} is already used by entry {min(others)} (in the database)"
    return None


def check_faq(rows: Sequence[FaqRow], known: Known) -> dict[int, str]:
    """The rows (by index) that clash with an earlier row or with the database, and why."""
    given = {(row.key, row.language) for row in rows if row.gives_entry}
    entries: dict[tuple[str, str], FaqRow] = {}
    claims: dict[str, FaqRow] = {}
    bad: dict[int, str] = {}
    for index, row in enumerate(rows):
        ident = (row.key, row.language)
        first = entries.get(ident)
        if row.key in known.retired:
            bad[index] = f"entry {row.key} was retired with /faq, and a retired key is not reused: give it a new key"
        elif row.gives_entry and first is not None and not _same_entry(first, row):
            bad[index] = (f"duplicate key+language: {row.key} ({row.language}) has a different question, answer or "
                          f"topic in {first.place.seen_from(row.place)}")
        elif not row.gives_entry and ident not in given and ident not in known.entries:
            bad[index] = f"phrasings for {row.key} ({row.language}), but no row gives its question and answer"
        elif problem := _claim_problem(row, claims, known):
            bad[index] = problem
        else:
            if row.gives_entry:
                entries.setdefault(ident, row)
            for text in row.texts:
                claims.setdefault(normalise_text(text), row)
    return bad


def check_reviews(rows: Sequence[ReviewRow]) -> dict[int, str]:
    """The reviews (by index) that an earlier row gives another label, and why."""
    seen: dict[str, ReviewRow] = {}
    bad: dict[int, str] = {}
    for index, row in enumerate(rows):
        first = seen.setdefault(normalise_text(row.text), row)
        if first.label != row.label:
            bad[index] = f"the same review is labelled {first.label} in {first.place.seen_from(row.place)}"
    return bad
