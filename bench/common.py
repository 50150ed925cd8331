"""Shared bench helpers: the repo on sys.path, the bundled base, results as printed + saved JSON."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def base_folder(base: str | None) -> Path:
    """The --base folder, or the bundled multilingual-e5-small (built once into .cache/models)."""
    from training.base_model import ensure_bundled

    return Path(base) if base else ensure_bundled(REPO / ".cache" / "models")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save(name: str, result: dict) -> None:
    """Write bench/results/<name>.json and print the result as the last line."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps(result, ensure_ascii=False))
