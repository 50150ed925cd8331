"""Frozen records returned by the storage repositories, plus the allowed column values."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The storage-only column values; the shared ones (tasks, labels, statuses, kinds) are in vocabulary.py.
FAQ_SOURCES = ("seed", "staff", "owner")  # owner: added in Telegram with /faq
FAQ_FIELDS = ("question", "answer", "phrasing", "retired")  # what one faq_changes row changed
SPLITS = ("train", "validation", "test")
CONTENT_TYPES = ("text", "sticker", "photo", "voice", "other")


class NotFoundError(KeyError):
    """The requested row does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


def check_choice(name: str, value: object, choices: Iterable[str]) -> None:
    """Raise ValueError unless `value` is one of `choices` (a tuple of strings, or a StrEnum class)."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _json(value: str | None, default: Any) -> Any:
    return default if value is None else json.loads(value)


@dataclass(frozen=True)
class FaqEntry:
    """One curated question and answer in one language."""

    key: str
    language: str
    question: str
    answer: str
    topic: str
    source: str
    created_at: str
    updated_at: str
    retired_at: str | None = None  # set by /faq's retire: never answered, not in the index, history kept

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FaqEntry:
        """Build from a faq_entries row."""
        return cls(**row)


@dataclass(frozen=True)
class FaqChange:
    """One versioned change of an FAQ entry: who changed which field, in which language, from what to what.

    question / answer: old -> new (old None when the language was added); phrasing: new is the
    added text; retired: new is when. language is None for what concerns every language (retired).
    """

    id: int
    key: str
    language: str | None
    field: str
    old: str | None
    new: str | None
    changed_by: int | None  # a Telegram user id
    changed_at: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FaqChange:
        """Build from a faq_changes row."""
        return cls(**row)


@dataclass(frozen=True)
class Example:
    """A labelled training example (label = sentiment label or FAQ key)."""

    id: int
    task: str
    text: str
    label: str
    language: str
    source: str
    split: str
    decision_id: int | None
    created_at: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Example:
        """Build from an examples row."""
        return cls(**row)


@dataclass(frozen=True)
class Customer:
    """A Telegram user who wrote to the bot."""

    telegram_id: int
    language: str | None
    first_seen: str
    last_seen: str
    opted_out: bool
    forgotten_at: str | None
    blocked_at: str | None = None  # set when Telegram refused a message because they blocked the bot
    takeover_until: str | None = None  # a staff member talks with them until then (UTC): the bot stays quiet
    taken_over_by: int | None = None  # that staff member

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Customer:
        """Build from a customers row."""
        return cls(**{**row, "opted_out": bool(row["opted_out"])})


@dataclass(frozen=True)
class Message:
    """A customer message exactly as received (text is None for non-text content)."""

    id: int
    customer_id: int
    chat_id: int
    telegram_message_id: int
    text: str | None
    content_type: str
    created_at: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Message:
        """Build from a messages row."""
        return cls(**row)


@dataclass(frozen=True)
class Decision:
    """What the bot decided about one message (message_id is None once the message is deleted)."""

    id: int
    message_id: int | None
    kind: str  # vocabulary.MessageKind
    label: str | None
    confidence: float
    action: str
    source: str
    adapter_version: str | None
    alternatives: tuple[tuple[str, float], ...]
    staff_chat_id: int | None
    staff_message_id: int | None
    status: str
    created_at: str
    suggestion: str | None = None  # vocabulary.SuggestionOutcome, when "did you mean…?" buttons were shown
    customer_feedback: str | None = None  # vocabulary.CustomerFeedback: 👍 / 👎 under an automatic answer
    customer_feedback_at: str | None = None
    customer_feedback_changes: int = 0  # 1 once the customer changed their 👍 / 👎: final

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Decision:
        """Build from a decisions row."""
        alternatives = tuple((str(key), float(score)) for key, score in _json(row["alternatives"], []))
        return cls(**{**row, "alternatives": alternatives})


@dataclass(frozen=True)
class Correction:
    """A staff member's confirmation or correction of a decision."""

    id: int
    decision_id: int
    staff_id: int
    kind: str
    old_label: str | None
    new_label: str | None
    answer_text: str | None
    created_at: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Correction:
        """Build from a corrections row."""
        return cls(**row)


@dataclass(frozen=True)
class AdapterRecord:
    """A trained LoRA adapter version and its evaluation."""

    id: int
    version: str
    task: str
    path: Path  # relative to paths.adapters (AdapterRegistry.folder gives the folder)
    metrics: dict[str, Any]
    status: str
    checksum: str
    snapshot_id: str | None
    base_model: str
    reasons: tuple[str, ...]
    created_at: str
    promoted_at: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AdapterRecord:
        """Build from an adapters row."""
        return cls(
            **{
                **row,
                "path": Path(row["path"]),
                "metrics": _json(row["metrics"], {}),
                "reasons": tuple(_json(row["reasons"], [])),
            }
        )


@dataclass(frozen=True)
class TrainingRun:
    """One (attempted) retraining run."""

    id: int
    trigger: str
    status: str
    snapshot_id: str | None
    started_at: str
    finished_at: str | None
    result: dict[str, Any] | None
    error: str | None
    owner_pid: int | None = None  # the process training it (see storage.runs.owner_alive)
    owner_started: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TrainingRun:
        """Build from a training_runs row."""
        return cls(**{**row, "result": _json(row["result"], None)})


@dataclass(frozen=True)
class Report:
    """A weekly report as sent to the owners."""

    id: int
    created_at: str
    period_start: str
    period_end: str
    text: str
    chart_path: Path | None
    data: dict[str, Any]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Report:
        """Build from a reports row."""
        chart = row["chart_path"]
        return cls(**{**row, "chart_path": Path(chart) if chart else None, "data": _json(row["data"], {})})
