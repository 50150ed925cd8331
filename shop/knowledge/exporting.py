"""`shopbot export --kind faq|reviews|shop`: the shop's FAQ and its own labelled reviews in the layout
`shopbot import` reads, so export → edit in Excel → import round-trips.

Exported are the shop's own texts (source "seed": the demo and what was imported): each entry with
its seed phrasings, and the seed reviews. What staff taught from customers' messages is training
data, not the shop's sheet (`shopbot export --kind examples` writes it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from shop.knowledge.layout import FAQ, REVIEWS, Cell, write
from storage.store import Store
from storage.text import normalise_text
from vocabulary import ExampleSource, Task

KINDS = {FAQ: (FAQ,), REVIEWS: (REVIEWS,), "shop": (FAQ, REVIEWS)}  # "shop": both, as the sheets of one workbook


def faq_rows(store: Store) -> list[dict[str, Cell]]:
    """One row per entry and language; its phrasings (other than its question) in one cell."""
    phrasings: dict[tuple[str, str], dict[str, str]] = {}  # (key, language) -> normalised -> text, in order
    for example in store.examples.all(task=Task.FAQ):
        if example.source == ExampleSource.SEED:
            phrasings.setdefault((example.label, example.language), {}).setdefault(normalise_text(example.text),
                                                                                    example.text)
    rows: list[dict[str, Cell]] = []
    for entry in store.faq.all():
        own = phrasings.get((entry.key, entry.language), {})
        rows.append({"key": entry.key, "topic": entry.topic, "language": entry.language, "question": entry.question,
                     "answer": entry.answer,
                     "phrasings": [text for norm, text in own.items() if norm != normalise_text(entry.question)]})
    return rows


def review_rows(store: Store) -> list[dict[str, Cell]]:
    """The shop's own labelled reviews, in the order they were added."""
    return [{"text": example.text, "label": example.label, "language": example.language}
            for example in store.examples.all(task=Task.SENTIMENT) if example.source == ExampleSource.SEED]


def export_knowledge(store: Store, kind: str, fmt: str, out: Path | TextIO) -> dict[str, int]:
    """Write `kind` (faq, reviews, or shop: both, as an xlsx workbook) to `out`; return the rows per kind."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if len(KINDS[kind]) > 1 and fmt != "xlsx":
        raise ValueError(f"--kind {kind} writes an .xlsx workbook (a sheet per kind); a {fmt} file holds one kind")
    readers = {FAQ: faq_rows, REVIEWS: review_rows}
    tables: dict[str, Sequence[dict[str, Cell]]] = {name: readers[name](store) for name in KINDS[kind]}
    write(out, fmt, tables)
    return {name: len(rows) for name, rows in tables.items()}
