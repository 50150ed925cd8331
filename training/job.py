"""What a retrain is given and what it hands back, as plain values: the recipe, the active adapters, the candidates.

These cross the boundary between the bot and the trainer (`training.backends`: pickled to a spawned
child or a Ray task, and back as JSON), so the bot's side (`training.pipeline`) builds and reads
them without importing torch; `training.candidates.train_candidates` is what turns them into adapters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from settings import ModelSettings, ThresholdSettings
from training.args import TrainArgs


@dataclass(frozen=True)
class Recipe:
    """How to train: the model shape and device, the thresholds that choose how to estimate, the hyper-parameters."""

    model: ModelSettings
    thresholds: ThresholdSettings
    args: TrainArgs = field(default_factory=lambda: TrainArgs(progress=False))


@dataclass(frozen=True)
class ActiveAdapter:
    """The adapter a task serves now, as files: candidates are compared with it on examples neither saw."""

    version: str
    folder: Path


@dataclass(frozen=True)
class Candidate:
    """One task's trained candidate in `out/<folder>` and everything the gate reads about it."""

    task: str
    folder: str  # relative to the output folder
    files: dict[str, str]  # {relative name: sha256} as written by the trainer
    threshold: float  # the accuracy the gate asks of this task
    metrics: dict[str, Any]
    base_metrics: dict[str, Any] | None
    comparison: dict[str, Any] | None  # candidate vs active on rows neither was fitted on
    candidate_regression: float | None  # accuracy on past staff corrections
    active_regression: float | None
    active_version: str | None
    train_examples: int
    train_seconds: float

    def __post_init__(self) -> None:
        if not self.folder or Path(self.folder).name != self.folder or self.folder in (".", ".."):
            raise ValueError(f"a candidate's folder is a plain name inside the output folder, got {self.folder!r}")


@dataclass(frozen=True)
class Trained:
    """What `train_candidates` returns: one candidate per task that had training examples."""

    snapshot_id: str
    candidates: tuple[Candidate, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the form a training child or a Ray task hands back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trained:
        """The `Trained` that `as_dict` gave."""
        return cls(str(data["snapshot_id"]), tuple(Candidate(**candidate) for candidate in data["candidates"]))
