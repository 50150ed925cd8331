"""For tests that run the bot's side in a fresh process: which heavy packages it imports, and who asked for them.

    from tests.importguard import install
    guard = install(repo)        # before importing the project
    ...
    guard.imported               # ["torch: training/x.py:12 <- bot/y.py:40", ...]: the first import of each
    guard.loaded()               # the heavy packages in sys.modules now
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

HEAVY = ("torch", "peft", "transformers", "datasets", "sklearn", "scipy")  # the trainer's, never the bot's


class ImportGuard:
    """A `sys.meta_path` finder that only watches: it notes the first import of each heavy package with the
    project frames that asked for it, and lets the import go on."""

    def __init__(self, repo: str) -> None:
        self.repo = repo
        self.imported: list[str] = []

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        top = name.split(".")[0]
        if top in HEAVY and not any(line.startswith(top + ":") for line in self.imported):
            frames = [f"{f.filename[len(self.repo) + 1:]}:{f.lineno}" for f in traceback.extract_stack()
                      if f.filename.startswith(self.repo) and f.filename != __file__]
            self.imported.append(top + ": " + " <- ".join(reversed(frames)))

    def loaded(self) -> list[str]:
        """The heavy packages imported by now, by anyone."""
        return sorted(name for name in HEAVY if name in sys.modules)


def install(repo: str) -> ImportGuard:
    """A guard watching every import from now on; `repo` is the project folder (whose frames are named)."""
    guard = ImportGuard(repo)
    sys.meta_path.insert(0, guard)
    return guard
