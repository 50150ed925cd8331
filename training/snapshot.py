"""Freeze the labelled examples into datasets with a stable split and a content-hash id.

Seed examples and staff feedback are merged per task by normalised text: staff feedback
(confirmations, corrections, typed answers) overrides the seed label, and the latest feedback
wins. The split comes from a hash of the text (storage.text.stable_split), so the test set does
not move between weeks. The snapshot id is a hash of everything that goes into training.

The bot takes the snapshot and hands it to the trainer (`training.backends`): nothing here imports
torch or `datasets` until a trainer asks for `Snapshot.dataset()`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from storage.records import SPLITS
from storage.store import Store
from storage.text import normalise_text
from vocabulary import CORRECTION_SOURCES, TASKS, ExampleSource, Task

if TYPE_CHECKING:  # `datasets` (which imports torch) is imported by `Snapshot.dataset()`, in a trainer only
    from datasets import Dataset

# Which label wins when one text has several (then the newest): a customer's did-you-mean pick is the weakest.
_PRIORITY: dict[str, int] = {ExampleSource.CUSTOMER: 0, ExampleSource.SEED: 1, ExampleSource.CONFIRMATION: 2,
                              ExampleSource.STAFF_ANSWER: 3, ExampleSource.CORRECTION: 3}


@dataclass(frozen=True)
class Row:
    """One training example after merging: text, label, language, split, source."""

    text: str
    label: str
    language: str
    split: str
    source: str


@dataclass(frozen=True)
class Snapshot:
    """All rows per task, the FAQ canonical questions (always indexed), and the id."""

    rows: dict[str, tuple[Row, ...]]
    faq_anchors: tuple[tuple[str, str], ...]  # (canonical question, key)
    id: str
    counts: dict = field(default_factory=dict)

    def pairs(self, task: str, split: str) -> list[tuple[str, str]]:
        """(text, label) pairs of one task and split."""
        return [(r.text, r.label) for r in self.rows[task] if r.split == split]

    def languages(self, task: str, split: str) -> list[str]:
        """Languages aligned with pairs(task, split)."""
        return [r.language for r in self.rows[task] if r.split == split]

    def regression_set(self, task: str) -> list[tuple[str, str]]:
        """Past staff corrections of this task: a candidate must not get these more wrong than the active one."""
        return [(r.text, r.label) for r in self.rows[task] if r.source in CORRECTION_SOURCES]

    def dataset(self, task: str, split: str) -> Dataset:
        """The rows of one task and split as a `datasets.Dataset` (text, label, language, source)."""
        from datasets import Dataset

        rows = [r for r in self.rows[task] if r.split == split]
        return Dataset.from_dict({
            "text": [r.text for r in rows], "label": [r.label for r in rows],
            "language": [r.language for r in rows], "source": [r.source for r in rows],
        })


def take_snapshot(store: Store) -> Snapshot:
    """Read every labelled example from storage and freeze it."""
    rows: dict[str, tuple[Row, ...]] = {}
    gone = {Task.FAQ: store.faq.retired_keys()}  # labels that are no answer any more: retired FAQ entries
    for task in TASKS:
        merged: dict[str, tuple[tuple[int, str], Row]] = {}
        for ex in store.examples.all(task=task):
            key = normalise_text(ex.text)
            if not key or ex.label in gone.get(task, ()):
                continue
            rank = (_PRIORITY.get(ex.source, 0), ex.created_at)
            if key not in merged or rank >= merged[key][0]:
                merged[key] = (rank, Row(ex.text, ex.label, ex.language, ex.split, ex.source))
        rows[task] = tuple(sorted((row for _, row in merged.values()), key=lambda r: (r.split, r.text)))
    anchors = tuple(sorted({(e.question, e.key) for e in store.faq.all()}))
    digest = hashlib.sha256(json.dumps(
        {t: [(r.text, r.label, r.split) for r in rs] for t, rs in rows.items()} | {"anchors": anchors},
        ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    counts = {t: {s: sum(r.split == s for r in rs) for s in SPLITS} for t, rs in rows.items()}
    return Snapshot(rows, anchors, digest[:16], counts)
