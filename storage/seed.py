"""Load the demo shop (faq.json + reviews.tsv) into a store, idempotently; the checks an FAQ entry and a
labelled review must pass, shared with `shopbot import` (shop/knowledge)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from storage.db import write_transaction
from storage.store import Store
from storage.text import detect_language
from vocabulary import SENTIMENT_LABELS

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")  # short and ASCII: a key travels in button data (64 bytes)


def key_problem(key: str) -> str | None:
    """What is wrong with an FAQ key, or None."""
    if not key:
        return "missing key"
    if not _KEY.fullmatch(key):
        return f"key {key!r} may hold only letters, digits, - and _ (at most 40), like opening-hours"
    return None


def faq_problem(question: str, answer: str) -> str | None:
    """What is missing from an FAQ entry in one language, or None."""
    if not question:
        return "missing question"
    if not answer:
        return "missing answer"
    return None


def review_problem(text: str, label: str) -> str | None:
    """What is wrong with a labelled review, or None."""
    if not text:
        return "missing text"
    if not label:
        return f"missing label ({', '.join(SENTIMENT_LABELS)})"
    if label not in SENTIMENT_LABELS:
        return f"unknown label {label!r} (use {', '.join(SENTIMENT_LABELS)})"
    return None


def _read_faq(path: Path) -> list[dict[str, Any]]:
    entries = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of FAQ entries")
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: entry {number} is not a JSON object")
        if problem := key_problem(str(entry.get("key") or "")) or (None if entry.get("topic") else "missing topic"):
            raise ValueError(f"{path}: entry {number}: {problem}")
        for language, content in entry.items():
            if language in ("key", "topic"):
                continue
            if not isinstance(content, dict):
                raise ValueError(f"{path}: entry {entry['key']!r} language {language!r} is not a JSON object")
            if problem := faq_problem(str(content.get("question") or ""), str(content.get("answer") or "")):
                raise ValueError(f"{path}: entry {entry['key']!r} language {language!r}: {problem}")
    return entries


def _read_reviews(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: needs a header line 'text<TAB>label'")
        rows = []
        for line, row in enumerate(reader, start=2):
            text, label = (row["text"] or "").strip(), (row["label"] or "").strip()
            if problem := review_problem(text, label):
                raise ValueError(f"{path}:{line}: {problem}")
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
