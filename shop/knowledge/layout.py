"""The spreadsheet layout of the shop's knowledge, and reading and writing it as .xlsx, .csv (.tsv) or .jsonl.

Two kinds of table, each with a header row: "faq" (key, topic, language, question, answer, phrasings) and
"reviews" (text, label, language). A workbook holds them as sheets; a CSV or JSONL file holds one kind,
told by its name (faq.csv, reviews.jsonl) or else by its columns. Rows are numbered as the owner sees
them: in a spreadsheet or CSV the header is row 1; in JSON Lines each object is a line.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TextIO

FAQ = "faq"
REVIEWS = "reviews"
COLUMNS: dict[str, tuple[str, ...]] = {
    FAQ: ("key", "topic", "language", "question", "answer", "phrasings"),
    REVIEWS: ("text", "label", "language"),
}
REQUIRED: dict[str, tuple[str, ...]] = {FAQ: ("key", "language", "question", "answer"), REVIEWS: ("text", "label")}
READ_SUFFIXES = (".xlsx", ".csv", ".tsv", ".jsonl")
_PHRASING_BREAK = re.compile(r"[\r\n|]+")  # one phrasing per line of the cell, or separated by |
_XLSX_WIDTHS = {"key": 18, "topic": 12, "language": 10, "question": 40, "answer": 60, "phrasings": 50,
                "text": 70, "label": 10}
_WRAPPED = ("question", "answer", "phrasings", "text")

Cell = str | Sequence[str]


class LayoutError(ValueError):
    """A file that cannot be read as this layout at all (not a row's problem): unreadable, or a column missing."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


@dataclass(frozen=True)
class Place:
    """Where a row is, as the owner finds it: "shop.xlsx, sheet faq, row 5", "reviews.jsonl, line 3"."""

    sheet: str
    unit: str
    number: int

    def __str__(self) -> str:
        return f"{self.sheet}, {self.unit} {self.number}"

    def seen_from(self, other: Place) -> str:
        """This place named from another row: just "row 3" within the same sheet."""
        return f"{self.unit} {self.number}" if self.sheet == other.sheet else str(self)


@dataclass(frozen=True)
class Row:
    """One row as the owner wrote it: its number, its cells by column name (stripped text), or why it is unreadable."""

    number: int
    cells: Mapping[str, str]
    problem: str | None = None

    def get(self, column: str) -> str:
        """The cell's text, "" when empty or absent."""
        return self.cells.get(column, "")


@dataclass(frozen=True)
class Sheet:
    """One table of one kind: a workbook's sheet or a whole CSV / JSONL file."""

    name: str  # how the owner finds it: "faq.csv", "shop.xlsx, sheet faq"
    kind: str
    rows: tuple[Row, ...]
    unit: str = "row"  # JSON Lines: "line"

    def place(self, row: Row) -> Place:
        """Where one of this sheet's rows is."""
        return Place(self.name, self.unit, row.number)


def split_phrasings(cell: str) -> list[str]:
    """The phrasings in one cell: one per line, or separated by |."""
    return [part.strip() for part in _PHRASING_BREAK.split(cell) if part.strip()]


def _text(value: Any) -> str:
    """A cell's value as stripped text (numbers as Excel shows them, dates as ISO)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (datetime, date, time)):
        value = value.isoformat()
    if isinstance(value, (list, tuple)):
        value = "\n".join(_text(item) for item in value)
    return str(value).strip()


def _kind(name: str, hint: str, header: Sequence[str], required: bool, note: str = "; the header is row 1") -> str | None:
    """The kind of table a header (lowercased column names) is: by the sheet's or file's name, else its columns.

    None (or LayoutError when `required`) if it is neither; LayoutError if a needed column is missing or twice.
    """
    kind = hint if hint in COLUMNS else FAQ if "key" in header else REVIEWS if {"text", "label"} <= set(header) else None
    if kind is None:
        if required:
            raise LayoutError(name, f"neither an FAQ table (columns {', '.join(COLUMNS[FAQ])}) nor a reviews "
                              f"table ({', '.join(COLUMNS[REVIEWS])}){note}")
        return None
    if missing := [column for column in REQUIRED[kind] if column not in header]:
        raise LayoutError(name, f"missing column(s) {', '.join(missing)} (the {kind} columns: "
                          f"{', '.join(COLUMNS[kind])}{note})")
    if twice := sorted({column for column in header if column and header.count(column) > 1}):
        raise LayoutError(name, f"column(s) {', '.join(twice)} appear twice in the header")
    return kind


def _sheet(name: str, hint: str, records: Iterable[Sequence[Any]], required: bool) -> Sheet | None:
    """A sheet from its rows of cell values, the first the header; None if it is no table of ours."""
    numbered = enumerate(records, start=1)
    first = next(numbered, None)
    header = [_text(value).lower() for value in first[1]] if first else []
    kind = _kind(name, hint, header, required)
    if kind is None:
        return None
    rows = [Row(number, {column: _text(value) for column, value in zip(header, values) if column})
            for number, values in numbered]
    return Sheet(name, kind, tuple(rows))


def _decode(path: Path) -> str:
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):  # Excel's "CSV UTF-8", else a Chinese Windows' "CSV"
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise LayoutError(path.name, "not UTF-8 text (in Excel: Save As, CSV UTF-8)")


def _read_csv(path: Path) -> Sheet:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    records = csv.reader(io.StringIO(_decode(path), newline=""), delimiter=delimiter)
    sheet = _sheet(path.name, path.stem.lower(), records, required=True)
    assert sheet is not None  # required: LayoutError rather than None
    return sheet


def _read_jsonl(path: Path) -> Sheet:
    rows = []
    for number, line in enumerate(_decode(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            rows.append(Row(number, {}, f"not valid JSON ({error.msg})"))
            continue
        if not isinstance(value, dict):
            rows.append(Row(number, {}, "not a JSON object"))
            continue
        rows.append(Row(number, {str(key).strip().lower(): _text(cell) for key, cell in value.items()}))
    header = list(dict.fromkeys(column for row in rows for column in row.cells))
    kind = _kind(path.name, path.stem.lower(), header, required=True, note="")
    assert kind is not None
    return Sheet(path.name, kind, tuple(rows), unit="line")


def _read_xlsx(path: Path) -> tuple[list[Sheet], list[str]]:
    import openpyxl  # deferred: only a workbook needs it

    try:
        workbook = openpyxl.load_workbook(path, data_only=True)  # data_only: a formula's last computed value
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise LayoutError(path.name, f"not an Excel workbook (.xlsx) ({error})") from error
    sheets, ignored = [], []
    for worksheet in workbook.worksheets:
        name = f"{path.name}, sheet {worksheet.title}"
        sheet = _sheet(name, worksheet.title.strip().lower(), worksheet.iter_rows(values_only=True), required=False)
        if sheet is None:
            ignored.append(f"{name}: ignored (neither an FAQ nor a reviews table)")
        else:
            sheets.append(sheet)
    workbook.close()
    if not sheets:
        raise LayoutError(path.name, "no sheet named faq or reviews, nor one with their columns in row 1")
    return sheets, ignored


def read(path: Path) -> tuple[list[Sheet], list[str]]:
    """The tables in one file (.xlsx: each faq / reviews sheet; .csv, .tsv, .jsonl: the file) and notes on the
    sheets it ignored; LayoutError if it has none."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise LayoutError(path.name, f"unknown file type; use {', '.join(READ_SUFFIXES)}")
    if not path.is_file():
        raise LayoutError(str(path), "no such file")
    if suffix == ".xlsx":
        return _read_xlsx(path)
    return [_read_jsonl(path) if suffix == ".jsonl" else _read_csv(path)], []


# ---------------------------------------------------------------------- writing
def _csv_cell(value: Cell) -> str:
    return value if isinstance(value, str) else "\n".join(value)


def _write_xlsx(path: Path, tables: Mapping[str, Sequence[Mapping[str, Cell]]]) -> None:
    import openpyxl
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for kind, rows in tables.items():
        worksheet = workbook.create_sheet(kind)
        columns = COLUMNS[kind]
        for number, column in enumerate(columns, start=1):
            worksheet.cell(1, number, column).font = Font(bold=True)
            worksheet.column_dimensions[get_column_letter(number)].width = _XLSX_WIDTHS[column]
        for row_number, row in enumerate(rows, start=2):
            for number, column in enumerate(columns, start=1):
                text = ILLEGAL_CHARACTERS_RE.sub("", _csv_cell(row.get(column, "")))  # control characters: not in XML
                cell = worksheet.cell(row_number, number, text)
                cell.data_type = "s"  # always text: a review "=)" is not a formula
                if column in _WRAPPED:
                    cell.alignment = Alignment(wrap_text=True, vertical="top")
        worksheet.freeze_panes = "A2"
    workbook.save(path)


def _write_text(handle: TextIO, fmt: str, kind: str, rows: Sequence[Mapping[str, Cell]]) -> None:
    columns = COLUMNS[kind]
    if fmt == "jsonl":
        for row in rows:
            record = {column: row.get(column, "") for column in columns}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    writer = csv.writer(handle)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(column, "")) for column in columns])


def write(out: Path | TextIO, fmt: str, tables: Mapping[str, Sequence[Mapping[str, Cell]]]) -> None:
    """Write tables ({kind: rows}) as one workbook (a sheet per kind), or one kind as CSV / JSON Lines."""
    if fmt == "xlsx":
        if not isinstance(out, Path):
            raise ValueError("an .xlsx workbook is written to a file, not a stream")
        _write_xlsx(out, tables)
        return
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"format must be xlsx, csv or jsonl, got {fmt!r}")
    if len(tables) != 1:
        raise ValueError(f"a {fmt} file holds one kind (faq or reviews); write a workbook (xlsx) for both")
    ((kind, rows),) = tables.items()
    if isinstance(out, Path):
        with out.open("w", encoding="utf-8-sig" if fmt == "csv" else "utf-8", newline="") as handle:
            _write_text(handle, fmt, kind, rows)  # utf-8-sig: Excel opens a CSV with Chinese text correctly
    else:
        _write_text(out, fmt, kind, rows)
