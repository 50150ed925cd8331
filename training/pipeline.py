"""The retraining job: snapshot -> train both tasks -> evaluate -> gate -> publish and promote or refuse.

`retrain()` does the work in the current process (the child); `run_in_child()` starts it in a
separate process with one torch thread so the bot keeps answering. A crash or kill of the child
leaves the active adapters untouched: candidates are published atomically, and only a finished
gate decision promotes one.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Any

import torch

from settings import Settings
from storage.store import Store
from training.args import TrainArgs
from training.encoder import Encoder, load_encoder
from training.estimate import Estimate, holdout_is_enough
from training.export_onnx import export_adapter
from training.features import FeatureCache
from training.gate import gate
from training.measure import compare_unseen, cross_validate, pairs_of, report_on, row_key, top1_accuracy
from training.registry import AdapterRegistry, CorruptAdapterError
from training.snapshot import Snapshot, take_snapshot
from training.tasks import TaskSpec, read_trained_on, task_specs, write_trained_on
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


def retrain(settings: Settings, trigger: str = RunTrigger.CLI, run_id: int | None = None,
            args: TrainArgs | None = None, force: bool = False) -> dict[str, Any]:
    """Train, evaluate and gate both tasks; returns (and records in storage) the run's result."""
    torch.set_num_threads(settings.model.train_threads)  # more threads thrash on 2 shared cores
    torch.manual_seed(0)
    started = time.perf_counter()
    with Store(settings.paths.database) as store:
        if run_id is None:
            run_id = store.runs.start(trigger)
        else:
            store.runs.claim(run_id)  # started by run_in_child in the parent: this process trains it
        try:
            snapshot = take_snapshot(store)
            last = store.runs.last_trained()
            new = store.examples.count_since(last.started_at) if last else None
            if not force and trigger in (RunTrigger.SCHEDULE, RunTrigger.CATCHUP) and new is not None and new < settings.thresholds.min_new_examples:
                result: dict[str, Any] = {"status": RunStatus.SKIPPED, "reasons": [(f"{new} new labelled examples since the last retrain, "
                                                             f"fewer than {settings.thresholds.min_new_examples}")]}
                store.runs.finish(run_id, RunStatus.SKIPPED, snapshot.id, result)
                return result
            outcomes = _train_all(settings, store, snapshot, args or TrainArgs(progress=False))
            status = RunStatus.PROMOTED if any(o.promoted for o in outcomes) else RunStatus.REFUSED
            result = {"status": status, "snapshot_id": snapshot.id, "counts": snapshot.counts,
                      "seconds": round(time.perf_counter() - started, 1),
                      "tasks": {o.task: asdict(o) for o in outcomes},
                      "reasons": [f"{o.task}: {'promoted' if o.promoted else 'refused'} {o.version}" for o in outcomes]}
            store.runs.finish(run_id, status, snapshot.id, result)
            return result
        except Exception as exc:
            log.exception("retraining failed")
            result = {"status": RunStatus.FAILED, "reasons": [f"{type(exc).__name__}: {exc}"]}
            store.runs.finish(run_id, RunStatus.FAILED, None, result, traceback.format_exc(limit=5))
            return result


def _train_all(settings: Settings, store: Store, snapshot: Snapshot, args: TrainArgs) -> list[TaskOutcome]:
    encoder = load_encoder(settings)
    cache = FeatureCache(encoder, settings.paths.model_cache / "features")
    registry = AdapterRegistry(settings.paths.adapters, store)
    outcomes = []
    for task, spec in task_specs(cache, args).items():
        if not snapshot.pairs(task, "train"):
            log.warning("no %s training examples: skipping that task", task)
            continue
        outcomes.append(_train_task(spec, settings, snapshot, registry, args, encoder))
    return outcomes


