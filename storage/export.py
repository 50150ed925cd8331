"""Export corrections or labelled examples as JSON Lines or CSV."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any, Literal, TextIO

from storage.records import Correction, Example
from storage.store import Store

_RECORD = {"corrections": Correction, "examples": Example}


def _plain(value: Any) -> Any:
    """A JSON-friendly form of a record value."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def _cell(value: Any) -> Any:
    """A CSV cell: empty for None, JSON text for lists and dicts."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _write(rows: list[dict[str, Any]], fieldnames: list[str], fmt: str, handle: TextIO) -> None:
    if fmt == "jsonl":
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    writer = csv.DictWriter(handle, fieldnames=fieldnames)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})


def export(store: Store, kind: Literal["corrections", "examples"], fmt: Literal["jsonl", "csv"],
           out: Path | TextIO) -> int:
    """Write every correction or example to `out` (a path or an open text file); return the row count."""
    if kind not in _RECORD:
        raise ValueError(f"kind must be corrections or examples, got {kind!r}")
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"fmt must be jsonl or csv, got {fmt!r}")
    records = store.corrections.all() if kind == "corrections" else store.examples.all()
    rows = [{k: _plain(v) for k, v in dataclasses.asdict(record).items()} for record in records]
    fieldnames = [f.name for f in dataclasses.fields(_RECORD[kind])]
    if isinstance(out, (str, Path)):
        with Path(out).open("w", encoding="utf-8", newline="") as handle:
            _write(rows, fieldnames, fmt, handle)
    else:
        _write(rows, fieldnames, fmt, out)
    return len(rows)
