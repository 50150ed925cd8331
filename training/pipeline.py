"""The retraining job, serving side: snapshot -> train (a backend) -> verify -> publish -> gate -> promote or refuse.

`retrain()` takes the snapshot from the database and resolves the recipe, hands both (with the base
model folder and the active adapters as files) to a backend that runs the pure
`training.candidates.train_candidates` (in this process, a spawned child, or a Ray task:
`training.backends`), then checks every candidate's files against the checksums the trainer sent,
publishes it into the adapter registry (`_publish`, the one place a candidate becomes an adapter),
gates it (`training.gate`, pure) and promotes or rejects it. `run_retrain()` is the same through the
backend `[training] backend` names. Whatever happens to the training (crash, kill, timeout, a remote
error), the run is recorded as failed with the reason, candidates it left ungated are rejected and
the active adapters stay as they were.

This is the bot's side and imports no torch (nor peft, transformers, datasets): the training runs
where the backend puts it, and everything crossing over is a plain record (`training.job`).
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from settings import Settings
from storage.store import Store
from training.args import TrainArgs
from training.backends import FEATURES, Backend, InProcess, TrainingFailed, TrainJob, configured, local_turn, turn_owner
from training.base_model import resolve_base_model
from training.gate import gate
from training.job import ActiveAdapter, Candidate, Recipe
from training.registry import AdapterRegistry, hash_folder
from training.snapshot import Snapshot, take_snapshot
from vocabulary import TASKS, AdapterStatus, RunStatus, RunTrigger, Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskOutcome:
    """What happened to one task's candidate."""

    task: Task
    version: str
    promoted: bool
    reasons: list[str]
    metrics: dict[str, Any]
    active_version: str | None
    active_metrics: dict[str, Any] | None
    base_metrics: dict[str, Any] | None
    train_seconds: float
    comparison: dict[str, Any] | None = None  # candidate vs active on rows neither was fitted on


def retrain(settings: Settings, trigger: str = RunTrigger.CLI, args: TrainArgs | None = None, force: bool = False,
            backend: Backend | None = None) -> dict[str, Any]:
    """Train (through `backend`; default: in this process), verify, publish and gate both tasks; returns (and records) the run's result."""
    started = time.perf_counter()
    with Store(settings.paths.database) as store:
        run_id = store.runs.start(trigger)
        registry = AdapterRegistry(settings.paths.adapters, store)
        scratch: Path | None = None
        try:
            snapshot = take_snapshot(store)
            last = store.runs.last_trained()
            new = store.examples.count_since(last.started_at) if last else None
            if not force and trigger in (RunTrigger.SCHEDULE, RunTrigger.CATCHUP) and new is not None and new < settings.thresholds.min_new_examples:
                result: dict[str, Any] = {"status": RunStatus.SKIPPED, "reasons": [(f"{new} new labelled examples since the last retrain, "
                                                             f"fewer than {settings.thresholds.min_new_examples}")]}
                store.runs.finish(run_id, RunStatus.SKIPPED, snapshot.id, result)
                return result
            recipe = Recipe(settings.model, settings.thresholds, args or TrainArgs(progress=False))
            scratch = registry.staging_dir("run")  # the trainer's output folder: candidates publish from here
            job = TrainJob(snapshot, recipe, resolve_base_model(settings.model.base, settings.paths.model_cache),
                           active_adapters(registry), scratch, settings.paths.model_cache / FEATURES)
            trained = (backend or InProcess()).train(job)
            if trained.snapshot_id != snapshot.id:
                raise TrainingFailed(f"the trainer answered for snapshot {trained.snapshot_id}, not {snapshot.id}")
            outcomes = [_publish_and_gate(candidate, scratch, registry, snapshot, settings, recipe.args)
                        for candidate in trained.candidates]
            status = RunStatus.PROMOTED if any(o.promoted for o in outcomes) else RunStatus.REFUSED
            result = {"status": status, "snapshot_id": snapshot.id, "counts": snapshot.counts,
                      "seconds": round(time.perf_counter() - started, 1),
                      "tasks": {o.task: asdict(o) for o in outcomes},
                      "reasons": [f"{o.task}: {'promoted' if o.promoted else 'refused'} {o.version}" for o in outcomes]}
            store.runs.finish(run_id, status, snapshot.id, result)
            return result
        except Exception as exc:
            if isinstance(exc, TrainingFailed):
                reason, error = str(exc), str(exc)
                log.error("retraining failed: %s", reason)
            else:
                reason, error = f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=5)
                log.exception("retraining failed")
            result = {"status": RunStatus.FAILED, "reasons": [reason]}
            store.runs.finish(run_id, RunStatus.FAILED, None, result, error)
            _reject_orphans(settings, store, since=store.runs.get(run_id).started_at, reason=reason)
            return result
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)