def _train_task(spec: TaskSpec[Any], settings: Settings, snapshot: Snapshot, registry: AdapterRegistry,
                args: TrainArgs, encoder: Encoder) -> TaskOutcome:
    """Train one candidate, estimate it (held-out split or k-fold CV), compare it with the active on unseen rows, gate, publish."""
    started = time.perf_counter()
    thresholds = settings.thresholds
    task, anchors = spec.name, list(snapshot.faq_anchors)
    rows = snapshot.rows[task]
    threshold = spec.threshold(thresholds)
    train_rows = [r for r in rows if r.split == "train"]
    fit_rows = [r for r in rows if r.split != "validation"]
    validation = pairs_of([r for r in rows if r.split == "validation"])
    test_rows = [r for r in rows if r.split == "test"]
    base = spec.base()  # the untrained model (FAQ), scored the same way; None where there is none
    if holdout_is_enough(len(test_rows), threshold, thresholds.max_interval):
        method, folds, fit_rows, evaluated = "holdout", 0, train_rows, test_rows
        model = spec.fit(pairs_of(fit_rows), validation, anchors)
        texts, index = [r.text for r in evaluated], anchors + pairs_of(fit_rows)
        ranked = spec.ranked(model, texts, index)
        base_ranked = spec.ranked(base, texts, index) if base is not None else None
    else:  # too few test rows to trust: score the recipe on every row, then ship it trained on all of them
        method, folds, evaluated = "cv", thresholds.cv_folds, list(rows)
        ranked = cross_validate(spec, evaluated, anchors, folds)
        base_ranked = cross_validate(spec, evaluated, anchors, folds, fit=lambda *_: base) if base is not None else None
        model = spec.fit(pairs_of(fit_rows), validation, anchors)
    seen = {row_key(r.text) for r in fit_rows} | {row_key(t) for t, _ in validation}
    estimate = Estimate.of([bool(labels) and labels[0] == r.label for labels, r in zip(ranked, evaluated)], method, folds)
    metrics = report_on(spec, evaluated, ranked) | estimate.as_dict()
    base_metrics = report_on(spec, evaluated, base_ranked) if base_ranked is not None else None
    active = _active_model(spec, registry)
    comparison = compare_unseen(spec, active, rows, evaluated, ranked, anchors) if active else None
    regression = snapshot.regression_set(task)
    known = anchors + pairs_of(train_rows)
    cand_reg = top1_accuracy(spec, model, regression, known) if regression else None
    act_reg = top1_accuracy(spec, active[1], regression, known) if regression and active else None
    decision = gate(metrics, threshold, thresholds.max_regression,
                    comparison=comparison.as_dict() if comparison else None,
                    candidate_regression=cand_reg, active_regression=act_reg,
                    active_version=active[0] if active else None, max_interval=thresholds.max_interval)
    version = _publish(spec, model, registry, snapshot, metrics, settings, args, seen, len(fit_rows), encoder)
    if decision.promote:
        registry.promote(version, list(decision.reasons))
    else:
        registry.reject(version, list(decision.reasons))
    log.info("%s candidate %s %s: %s", task, version, "promoted" if decision.promote else "refused",
             "; ".join(decision.reasons))
    active_metrics = ({"accuracy": comparison.active, "n": comparison.n} if comparison else None)
    return TaskOutcome(task, version, decision.promote, list(decision.reasons), metrics,
                       active[0] if active else None, active_metrics, base_metrics,
                       round(time.perf_counter() - started, 1), comparison.as_dict() if comparison else None)


def _active_model(spec: TaskSpec[Any], registry: AdapterRegistry) -> tuple[str, Any, frozenset[str] | None] | None:
    """(version, merged model, keys it was fitted on) of the active adapter, or None (none yet, or corrupt)."""
    try:
        found = registry.active_verified(spec.name)
    except CorruptAdapterError as exc:
        log.error("active %s adapter unusable: %s", spec.name, exc)
        return None
    if found is None:
        return None
    record, path = found
    return record.version, spec.load(path), read_trained_on(path)


