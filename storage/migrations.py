"""Schema migrations for the shopbot database (sqlite-utils `Migrations`).

Add one small, idempotent function per change, after the existing ones; never edit an
applied one. They all run inside one BEGIN IMMEDIATE transaction (see storage.db), so
each must be transactional (no VACUUM) and foreign keys stay enforced while they run.
"""

from __future__ import annotations

from pathlib import PurePath

from sqlite_utils import Database, Migrations
from sqlite_utils.db import ForeignKey

migrations = Migrations("shopbot")


def _set_null(table: str, column: str, other_table: str, other_column: str = "id") -> ForeignKey:
    return ForeignKey(table, column, other_table, other_column, on_delete="SET NULL")


@migrations()
def m001_initial_schema(db: Database) -> None:
    """Create every table and index (idempotent: existing tables are left alone)."""
    db.table("faq_entries").create(
        {"key": str, "language": str, "question": str, "answer": str, "topic": str,
         "source": str, "created_at": str, "updated_at": str},
        pk=("key", "language"),
        not_null=["question", "answer", "topic", "source", "created_at", "updated_at"],
        if_not_exists=True,
    )
    db.table("customers").create(
        {"telegram_id": int, "language": str, "first_seen": str, "last_seen": str,
         "opted_out": int, "forgotten_at": str},
        pk="telegram_id",
        not_null=["first_seen", "last_seen", "opted_out"],
        defaults={"opted_out": 0},
        if_not_exists=True,
    )
    db.table("messages").create(
        {"id": int, "customer_id": int, "chat_id": int, "telegram_message_id": int,
         "text": str, "content_type": str, "created_at": str},
        pk="id",
        foreign_keys=[("customer_id", "customers", "telegram_id")],
        not_null=["customer_id", "chat_id", "telegram_message_id", "content_type", "created_at"],
        if_not_exists=True,
    )
    db.table("decisions").create(
        {"id": int, "message_id": int, "task": str, "label": str, "confidence": float,
         "action": str, "source": str, "adapter_version": str, "alternatives": str,
         "staff_chat_id": int, "staff_message_id": int, "status": str, "created_at": str},
        pk="id",
        foreign_keys=[_set_null("decisions", "message_id", "messages")],
        not_null=["task", "confidence", "action", "source", "alternatives", "status", "created_at"],
        defaults={"status": "pending", "alternatives": "[]"},
        if_not_exists=True,
    )
    db.table("examples").create(
        {"id": int, "task": str, "text": str, "label": str, "language": str, "source": str,
         "split": str, "decision_id": int, "created_at": str},
        pk="id",
        foreign_keys=[_set_null("examples", "decision_id", "decisions")],
        not_null=["task", "text", "label", "language", "source", "split", "created_at"],
        if_not_exists=True,
    )
    db.table("corrections").create(
        {"id": int, "decision_id": int, "staff_id": int, "kind": str, "old_label": str,
         "new_label": str, "answer_text": str, "created_at": str},
        pk="id",
        foreign_keys=[("decision_id", "decisions", "id")],
        not_null=["decision_id", "staff_id", "kind", "created_at"],
        if_not_exists=True,
    )
    db.table("adapters").create(
        {"id": int, "version": str, "task": str, "path": str, "metrics": str, "status": str,
         "checksum": str, "snapshot_id": str, "base_model": str, "reasons": str,
         "created_at": str, "promoted_at": str},
        pk="id",
        not_null=["version", "task", "path", "metrics", "status", "checksum", "base_model",
                  "reasons", "created_at"],
        if_not_exists=True,
    )
    db.table("training_runs").create(
        {"id": int, "trigger": str, "status": str, "snapshot_id": str, "started_at": str,
         "finished_at": str, "result": str, "error": str},
        pk="id",
        not_null=["trigger", "status", "started_at"],
        if_not_exists=True,
    )
    db.table("reports").create(
        {"id": int, "created_at": str, "period_start": str, "period_end": str, "text": str,
         "chart_path": str, "data": str},
        pk="id",
        not_null=["created_at", "period_start", "period_end", "text", "data"],
        if_not_exists=True,
    )
    db.table("scheduler_state").create(
        {"name": str, "value": str, "updated_at": str},
        pk="name",
        not_null=["value", "updated_at"],
        if_not_exists=True,
    )
    indexes = [
        ("examples", ["task", "split"], False),
        ("examples", ["decision_id"], False),
        ("examples", ["created_at"], False),
        ("messages", ["customer_id"], False),
        ("messages", ["created_at"], False),
        ("decisions", ["message_id"], False),
        ("decisions", ["created_at"], False),
        ("corrections", ["decision_id"], False),
        ("corrections", ["created_at"], False),
        ("adapters", ["version"], True),
        ("adapters", ["task", "status"], False),
    ]
    for table, columns, unique in indexes:
        db.table(table).create_index(columns, unique=unique, if_not_exists=True)