def run_retrain(settings: Settings, trigger: str = RunTrigger.MANUAL, args: TrainArgs | None = None) -> dict[str, Any]:
    """`retrain` through the configured backend (`[training] backend`: a spawned child, or a Ray task); blocks until done.

    Training still running after `schedule.retrain_timeout_minutes` is stopped. Whatever happens to
    it (crash, kill -9, timeout, a remote error), the run is recorded with the reason and the
    active adapters stay as they were.
    """
    if settings.training.backend != "local":  # a cluster schedules its own tasks
        return retrain(settings, trigger, args=args, backend=configured(settings))
    turn = local_turn()
    if turn.queued():
        log.info("another retrain in this process is training: waiting for its turn")
    with turn.turn(turn_owner(settings)):  # the snapshot is taken once it is this shop's turn
        return retrain(settings, trigger, args=args, backend=configured(settings))


def active_adapters(registry: AdapterRegistry) -> dict[str, ActiveAdapter]:
    """{task: the intact adapter it serves} (an active one that is corrupt falls back, or is left out)."""
    return {task: ActiveAdapter(record.version, path) for task, (record, path) in registry.all_active_verified().items()}


def _publish_and_gate(candidate: Candidate, scratch: Path, registry: AdapterRegistry, snapshot: Snapshot,
                      settings: Settings, args: TrainArgs) -> TaskOutcome:
    """Check a trained candidate's files, publish it, gate it, promote or reject it."""
    thresholds = settings.thresholds
    folder = scratch / candidate.folder
    if not folder.is_dir():
        raise TrainingFailed(f"the trainer's {candidate.task} candidate is not in its output folder ({candidate.folder!r})")
    if hash_folder(folder) != candidate.files:
        raise TrainingFailed(f"the {candidate.task} candidate's files do not match the checksums the trainer sent")
    decision = gate(candidate.metrics, candidate.threshold, thresholds.max_regression,
                    comparison=candidate.comparison, candidate_regression=candidate.candidate_regression,
                    active_regression=candidate.active_regression, active_version=candidate.active_version,
                    max_interval=thresholds.max_interval)
    version = _publish(candidate, folder, registry, snapshot, settings, args)
    if decision.promote:
        registry.promote(version, list(decision.reasons))
    else:
        registry.reject(version, list(decision.reasons))
    log.info("%s candidate %s %s: %s", candidate.task, version, "promoted" if decision.promote else "refused",
             "; ".join(decision.reasons))
    comparison = candidate.comparison
    active_metrics = {"accuracy": comparison["active"], "n": comparison["n"]} if comparison else None
    return TaskOutcome(Task(candidate.task), version, decision.promote, list(decision.reasons), candidate.metrics,
                       candidate.active_version, active_metrics, candidate.base_metrics, candidate.train_seconds,
                       comparison)


def _publish(candidate: Candidate, folder: Path, registry: AdapterRegistry, snapshot: Snapshot, settings: Settings,
             args: TrainArgs) -> str:
    """Publish a verified candidate folder (under the registry's staging) atomically under a new version."""
    manifest = {
        "task": candidate.task, "metrics": candidate.metrics, "snapshot_id": snapshot.id,
        "base_model": str(settings.model.base), "top_layers": settings.model.top_layers,
        "max_length": settings.model.max_length, "train_args": asdict(args) | {"max_train_seconds": None},
        "train_examples": candidate.train_examples,
    }
    return registry.publish(candidate.task, folder, manifest).version


def _reject_orphans(settings: Settings, store: Store, since: str, reason: str) -> None:
    """Candidates published since `since` but never gated (the run failed in between) are marked rejected."""
    registry = AdapterRegistry(settings.paths.adapters, store)
    for task in TASKS:
        for record in store.adapters.history(task):
            if record.status == AdapterStatus.CANDIDATE and record.created_at >= since:
                registry.reject(record.version, [f"not gated: {reason}"])

