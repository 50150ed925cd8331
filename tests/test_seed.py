"""Tests for storage/seed.py with the tiny tests/data/mini_shop fixture."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from storage.seed import load_demo
from storage.store import Store

MINI_SHOP = Path(__file__).parent / "data" / "mini_shop"


def test_load_demo_loads_faq_phrasings_and_reviews(fresh_store: Store) -> None:
    counts = load_demo(fresh_store, MINI_SHOP)
    assert counts == {"faq_entries": 6, "faq_examples": 12, "sentiment_examples": 12}
    assert fresh_store.faq.keys() == ["delivery", "opening_hours", "price_milk_tea"]
    assert fresh_store.faq.get("price_milk_tea", "en").topic == "prices"
    faq_examples = fresh_store.examples.all(task="faq")
    assert {(e.text, e.label, e.language) for e in faq_examples} >= {
        ("你们几点开门？", "opening_hours", "zh"), ("how late are you open today", "opening_hours", "en")}
    reviews = fresh_store.examples.all(task="sentiment")
    assert {e.label for e in reviews} == {"positive", "neutral", "negative"}
    assert all(e.source == "seed" for e in faq_examples + reviews)
    assert {e.language for e in reviews} == {"zh", "en"}


def test_load_demo_twice_adds_nothing(file_store: Store) -> None:
    load_demo(file_store, MINI_SHOP)
    before = (file_store.faq.all(), file_store.examples.all())
    assert load_demo(file_store, MINI_SHOP) == {"faq_entries": 0, "faq_examples": 0, "sentiment_examples": 0}
    assert (file_store.faq.all(), file_store.examples.all()) == before


def test_load_demo_adds_only_new_rows(fresh_store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    shutil.copytree(MINI_SHOP, folder)
    load_demo(fresh_store, folder)
    with (folder / "reviews.tsv").open("a", encoding="utf-8") as handle:
        handle.write("New favourite shop.\tpositive\n")
    assert load_demo(fresh_store, folder) == {"faq_entries": 0, "faq_examples": 0, "sentiment_examples": 1}


def test_load_demo_rejects_bad_labels(fresh_store: Store, tmp_path: Path) -> None:
    shutil.copytree(MINI_SHOP, tmp_path / "shop")
    (tmp_path / "shop" / "reviews.tsv").write_text("text\tlabel\nnice\tgreat\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"reviews.tsv:2"):
        load_demo(fresh_store, tmp_path / "shop")
    assert fresh_store.faq.all() == []  # nothing half-loaded
