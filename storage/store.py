"""`Store`: one database connection and every repository on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlite_utils import Database

from storage.adapters import AdapterRepository
from storage.corrections import CorrectionRepository
from storage.customers import CustomerRepository
from storage.db import open_database, write_transaction
from storage.decisions import DecisionRepository
from storage.examples import ExampleRepository
from storage.faq import FaqRepository
from storage.messages import MessageRepository
from storage.reports import ReportRepository
from storage.runs import RunRepository
from storage.state import StateRepository


class Store:
    """The shopbot database; use one Store per thread or process (see storage.db)."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.db = open_database(path)
        self.faq = FaqRepository(self.db)
        self.examples = ExampleRepository(self.db)
        self.customers = CustomerRepository(self.db)
        self.messages = MessageRepository(self.db)
        self.decisions = DecisionRepository(self.db)
        self.corrections = CorrectionRepository(self.db)
        self.adapters = AdapterRepository(self.db)
        self.runs = RunRepository(self.db)
        self.reports = ReportRepository(self.db)
        self.state = StateRepository(self.db)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """Group several repository calls into one write transaction (takes the write lock first)."""
        with write_transaction(self.db) as db:
            yield db

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
