"""Load the demo shop (faq.json + reviews.tsv) into a store, idempotently."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from storage.db import write_transaction
from storage.store import Store
from storage.text import detect_language
from vocabulary import SENTIMENT_LABELS


def _read_faq(path: Path) -> list[dict[str, Any]]:
    entries = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of FAQ entries")
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not entry.get("key") or not entry.get("topic"):
            raise ValueError(f"{path}: entry {number} needs a non-empty 'key' and 'topic'")
        for language, content in entry.items():
            if language in ("key", "topic"):
                continue
            if not isinstance(content, dict) or not content.get("question") or not content.get("answer"):
                raise ValueError(f"{path}: entry {entry['key']!r} language {language!r} needs question and answer")
    return entries


def _read_reviews(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: needs a header line 'text<TAB>label'")
        rows = []
        for line, row in enumerate(reader, start=2):
            text, label = (row["text"] or "").strip(), (row["label"] or "").strip()
            if label not in SENTIMENT_LABELS or not text:
                raise ValueError(f"{path}:{line}: needs a text and a label in {', '.join(SENTIMENT_LABELS)}")
            rows.append((text, label))
    return rows


def load_demo(store: Store, folder: Path) -> dict[str, int]:
    """Load FAQ entries, FAQ phrasings and reviews with source=seed; return how many rows were added."""
    folder = Path(folder)
    entries = _read_faq(folder / "faq.json")
    reviews = _read_reviews(folder / "reviews.tsv")
    with write_transaction(store.db):
        existing_entries = {(e.key, e.language) for e in store.faq.all(include_retired=True)}
        seen = {task: store.examples.texts(task, "seed") for task in ("faq", "sentiment")}
        added_entries = 0
        faq_rows: list[tuple[str, str, str]] = []
        for entry in entries:
            for language, content in entry.items():
                if language in ("key", "topic"):
                    continue
                if (entry["key"], language) not in existing_entries:
                    store.faq.upsert(entry["key"], language, content["question"], content["answer"],
                                     entry["topic"], "seed")
                    added_entries += 1
                for text in [content["question"], *content.get("phrasings", [])]:
                    if text not in seen["faq"]:
                        seen["faq"].add(text)
                        faq_rows.append((text, entry["key"], language))
        review_rows = []
        for text, label in reviews:
            if text not in seen["sentiment"]:
                seen["sentiment"].add(text)
                review_rows.append((text, label, detect_language(text)))
        return {
            "faq_entries": added_entries,
            "faq_examples": store.examples.add_many("faq", faq_rows, "seed"),
            "sentiment_examples": store.examples.add_many("sentiment", review_rows, "seed"),
        }