@migrations()
def m002_training_run_owner(db: Database) -> None:
    """Record which process owns a run (pid and start time), so start-up closes only runs whose process is gone."""
    columns = db.table("training_runs").columns_dict
    for column, kind in (("owner_pid", int), ("owner_started", str)):
        if column not in columns:
            db.table("training_runs").add_column(column, kind)


@migrations()
def m003_relative_adapter_paths(db: Database) -> None:
    """Store adapter folders relative to paths.adapters ("<task>/<version>"), not as absolute paths.

    Every folder was published at <paths.adapters>/<task>/<version>; a path that does not end so
    is left as it is (still absolute).
    """
    for row in list(db.table("adapters").rows):
        path = PurePath(row["path"])
        if path.is_absolute() and path.parts[-2:] == (row["task"], row["version"]):
            db.table("adapters").update(row["id"], {"path": f"{row['task']}/{row['version']}"})


@migrations()
def m004_customers_blocked_at(db: Database) -> None:
    """customers.blocked_at: when sending to them was refused because they blocked the bot."""
    if "blocked_at" not in db.table("customers").columns_dict:
        db.table("customers").add_column("blocked_at", str)


@migrations()
def m005_decisions_kind(db: Database) -> None:
    """decisions.task -> decisions.kind: a decision is about a kind of message (question, review); tasks are what models learn."""
    if "task" in db.table("decisions").columns_dict:
        db.execute("alter table decisions rename column task to kind")


@migrations()
def m006_faq_retired_and_changes(db: Database) -> None:
    """faq_entries.retired_at (a retired entry is never answered; its rows stay), and faq_changes: every edit
    made with /faq (who, when, field, language, old -> new)."""
    if "retired_at" not in db.table("faq_entries").columns_dict:
        db.table("faq_entries").add_column("retired_at", str)
    db.table("faq_changes").create(
        {"id": int, "key": str, "language": str, "field": str, "old": str, "new": str,
         "changed_by": int, "changed_at": str},
        pk="id",
        not_null=["key", "field", "changed_at"],
        if_not_exists=True,
    )
    db.table("faq_changes").create_index(["key", "id"], if_not_exists=True)


@migrations()
def m007_decisions_customer_choices(db: Database) -> None:
    """decisions.suggestion (what became of "did you mean…?" buttons) and the customer's 👍 / 👎 under an
    automatic answer: customer_feedback, customer_feedback_at, customer_feedback_changes (1 once changed)."""
    columns = db.table("decisions").columns_dict
    for name, kind in (("suggestion", str), ("customer_feedback", str), ("customer_feedback_at", str),
                       ("customer_feedback_changes", int)):
        if name not in columns:
            db.table("decisions").add_column(name, kind, not_null_default=0 if kind is int else None)


@migrations()
def m008_customers_takeover(db: Database) -> None:
    """customers.takeover_until / taken_over_by: a staff member is talking with the customer until then (UTC), and
    the bot stays quiet for them."""
    columns = db.table("customers").columns_dict
    for column, kind in (("takeover_until", str), ("taken_over_by", int)):
        if column not in columns:
            db.table("customers").add_column(column, kind)


@migrations()
def m009_decisions_suggestion_index(db: Database) -> None:
    """An index on decisions.suggestion: the bot looks for unanswered "did you mean…?" buttons every 30 s on its
    event loop, and without it that look reads the whole decisions table."""
    db.table("decisions").create_index(["suggestion", "created_at"], if_not_exists=True)
