"""Tests for storage/export.py."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from storage.export import export
from storage.store import Store


def corrected_store(store: Store) -> Store:
    """Two corrected reviews (one Chinese) in a store."""
    for customer, text, label in [(1, "奶茶太甜了，不好喝", "negative"), (2, "Lovely, thanks!", "positive")]:
        store.customers.touch(customer)
        message = store.messages.add(customer, customer, 1, text)
        decision = store.decisions.add(message.id, "review", "neutral", 0.5, "acknowledged")
        store.corrections.add(decision.id, 9, "label", new_label=label)
    return store


def test_export_examples_jsonl_to_path(fresh_store: Store, tmp_path: Path) -> None:
    corrected_store(fresh_store)
    out = tmp_path / "examples.jsonl"
    assert export(fresh_store, "examples", "jsonl", out) == 2
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["text"] == "奶茶太甜了，不好喝"
    assert "奶茶" in out.read_text(encoding="utf-8")  # written as UTF-8, not \\u-escaped
    assert {r["label"] for r in rows} == {"negative", "positive"}
    assert set(rows[0]) == {"id", "task", "text", "label", "language", "source", "split", "decision_id", "created_at"}


def test_export_corrections_csv_to_stream(fresh_store: Store) -> None:
    corrected_store(fresh_store)
    buffer = io.StringIO()
    assert export(fresh_store, "corrections", "csv", buffer) == 2
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert [(r["kind"], r["old_label"], r["new_label"]) for r in rows] == [("label", "neutral", "negative"),
                                                                           ("label", "neutral", "positive")]
    assert rows[0]["answer_text"] == ""  # None is an empty cell


def test_export_csv_round_trips_awkward_text(fresh_store: Store, tmp_path: Path) -> None:
    text = 'He said "great",\nthen left\ttwice'
    fresh_store.examples.add("sentiment", text, "positive", "en", "seed")
    out = tmp_path / "examples.csv"
    assert export(fresh_store, "examples", "csv", out) == 1
    with out.open(encoding="utf-8", newline="") as handle:
        assert next(csv.DictReader(handle))["text"] == text


def test_export_empty_writes_header_only(fresh_store: Store) -> None:
    buffer = io.StringIO()
    assert export(fresh_store, "corrections", "csv", buffer) == 0
    assert buffer.getvalue().strip() == "id,decision_id,staff_id,kind,old_label,new_label,answer_text,created_at"


@pytest.mark.parametrize(("kind", "fmt"), [("messages", "csv"), ("examples", "xlsx")])
def test_export_rejects_unknown_kind_or_format(fresh_store: Store, kind: str, fmt: str) -> None:
    with pytest.raises(ValueError):
        export(fresh_store, kind, fmt, io.StringIO())  # type: ignore[arg-type]
