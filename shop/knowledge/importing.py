"""`shopbot import`: the owner's FAQ entries and labelled reviews from .xlsx / .csv / .jsonl into the database.

The files are checked whole first (checks.py); nothing is written unless every row is good, or, with
`skip_bad_rows`, the good rows are written and the bad ones listed. Writing is idempotent: an entry
whose question, answer and topic are unchanged is not touched (no new updated_at), a phrasing or
review already stored is not added again. An import adds and updates; it never deletes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shop.knowledge.checks import FaqRow, Known, Problem, ReviewRow, check_faq, check_reviews, checked_row
from shop.knowledge.layout import LayoutError, Sheet, read
from storage.store import Store
from storage.text import normalise_text
from vocabulary import ExampleSource, Task

DEFAULT_TOPIC = "general"  # an entry whose rows name no topic


@dataclass(frozen=True)
class ImportReport:
    """What an import did, or why it wrote nothing."""

    written: bool
    problems: tuple[Problem, ...] = ()  # refused: why; written with skip_bad_rows: the rows skipped
    notes: tuple[str, ...] = ()  # e.g. a workbook's sheets that were not FAQ or reviews tables
    entries_added: int = 0
    entries_updated: int = 0
    entries_unchanged: int = 0
    phrasings_added: int = 0  # texts that newly identify an entry (a new or changed question counts as one)
    reviews_added: int = 0
    reviews_relabelled: int = 0
    reviews_unchanged: int = 0

    @property
    def changed(self) -> int:
        """How many entries, phrasings and reviews were added or changed."""
        return (self.entries_added + self.entries_updated + self.phrasings_added + self.reviews_added
                + self.reviews_relabelled)

    def summary(self) -> str:
        """One line: how much changed, and how."""
        return (f"{self.changed} changed: FAQ entries {self.entries_added} added, {self.entries_updated} updated, "
                f"{self.entries_unchanged} unchanged; phrasings {self.phrasings_added} added; reviews "
                f"{self.reviews_added} added, {self.reviews_relabelled} relabelled, {self.reviews_unchanged} unchanged")

    def lines(self) -> list[str]:
        """The report as the command prints it."""
        if not self.written:
            rows = any(problem.place is not None for problem in self.problems)
            hint = " (fix them, or write the good rows with --skip-bad-rows)" if rows else ""
            return [*map(str, self.problems), f"refused: {len(self.problems)} problem(s), nothing was written{hint}"]
        skipped = [f"skipped {len(self.problems)} bad row(s):", *(f"  {p}" for p in self.problems)] if self.problems else []
        return [*self.notes, *skipped, self.summary()]


def _rows(sheets: Sequence[Sheet], languages: Sequence[str]) -> tuple[list[FaqRow], list[ReviewRow], list[Problem]]:
    faq: list[FaqRow] = []
    reviews: list[ReviewRow] = []
    problems: list[Problem] = []
    for sheet in sheets:
        for row in sheet.rows:
            checked = checked_row(sheet, row, languages)
            if isinstance(checked, Problem):
                problems.append(checked)
            elif isinstance(checked, FaqRow):
                faq.append(checked)
            elif isinstance(checked, ReviewRow):
                reviews.append(checked)
    return faq, reviews, problems


def _topic(row: FaqRow, rows: Sequence[FaqRow], known: Known) -> str:
    """The row's topic, else the stored entry's, else one its key has in another row or language."""
    existing = known.entries.get((row.key, row.language))
    siblings = [other.topic for other in rows if other.key == row.key]
    siblings += [entry.topic for (key, _), entry in known.entries.items() if key == row.key]
    return row.topic or (existing.topic if existing else "") or next(filter(None, siblings), DEFAULT_TOPIC)


def _write_faq(store: Store, rows: Sequence[FaqRow], known: Known) -> dict[str, int]:
    counts = {"entries_added": 0, "entries_updated": 0, "entries_unchanged": 0}
    entries: dict[tuple[str, str], FaqRow] = {}
    for row in rows:
        if row.gives_entry:
            entries.setdefault((row.key, row.language), row)
    for (key, language), row in entries.items():
        topic = _topic(row, rows, known)
        existing = known.entries.get((key, language))
        if existing is not None and (existing.question, existing.answer, existing.topic) == (row.question, row.answer, topic):
            counts["entries_unchanged"] += 1
            continue
        store.faq.upsert(key, language, row.question, row.answer, topic, existing.source if existing else "seed")
        counts["entries_added" if existing is None else "entries_updated"] += 1
    new: list[tuple[str, str, str]] = []
    for row in rows:
        for text in row.texts:
            keys = known.owners.setdefault(normalise_text(text), set())
            if row.key not in keys:
                keys.add(row.key)
                new.append((text, row.key, row.language))
    counts["phrasings_added"] = store.examples.add_many(Task.FAQ, new, ExampleSource.SEED)
    return counts


def _write_reviews(store: Store, rows: Sequence[ReviewRow], known: Known) -> dict[str, int]:
    counts = {"reviews_relabelled": 0, "reviews_unchanged": 0}
    new: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for row in rows:
        if normalise_text(row.text) in seen:
            continue  # the same review twice, with the same label
        seen.add(normalise_text(row.text))
        labels = known.reviews.get(row.text)
        if labels is None:
            new.append((row.text, row.label, row.language))
        elif labels == {row.label}:
            counts["reviews_unchanged"] += 1
        else:
            store.examples.relabel(Task.SENTIMENT, row.text, ExampleSource.SEED, row.label)
            counts["reviews_relabelled"] += 1
    counts["reviews_added"] = store.examples.add_many(Task.SENTIMENT, new, ExampleSource.SEED)
    return counts


def _read_all(paths: Sequence[Path]) -> tuple[list[Sheet], list[str], list[Problem]]:
    sheets: list[Sheet] = []
    notes: list[str] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            found, ignored = read(Path(path))
        except LayoutError as error:
            problems.append(Problem(error.where, error.message))
            continue
        sheets += found
        notes += ignored
    return sheets, notes, problems


def _clashes(faq: list[FaqRow], reviews: list[ReviewRow], known: Known,
             skip: bool) -> tuple[list[FaqRow], list[ReviewRow], list[Problem]]:
    """The rows together and against the database; with `skip`, the rows left once every clashing one is dropped."""
    problems: list[Problem] = []
    while True:  # dropping a bad row can orphan others (phrasings whose entry row was bad): check again
        bad_faq, bad_reviews = check_faq(faq, known), check_reviews(reviews)
        problems += [Problem(str(faq[i].place), message, faq[i].place) for i, message in bad_faq.items()]
        problems += [Problem(str(reviews[i].place), message, reviews[i].place) for i, message in bad_reviews.items()]
        if not skip or not (bad_faq or bad_reviews):
            return faq, reviews, problems
        faq = [row for i, row in enumerate(faq) if i not in bad_faq]
        reviews = [row for i, row in enumerate(reviews) if i not in bad_reviews]


def import_knowledge(store: Store, paths: Sequence[Path], languages: Sequence[str], *, skip_bad_rows: bool = False,
                     refresh_index: Callable[[], None] | None = None) -> ImportReport:
    """Check the files together and write them in one transaction, or nothing; say what was done.

    `languages` are the shop's (settings.shop.languages). `refresh_index` is called after a write that
    changed the FAQ (a running bot's Services.request_index_refresh); the command line has none.
    """
    sheets, notes, unreadable = _read_all(paths)
    if unreadable:  # a file that is not this layout cannot be skipped row by row
        return ImportReport(written=False, problems=tuple(unreadable))
    faq, reviews, problems = _rows(sheets, languages)
    order = {sheet.name: index for index, sheet in enumerate(sheets)}
    with store.transaction():
        known = Known.read(store)
        faq, reviews, clashes = _clashes(faq, reviews, known, skip_bad_rows)
        problems = sorted(problems + clashes, key=lambda problem: (order[problem.place.sheet], problem.place.number)
                          if problem.place else (-1, 0))
        if problems and not skip_bad_rows:
            return ImportReport(written=False, problems=tuple(problems))
        counts = {**_write_faq(store, faq, known), **_write_reviews(store, reviews, known)}
    report = ImportReport(written=True, problems=tuple(problems), notes=tuple(notes), **counts)
    if refresh_index is not None and (report.entries_added or report.entries_updated or report.phrasings_added):
        refresh_index()
    return report
