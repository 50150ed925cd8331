"""`shopbot import` / `export --kind faq|reviews|shop` (shop/knowledge): the layout in each format, every kind of
bad row with the row number the owner sees, --skip-bad-rows, idempotence, round trips and the demo's shop.xlsx."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from cli import main
from shop.knowledge.exporting import export_knowledge
from shop.knowledge.importing import ImportReport, import_knowledge
from storage.seed import load_demo
from storage.store import Store

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo"
LANGUAGES = ("zh", "en")
FAQ_HEADER = ["key", "topic", "language", "question", "answer", "phrasings"]
REVIEW_HEADER = ["text", "label", "language"]
FAQ = [
    FAQ_HEADER,
    ["opening-hours", "hours", "en", "When are you open?", "10:00-22:00 every day.", "what time do u open\nhours pls"],
    ["opening-hours", "hours", "zh", "几点开门？", "每天 10:00-22:00。", "营业时间 | 几点关门"],
    ["opening-hours", "", "zh", "", "", "周末开吗"],  # one more phrasing on its own row
    ["delivery", "orders", "en", "Do you deliver?", "Yes, within 3 km.", ""],
]
REVIEWS = [REVIEW_HEADER, ["珍珠太硬了", "negative", ""], ["Lovely tea!", "Positive", "en"], ["还行", "neutral", "zh"]]


def write_xlsx(path: Path, sheets: dict[str, Sequence[Sequence[Any]]]) -> Path:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    workbook.save(path)
    return path


def write_csv(path: Path, rows: Sequence[Sequence[Any]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def write_jsonl(path: Path, rows: Sequence[Sequence[Any]]) -> Path:
    header, *body = rows
    path.write_text("".join(json.dumps(dict(zip(header, row)), ensure_ascii=False) + "\n" for row in body),
                    encoding="utf-8")
    return path


def content(store: Store) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """The FAQ entries and labelled examples, without ids and times."""
    entries = sorted((e.key, e.language, e.question, e.answer, e.topic, e.source) for e in store.faq.all())
    examples = sorted((x.task, x.text, x.label, x.language, x.source, x.split) for x in store.examples.all())
    return entries, examples


def run(store: Store, *paths: Path, skip: bool = False) -> ImportReport:
    return import_knowledge(store, list(paths), LANGUAGES, skip_bad_rows=skip)


def assert_small_shop(store: Store) -> None:
    assert [(e.key, e.language, e.topic) for e in store.faq.all()] == [
        ("delivery", "en", "orders"), ("opening-hours", "en", "hours"), ("opening-hours", "zh", "hours")]
    phrasings = {(x.text, x.label, x.language) for x in store.examples.all(task="faq")}
    assert phrasings == {
        ("When are you open?", "opening-hours", "en"), ("what time do u open", "opening-hours", "en"),
        ("hours pls", "opening-hours", "en"), ("几点开门？", "opening-hours", "zh"), ("营业时间", "opening-hours", "zh"),
        ("几点关门", "opening-hours", "zh"), ("周末开吗", "opening-hours", "zh"), ("Do you deliver?", "delivery", "en")}
    reviews = {(x.text, x.label, x.language, x.source) for x in store.examples.all(task="sentiment")}
    assert reviews == {("珍珠太硬了", "negative", "zh", "seed"), ("Lovely tea!", "positive", "en", "seed"),
                       ("还行", "neutral", "zh", "seed")}


# ---------------------------------------------------------------------- good files
def test_a_workbook_with_faq_and_reviews_sheets(fresh_store: Store, tmp_path: Path) -> None:
    report = run(fresh_store, write_xlsx(tmp_path / "shop.xlsx", {"faq": FAQ, "reviews": REVIEWS}))
    assert report.written and report.problems == ()
    assert (report.entries_added, report.phrasings_added, report.reviews_added) == (3, 8, 3)
    assert report.changed == 14 and report.lines()[-1].startswith("14 changed: FAQ entries 3 added")
    assert_small_shop(fresh_store)


def test_csv_files_one_per_kind(fresh_store: Store, tmp_path: Path) -> None:
    faq = write_csv(tmp_path / "faq.csv", FAQ, encoding="utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    reviews = write_csv(tmp_path / "my reviews.csv", REVIEWS, encoding="gb18030")  # a Chinese Windows' plain CSV
    assert run(fresh_store, faq, reviews).written
    assert_small_shop(fresh_store)


def test_jsonl_files_phrasings_as_a_list(fresh_store: Store, tmp_path: Path) -> None:
    faq = [FAQ_HEADER, *([*row[:5], row[5].replace(" | ", "\n").split("\n") if row[5] else []] for row in FAQ[1:])]
    assert run(fresh_store, write_jsonl(tmp_path / "faq.jsonl", faq),
               write_jsonl(tmp_path / "reviews.jsonl", REVIEWS)).written
    assert_small_shop(fresh_store)


def test_a_single_sheet_with_its_own_name_and_extra_columns(fresh_store: Store, tmp_path: Path) -> None:
    rows = [["Text", "Label", "notes"], ["Nice.", "positive", "from the old system"]]
    report = run(fresh_store, write_xlsx(tmp_path / "book.xlsx", {"Sheet1": rows, "Notes": [["anything"]]}))
    assert report.reviews_added == 1 and report.notes == ("book.xlsx, sheet Notes: ignored (neither an FAQ nor a reviews table)",)


# ---------------------------------------------------------------------- bad rows
BAD_FAQ = [
    FAQ_HEADER,
    ["opening-hours", "hours", "en", "When are you open?", "10:00-22:00.", "hours pls"],  # row 2: good
    ["delivery", "", "en", "Do you deliver?", "", ""],  # row 3
    ["pickup", "", "en", "", "Order ahead in the app.", ""],  # row 4
    [None, None, None, None, None, None],  # row 5: empty, skipped silently
    ["parking", "", "fr", "Parking?", "Yes.", ""],  # row 6
    ["wifi", "", "", "Wifi?", "Yes.", ""],  # row 7
    ["opening-hours", "hours", "en", "When do you open?", "10:00-22:00.", ""],  # row 8: a second, different entry
    ["menu", "", "en", "What's on the menu?", "Tea.", "hours pls"],  # row 9: row 2's phrasing
    ["Opening Hours", "", "en", "Open?", "Yes.", ""],  # row 10
    ["seating", "", "zh", "", "", "有座位吗"],  # row 11: phrasings, but no entry anywhere
    ["opening-hours", "", "en", "When are you open?", "10:00-22:00.", "what time"],  # row 12: the same entry again: fine
]
BAD_REVIEWS = [
    REVIEW_HEADER,
    ["Great tea", "positive", ""],
    ["Too sweet", "great", ""],  # row 3
    ["", "negative", ""],  # row 4
    ["Meh", "", ""],  # row 5
    ["不错", "positive", "ja"],  # row 6
    [],  # row 7
    ["great tea ", "negative", ""],  # row 8: row 2's review, labelled otherwise
]
EXPECTED = [
    "shop.xlsx, sheet faq, row 3: missing answer",
    "shop.xlsx, sheet faq, row 4: missing question",
    "shop.xlsx, sheet faq, row 6: unknown language 'fr' (this shop's languages: zh, en)",
    "shop.xlsx, sheet faq, row 7: missing language (zh or en)",
    "shop.xlsx, sheet faq, row 8: duplicate key+language: opening-hours (en) has a different question, answer or topic in row 2",
    "shop.xlsx, sheet faq, row 9: phrasing 'hours pls' is already used by entry opening-hours (row 2)",
    "shop.xlsx, sheet faq, row 10: key 'Opening Hours' may hold only letters, digits, - and _ (at most 40), like opening-hours",
    "shop.xlsx, sheet faq, row 11: phrasings for seating (zh), but no row gives its question and answer",
    "shop.xlsx, sheet reviews, row 3: unknown label 'great' (use positive, neutral, negative)",
    "shop.xlsx, sheet reviews, row 4: missing text",
    "shop.xlsx, sheet reviews, row 5: missing label (positive, neutral, negative)",
    "shop.xlsx, sheet reviews, row 6: unknown language 'ja' (this shop's languages: zh, en)",
    "shop.xlsx, sheet reviews, row 8: the same review is labelled positive in row 2",
]


def test_every_kind_of_bad_row_is_named_by_its_row_and_nothing_is_written(fresh_store: Store, tmp_path: Path) -> None:
    report = run(fresh_store, write_xlsx(tmp_path / "shop.xlsx", {"faq": BAD_FAQ, "reviews": BAD_REVIEWS}))
    assert not report.written
    assert [str(problem) for problem in report.problems] == EXPECTED
    assert report.lines()[-1] == ("refused: 13 problem(s), nothing was written "
                                  "(fix them, or write the good rows with --skip-bad-rows)")
    assert content(fresh_store) == ([], [])


def test_the_same_rows_in_csv_have_the_same_row_numbers(fresh_store: Store, tmp_path: Path) -> None:
    faq = write_csv(tmp_path / "faq.csv", [[cell or "" for cell in row] for row in BAD_FAQ])
    reviews = write_csv(tmp_path / "reviews.csv", BAD_REVIEWS)
    report = run(fresh_store, faq, reviews)
    expected = [line.replace("shop.xlsx, sheet faq", "faq.csv").replace("shop.xlsx, sheet reviews", "reviews.csv")
                for line in EXPECTED]
    assert [str(problem) for problem in report.problems] == expected


def test_a_csv_cell_with_line_breaks_keeps_the_row_numbers(fresh_store: Store, tmp_path: Path) -> None:
    rows = [FAQ_HEADER, ["a", "", "en", "Q?", "A.", "one\ntwo\nthree"], ["b", "", "en", "Q2?", "", ""]]
    report = run(fresh_store, write_csv(tmp_path / "faq.csv", rows))
    assert [str(problem) for problem in report.problems] == ["faq.csv, row 3: missing answer"]


def test_jsonl_lines_are_numbered_and_bad_json_is_a_bad_row(fresh_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_text('{"text": "Nice", "label": "positive"}\n\n{"text": "Bad", \n["a list"]\n{"text": "x", "label": "meh"}\n',
                    encoding="utf-8")
    report = run(fresh_store, path)
    assert [str(problem) for problem in report.problems] == [
        "reviews.jsonl, line 3: not valid JSON (Expecting property name enclosed in double quotes)",
        "reviews.jsonl, line 4: not a JSON object",
        "reviews.jsonl, line 5: unknown label 'meh' (use positive, neutral, negative)"]


def test_a_phrasing_another_entry_has_in_the_database(fresh_store: Store, tmp_path: Path) -> None:
    run(fresh_store, write_xlsx(tmp_path / "shop.xlsx", {"faq": FAQ}))
    rows = [FAQ_HEADER, ["hours-2", "", "en", "Open late?", "Till 22:00.", "Hours  PLS"]]  # the same, normalised
    report = run(fresh_store, write_csv(tmp_path / "more.csv", rows))
    assert [str(problem) for problem in report.problems] == [
        "more.csv, row 2: phrasing 'Hours  PLS' is already used by entry opening-hours (in the database)"]
    rows = [FAQ_HEADER, ["opening-hours", "", "en", "", "", "open on sunday?"]]  # phrasings for a stored entry: fine
    assert run(fresh_store, write_csv(tmp_path / "more.csv", rows)).phrasings_added == 1


def test_a_key_retired_with_faq_is_not_imported_again_and_its_wordings_are_free(fresh_store: Store,
                                                                               tmp_path: Path) -> None:
    run(fresh_store, write_xlsx(tmp_path / "shop.xlsx", {"faq": FAQ}))
    fresh_store.faq.retire("delivery", changed_by=1)
    report = run(fresh_store, write_xlsx(tmp_path / "shop.xlsx", {"faq": FAQ}))
    assert [str(problem) for problem in report.problems] == [
        ("shop.xlsx, sheet faq, row 5: entry delivery was retired with /faq, and a retired key is not reused: "
        "give it a new key")]
    rows = [FAQ_HEADER, ["delivery-2", "orders", "en", "Do you deliver?", "Yes, within 5 km now.", ""]]
    assert run(fresh_store, write_csv(tmp_path / "faq.csv", rows)).entries_added == 1  # its question is free again



@pytest.mark.parametrize(("name", "body", "message"), [
    ("faq.csv", "key,language,question\na,en,Q?\n", ("faq.csv: missing column(s) answer (the faq columns: key, topic, "
                                                     "language, question, answer, phrasings; the header is row 1)")),
    ("data.csv", "name,price\ntea,12\n", ("data.csv: neither an FAQ table (columns key, topic, language, question, "
                                         "answer, phrasings) nor a reviews table (text, label, language); the header is row 1")),
    ("reviews.csv", "text,label,text\n", "reviews.csv: column(s) text appear twice in the header"),

    ("shop.xlsx", "not a zip", "shop.xlsx: not an Excel workbook (.xlsx) (File is not a zip file)"),
    ("shop.txt", "", "shop.txt: unknown file type; use .xlsx, .csv, .tsv, .jsonl"),
])
def test_a_file_that_is_not_the_layout_is_refused_whole(fresh_store: Store, tmp_path: Path, name: str, body: str,
                                                        message: str) -> None:
    (tmp_path / name).write_text(body, encoding="utf-8")
    for skip in (False, True):
        report = run(fresh_store, tmp_path / name, skip=skip)
        assert not report.written and [str(problem) for problem in report.problems] == [message]
        assert report.lines()[-1] == "refused: 1 problem(s), nothing was written"


# ---------------------------------------------------------------------- --skip-bad-rows
def test_skip_bad_rows_writes_the_good_rows_and_says_what_it_skipped(fresh_store: Store, tmp_path: Path) -> None:
    faq = [*BAD_FAQ, ["delivery", "", "en", "", "", "u deliver?"]]  # row 13: row 3 (its entry) is skipped, so is it
    report = run(fresh_store, write_xlsx(tmp_path / "shop.xlsx", {"faq": faq, "reviews": BAD_REVIEWS}), skip=True)
    assert report.written
    skipped = [str(problem) for problem in report.problems]
    assert skipped == [*EXPECTED[:8], ("shop.xlsx, sheet faq, row 13: phrasings for delivery (en), but no row gives its "
                                      "question and answer"), *EXPECTED[8:]]
    lines = report.lines()
    assert lines[0] == "skipped 14 bad row(s):" and lines[1] == f"  {EXPECTED[0]}"
    assert [(e.key, e.language) for e in fresh_store.faq.all()] == [("opening-hours", "en")]
    assert {x.text for x in fresh_store.examples.all(task="faq")} == {"When are you open?", "hours pls", "what time"}
    assert [(x.text, x.label) for x in fresh_store.examples.all(task="sentiment")] == [("Great tea", "positive")]


# ---------------------------------------------------------------------- idempotence, updates
def test_importing_the_same_file_again_changes_nothing(file_store: Store, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "shop.xlsx", {"faq": FAQ, "reviews": REVIEWS})
    run(file_store, path)
    before = (file_store.faq.all(), file_store.examples.all())
    refreshed: list[bool] = []
    again = import_knowledge(file_store, [path], LANGUAGES, refresh_index=lambda: refreshed.append(True))
    assert again.changed == 0 and again.lines() == [
        ("0 changed: FAQ entries 0 added, 0 updated, 3 unchanged; phrasings 0 added; reviews 0 added, 0 relabelled, "
        "3 unchanged")]
    assert (file_store.faq.all(), file_store.examples.all()) == before  # the same updated_at, no new example
    assert refreshed == []


def test_an_edited_answer_updates_one_entry_and_a_new_label_relabels(fresh_store: Store, tmp_path: Path) -> None:
    run(fresh_store, write_xlsx(tmp_path / "shop.xlsx", {"faq": FAQ, "reviews": REVIEWS}))
    before = {(e.key, e.language): e for e in fresh_store.faq.all()}
    faq = [row[:] for row in FAQ]
    faq[1][4] = "Holiday week: 12:00-20:00."
    reviews = [row[:] for row in REVIEWS]
    reviews[3][1] = "negative"
    refreshed: list[bool] = []
    report = import_knowledge(fresh_store, [write_xlsx(tmp_path / "shop.xlsx", {"faq": faq, "reviews": reviews})],
                              LANGUAGES, refresh_index=lambda: refreshed.append(True))
    assert (report.entries_updated, report.entries_unchanged, report.reviews_relabelled, report.changed) == (1, 2, 1, 2)
    after = {(e.key, e.language): e for e in fresh_store.faq.all()}
    assert after[("opening-hours", "en")].answer == "Holiday week: 12:00-20:00."
    assert after[("opening-hours", "en")].created_at == before[("opening-hours", "en")].created_at
    assert after[("opening-hours", "zh")] == before[("opening-hours", "zh")]
    assert {x.text: x.label for x in fresh_store.examples.all(task="sentiment")}["还行"] == "negative"
    assert refreshed == [True]


def test_an_entry_without_a_topic_takes_its_keys_other_one(fresh_store: Store, tmp_path: Path) -> None:
    rows = [FAQ_HEADER, ["pets", "", "en", "Dogs ok?", "Yes.", ""], ["pets", "animals", "zh", "能带狗吗", "可以。", ""],
            ["wifi", "", "en", "Wifi?", "Yes.", ""]]
    run(fresh_store, write_csv(tmp_path / "faq.csv", rows))
    assert [(e.key, e.language, e.topic) for e in fresh_store.faq.all()] == [
        ("pets", "en", "animals"), ("pets", "zh", "animals"), ("wifi", "en", "general")]


# ---------------------------------------------------------------------- export and round trips
@pytest.fixture
def demo_store(tmp_path: Path) -> Iterator[Store]:
    """A database file with the demo shop loaded by `shopbot init`'s load_demo."""
    with Store(tmp_path / "demo.db") as store:
        load_demo(store, DEMO)
        yield store


