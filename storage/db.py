"""Open the shopbot SQLite database with the right pragmas and an up-to-date schema.

Concurrency: a connection belongs to the thread that opened it (sqlite3's default
`check_same_thread=True`). Open one database per thread or process; they share
one file safely through WAL mode and a 30 s busy timeout.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.db import Table

from storage.migrations import migrations

BUSY_TIMEOUT_MS = 30_000


@contextlib.contextmanager
def write_transaction(db: Database) -> Iterator[Database]:
    """Like `db.atomic()`, but the outermost level takes the write lock first (BEGIN IMMEDIATE).

    A plain deferred transaction that reads and then writes fails at once with
    "database is locked" when another connection wrote in between (WAL snapshot
    rule; the busy timeout does not help). Use this for every read-then-write.
    """
    if db.conn.in_transaction:
        with db.atomic():  # nested: a savepoint
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    try:
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise


def fetch_row(db: Database, sql: str, parameters: Sequence[Any]) -> dict[str, Any] | None:
    """The first row of a statement as {column: value} (None when there is none), run on the connection itself.

    The hot path (every customer message) uses this instead of sqlite-utils' table methods, which look
    up the table's columns and keys on every call: a fixed SQL text is compiled once per connection
    and reused from sqlite3's statement cache. A write (`insert … returning *`) must run inside
    `write_transaction`; every row is read, so that the statement is finished before the commit.
    """
    cursor = db.conn.execute(sql, parameters)
    rows = cursor.fetchall()
    return dict(zip([column[0] for column in cursor.description], rows[0])) if rows else None


def inserted_id(table: Table) -> int:
    """The rowid of the row `table.insert` just wrote."""
    if table.last_rowid is None:
        raise RuntimeError(f"nothing was inserted into {table.name}")
    return table.last_rowid


def apply_migrations(db: Database) -> None:
    """Apply pending migrations while holding the write lock, so concurrent openers cannot race."""
    if not migrations.pending(db):
        return
    with write_transaction(db):
        migrations.apply(db)  # re-reads what is pending now that we hold the lock


def _enable_wal(db: Database) -> None:
    """Switch the file to WAL, retrying while another opener holds the lock.

    Changing the journal mode needs an exclusive lock. Two processes opening a new file at once
    both read "delete" and then both ask for the lock; SQLite answers one of them "database is
    locked" at once (deadlock avoidance: the busy timeout is not used). Seen under CPU load.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def open_database(path: Path | str) -> Database:
    """Open (creating if needed) a database file, or ":memory:", and migrate it."""
    memory = str(path) == ":memory:"
    if not memory:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(":memory:" if memory else str(path), timeout=BUSY_TIMEOUT_MS / 1000)
    db = Database(conn)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA foreign_keys = ON")
    if not memory:
        _enable_wal(db)
        # WAL + NORMAL never corrupts; a power cut may lose only the last commits. ~6x faster writes.
        db.execute("PRAGMA synchronous = NORMAL")
    apply_migrations(db)
    return db
