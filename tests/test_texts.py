"""The Chinese and English string tables say the same things: the same keys, the same {placeholders} per key."""

from __future__ import annotations

import importlib
import pkgutil
import string

import pytest

import shop.report
import shop.texts
from shop.texts import commands, customer, faq, owner, staff
from vocabulary import RunStatus, RunTrigger

TABLES = {
    "customer.CUSTOMER": customer.CUSTOMER,
    "staff.STAFF": staff.STAFF,
    "owner.OWNER": owner.OWNER,
    "owner.LEARNING": owner.LEARNING,
    "owner.ESTIMATE": owner.ESTIMATE,
    "owner.CHART": owner.CHART,
    "commands.COMMANDS": commands.COMMANDS,
    "faq.FAQ": faq.FAQ,
}


def placeholders(text: str) -> set[str]:
    """The field names a str.format template fills ("{n}" and "{n:.1%}" are both "n")."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


@pytest.mark.parametrize("name", TABLES)
def test_zh_and_en_have_the_same_keys(name: str) -> None:
    table = TABLES[name]
    assert set(table) == {"zh", "en"}
    assert sorted(table["zh"].keys() - table["en"].keys()) == [], "only in zh"
    assert sorted(table["en"].keys() - table["zh"].keys()) == [], "only in en"


@pytest.mark.parametrize("name", TABLES)
def test_zh_and_en_fill_the_same_placeholders(name: str) -> None:
    table = TABLES[name]
    differ = {key: (placeholders(table["zh"][key]), placeholders(table["en"][key]))
              for key in table["zh"].keys() & table["en"].keys()
              if placeholders(table["zh"][key]) != placeholders(table["en"][key])}
    assert differ == {}
    assert all(text.strip() for language in table.values() for text in language.values())


def test_a_mismatch_would_be_found() -> None:
    assert placeholders("您好，{shop}！共 {n:.1%} 条") == {"shop", "n"}
    assert placeholders("Hi {shop}") != placeholders("您好")


def test_every_string_table_is_checked_and_lives_in_shop_texts() -> None:
    found = {}
    for package in (shop.texts, shop.report):
        for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            for name, value in vars(importlib.import_module(module.name)).items():
                if isinstance(value, dict) and set(value) == {"zh", "en"}:
                    found[f"{module.name}.{name}"] = value
    assert sorted(found) == sorted(f"shop.texts.{name}" for name in TABLES)


def test_the_learning_texts_name_every_trigger_and_finished_status() -> None:
    for table in owner.LEARNING.values():
        assert set(RunTrigger) <= table.keys()
        assert {f"status_{status}" for status in RunStatus} <= table.keys()