@pytest.mark.parametrize("fmt", ["xlsx", "csv", "jsonl"])
def test_export_then_import_gives_the_same_database(demo_store: Store, fresh_store: Store, tmp_path: Path,
                                                   fmt: str) -> None:
    paths = []
    for kind in ("faq", "reviews"):
        paths.append(tmp_path / f"{kind}.{fmt}")
        export_knowledge(demo_store, kind, fmt, paths[-1])
    report = run(fresh_store, *paths)
    assert report.written and report.problems == () and report.entries_added == 74
    assert content(fresh_store) == content(demo_store)
    assert run(fresh_store, *paths).changed == 0


def test_export_edit_in_excel_import(demo_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "shop.xlsx"
    assert export_knowledge(demo_store, "shop", "xlsx", path) == {"faq": 74, "reviews": 360}
    workbook = openpyxl.load_workbook(path)
    sheet = workbook["faq"]
    row = next(r for r in sheet.iter_rows(min_row=2) if (r[0].value, r[2].value) == ("holiday-hours", "en"))
    row[4].value = "Closed on 1 May."
    row[5].value = f"{row[5].value}\nopen on labour day?"
    workbook["reviews"].append(["=) lovely", "positive", "en"])
    workbook["reviews"].cell(362, 1).data_type = "s"  # text (Excel: '=) lovely), not a formula
    workbook.save(path)
    report = run(demo_store, path)
    assert (report.entries_updated, report.phrasings_added, report.reviews_added, report.changed) == (1, 1, 1, 3)
    assert demo_store.faq.get("holiday-hours", "en").answer == "Closed on 1 May."
    export_knowledge(demo_store, "reviews", "xlsx", tmp_path / "reviews.xlsx")
    assert openpyxl.load_workbook(tmp_path / "reviews.xlsx")["reviews"].cell(362, 1).value == "=) lovely"  # still text
    assert run(demo_store, path).changed == 0


def test_export_writes_only_the_shops_own_texts(demo_store: Store, tmp_path: Path) -> None:
    demo_store.examples.add("faq", "can i park there", "parking", "en", "correction")
    demo_store.examples.add("sentiment", "a customer's review", "positive", "en", "confirmation")
    export_knowledge(demo_store, "faq", "csv", tmp_path / "faq.csv")
    export_knowledge(demo_store, "reviews", "csv", tmp_path / "reviews.csv")
    assert (tmp_path / "faq.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # a BOM: Excel reads the Chinese right
    text = (tmp_path / "faq.csv").read_text(encoding="utf-8-sig") + (tmp_path / "reviews.csv").read_text(encoding="utf-8-sig")
    assert "can i park there" not in text and "a customer's review" not in text


def test_the_demo_shop_xlsx_imports_to_what_load_demo_loads(demo_store: Store, fresh_store: Store) -> None:
    report = run(fresh_store, DEMO / "shop.xlsx")
    assert report.written and report.problems == ()
    assert (report.entries_added, report.phrasings_added, report.reviews_added) == (74, 664, 360)
    assert content(fresh_store) == content(demo_store)


# ---------------------------------------------------------------------- the commands
def test_the_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[shop]\ndemo_data = "{DEMO}"\n[paths]\ndatabase = "{tmp_path / "shop.db"}"\n', encoding="utf-8")
    bad = write_xlsx(tmp_path / "bad.xlsx", {"faq": BAD_FAQ})
    assert main(["--config", str(config), "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.xlsx, sheet faq, row 3: missing answer" in err and "refused: 8 problem(s)" in err
    assert main(["--config", str(config), "import", "--skip-bad-rows", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "skipped 8 bad row(s):" in out and "4 changed: FAQ entries 1 added" in out
    assert main(["--config", str(config), "import", str(DEMO / "shop.xlsx")]) == 0
    assert main(["--config", str(config), "import", str(DEMO / "shop.xlsx")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("0 changed:")
    out_path = tmp_path / "mine.xlsx"
    assert main(["--config", str(config), "export", "--kind", "shop", "--out", str(out_path)]) == 0
    assert "exported 74 faq, 360 reviews to" in capsys.readouterr().err
    assert main(["--config", str(config), "export", "--kind", "shop", "--out", str(tmp_path / "mine.csv")]) == 2
    assert "writes an .xlsx workbook" in capsys.readouterr().err
    assert main(["--config", str(config), "export", "--kind", "examples", "--format", "xlsx", "--out", "-"]) == 2
    assert main(["--config", str(config), "export", "--kind", "faq", "--out", "-"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["key"] == "allergens"
