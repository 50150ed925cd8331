"""Shared bench helpers: the repo on sys.path, the bundled base, results as printed + saved JSON."""

from __future__ import annotations

import csv
import json
import math
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


def product_settings(folder: Path, **overrides: dict):
    """config.toml as shipped, with its [paths] moved under `folder` and the bundled base reused (printed).

    `overrides` are whole-key changes per section (e.g. thresholds={"min_new_examples": 1}); each
    is printed, and returned so that the bench can save it with its result.
    """
    import tomllib

    from settings import settings_from_dict

    data = tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))
    data["paths"] = {"database": "shopbot.db", "adapters": "adapters", "model_cache": "models", "reports": "reports"}
    data.setdefault("model", {})["base"] = str(base_folder(None))  # the same bundled build, not rebuilt per run
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    if overrides:
        print(f"overrides of config.toml: {overrides}", flush=True)
    return settings_from_dict(data, folder, env={})


def read_tsv(path: Path) -> list[tuple[str, str]]:
    """(text, label) rows of a text<TAB>label file with a header (quoted newlines allowed)."""
    csv.field_size_limit(1 << 24)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader)
        return [(row[0], row[1]) for row in reader if len(row) >= 2 and row[0].strip()]


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank q-th percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save(name: str, result: dict) -> None:
    """Write bench/results/<name>.json and print the result as the last line."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps(result, ensure_ascii=False))


def wilson(k: int, n: int) -> list[float]:
    """The 95% Wilson interval of k successes in n, rounded for a results file (training.estimate's rule)."""
    from training.estimate import wilson_interval

    return [round(bound, 4) for bound in wilson_interval(k, n)]
