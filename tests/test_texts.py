"""The Chinese and English string tables say the same things: the same keys, the same {placeholders} per key."""

from __future__ import annotations

import string

import pytest

from shop import report, report_chart, texts

TABLES = {
    "texts.CUSTOMER": texts.CUSTOMER,
    "texts.STAFF": texts.STAFF,
    "texts.OWNER": texts.OWNER,
    "texts.COMMANDS": texts.COMMANDS,
    "report._TEXTS": report._TEXTS,
    "report._ESTIMATE_WORDS": report._ESTIMATE_WORDS,
    "report_chart._CHART": report_chart._CHART,
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