def _publish(spec: TaskSpec[Any], model: Any, registry: AdapterRegistry, snapshot: Snapshot, metrics: dict,
             settings: Settings, args: TrainArgs, seen: set[str], n_fit: int, encoder: Encoder) -> str:
    """Save the candidate (and its ONNX graph with a probe) into a staging folder and publish it atomically."""
    staging = registry.staging_dir(spec.name)
    spec.save(spec.finish(model, snapshot, metrics), staging)
    write_trained_on(staging, sorted(seen))
    export_adapter(spec.name, staging, encoder)  # covered by the manifest's checksums like every file
    manifest = {
        "task": spec.name, "metrics": metrics, "snapshot_id": snapshot.id,
        "base_model": str(settings.model.base), "top_layers": settings.model.top_layers,
        "max_length": settings.model.max_length, "train_args": asdict(args) | {"max_train_seconds": None},
        "train_examples": n_fit,
    }
    return registry.publish(spec.name, staging, manifest).version


def evaluate_active(settings: Settings) -> dict[str, Any]:
    """Score the active adapters (and the base model for FAQ) on the current snapshot's test split, with intervals."""
    with Store(settings.paths.database) as store:
        snapshot = take_snapshot(store)
        encoder = load_encoder(settings)
        cache = FeatureCache(encoder, settings.paths.model_cache / "features")
        registry = AdapterRegistry(settings.paths.adapters, store)
        report: dict[str, Any] = {"snapshot_id": snapshot.id, "counts": snapshot.counts}
        for task, spec in task_specs(cache, TrainArgs(progress=False)).items():
            test = [r for r in snapshot.rows[task] if r.split == "test"]
            index = list(snapshot.faq_anchors) + snapshot.pairs(task, "train")
            active = _active_model(spec, registry)
            entry: dict[str, Any] = {"active_version": active[0] if active else None}
            models = {"active": active[1] if active else None, "base": spec.base()}
            for name, model in models.items():
                if model is None or not test:
                    continue
                ranked = spec.ranked(model, [r.text for r in test], index)
                hits = [bool(labels) and labels[0] == r.label for labels, r in zip(ranked, test)]
                entry[name] = report_on(spec, test, ranked) | Estimate.of(hits, "holdout").as_dict()
            entry.setdefault("active", None)
            report[task] = entry
        return report


def _child_main(settings: Settings, trigger: str, run_id: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s train[%(process)d] %(levelname)s %(message)s")
    retrain(settings, trigger, run_id=run_id)


def run_in_child(settings: Settings, trigger: str = RunTrigger.MANUAL) -> dict[str, Any]:
    """Run `retrain` in a separate process (spawned, `model.train_threads` torch threads); blocks until done.

    A child still running after `schedule.retrain_timeout_minutes` is killed. Whatever happens to
    the child (crash, kill -9, timeout), the run is recorded with the reason and the active
    adapters stay as they were.
    """
    limit = settings.schedule.retrain_timeout_minutes
    with Store(settings.paths.database) as store:
        run_id = store.runs.start(trigger)
    process = multiprocessing.get_context("spawn").Process(
        target=_child_main, args=(settings, trigger, run_id),
        name="shopbot-train", daemon=True)
    process.start()
    process.join(limit * 60)
    timed_out = process.is_alive()
    if timed_out:
        process.kill()
        process.join()
    with Store(settings.paths.database) as store:
        run = store.runs.get(run_id)
        if run.status == RunStatus.RUNNING:
            reason = (f"training was still running after {limit:g} minutes (schedule.retrain_timeout_minutes): stopped"
                      if timed_out else f"training process ended with exit code {process.exitcode} before finishing")
            store.runs.finish(run_id, RunStatus.FAILED, None, {"status": RunStatus.FAILED, "reasons": [reason]}, reason)
            _reject_orphans(settings, store, since=run.started_at, reason=reason)
            run = store.runs.get(run_id)
        return dict(run.result or {"status": run.status})


def _reject_orphans(settings: Settings, store: Store, since: str, reason: str) -> None:
    """Candidates a dead child published but never gated are marked rejected (never served either way)."""
    registry = AdapterRegistry(settings.paths.adapters, store)
    for task in TASKS:
        for record in store.adapters.history(task):
            if record.status == AdapterStatus.CANDIDATE and record.created_at >= since:
                registry.reject(record.version, [f"not gated: {reason}"])

