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

import numpy as np
import torch

from settings import Settings
from storage.store import Store
from training.assess import faq_index_for, router_accuracy, score_faq, score_sentiment
from training.faq import FaqTrainer, embed, load_faq, new_faq_model, save_faq, train_router
from training.features import FeatureCache
from training.gate import gate
from training.registry import AdapterRegistry, CorruptAdapterError
from training.sentiment import LABELS, SentimentTrainer, TrainArgs, load_sentiment, save_sentiment
from training.serving import load_encoder
from training.snapshot import Snapshot, take_snapshot

log = logging.getLogger(__name__)
TASKS = ("sentiment", "faq")


@dataclass(frozen=True)
class TaskOutcome:
    """What happened to one task's candidate."""

    task: str
    version: str
    promoted: bool
    reasons: list[str]
    metrics: dict[str, Any]
    active_version: str | None
    active_metrics: dict[str, Any] | None
    base_metrics: dict[str, Any] | None
    train_seconds: float


def retrain(settings: Settings, trigger: str = "cli", run_id: int | None = None,
            args: TrainArgs | None = None, force: bool = False) -> dict[str, Any]:
    """Train, evaluate and gate both tasks; returns (and records in storage) the run's result."""
    torch.set_num_threads(settings.model.train_threads)  # more threads thrash on 2 shared cores
    torch.manual_seed(0)
    started = time.perf_counter()
    with Store(settings.paths.database) as store:
        run_id = run_id if run_id is not None else store.runs.start(trigger)
        try:
            snapshot = take_snapshot(store)
            last = _last_success(store)
            new = store.examples.count_since(last) if last else None
            if not force and trigger in ("schedule", "catchup") and new is not None and new < settings.thresholds.min_new_examples:
                result = {"status": "skipped", "reasons": [f"{new} new labelled examples since the last retrain, "
                                                            f"fewer than {settings.thresholds.min_new_examples}"]}
                store.runs.finish(run_id, "skipped", snapshot.id, result)
                return result
            outcomes = _train_all(settings, store, snapshot, args or TrainArgs(progress=False))
            status = "promoted" if any(o.promoted for o in outcomes) else "refused"
            result = {"status": status, "snapshot_id": snapshot.id, "counts": snapshot.counts,
                      "seconds": round(time.perf_counter() - started, 1),
                      "tasks": {o.task: asdict(o) for o in outcomes},
                      "reasons": [f"{o.task}: {'promoted' if o.promoted else 'refused'} {o.version}" for o in outcomes]}
            store.runs.finish(run_id, status, snapshot.id, result)
            return result
        except Exception as exc:
            log.exception("retraining failed")
            result = {"status": "failed", "reasons": [f"{type(exc).__name__}: {exc}"]}
            store.runs.finish(run_id, "failed", None, result, traceback.format_exc(limit=5))
            return result


def _last_success(store: Store) -> str | None:
    runs = [r for r in store.runs.all() if r.status in ("promoted", "refused")]
    return runs[-1].started_at if runs else None


def _train_all(settings: Settings, store: Store, snapshot: Snapshot, args: TrainArgs) -> list[TaskOutcome]:
    encoder = load_encoder(settings)
    cache = FeatureCache(encoder, settings.paths.model_cache / "features")
    registry = AdapterRegistry(settings.paths.adapters, store)
    outcomes = []
    for task in TASKS:
        if not snapshot.pairs(task, "train"):
            log.warning("no %s training examples: skipping that task", task)
            continue
        outcomes.append(_train_task(task, settings, snapshot, cache, registry, args))
    return outcomes


def _train_task(task: str, settings: Settings, snapshot: Snapshot, cache: FeatureCache,
                registry: AdapterRegistry, args: TrainArgs) -> TaskOutcome:
    """Train one candidate, score it beside the active and the base on the same split, gate, publish."""
    encoder = cache.encoder
    train, validation, test = (snapshot.pairs(task, s) for s in ("train", "validation", "test"))
    languages = snapshot.languages(task, "test")
    regression = snapshot.regression_set(task)
    active = _active_model(task, registry, encoder)
    if task == "sentiment":
        trainer = SentimentTrainer(encoder, cache, args, LABELS)
        result = trainer.train(train, validation)
        metrics = score_sentiment(result.model, cache, test, languages)
        active_metrics = score_sentiment(active[1], cache, test, languages) if active else None
        base_metrics = None  # the base model has no sentiment head
        cand_reg = score_sentiment(result.model, cache, regression)["accuracy"] if regression else None
        act_reg = score_sentiment(active[1], cache, regression)["accuracy"] if regression and active else None
        threshold = settings.thresholds.sentiment_accuracy
    else:
        trainer = FaqTrainer(encoder, cache, args)
        result = trainer.train(train, validation, snapshot.faq_anchors)
        metrics = _score_faq_all(result.model, cache, snapshot, test, languages)
        active_metrics = _score_faq_all(active[1], cache, snapshot, test, languages) if active else None
        base = new_faq_model(encoder, args)  # LoRA starts as the identity: this is the base model
        base_metrics = _score_faq_all(base, cache, snapshot, test, languages)
        cand_reg = _score_faq_all(result.model, cache, snapshot, regression)["accuracy"] if regression else None
        act_reg = _score_faq_all(active[1], cache, snapshot, regression)["accuracy"] if regression and active else None
        threshold = settings.thresholds.faq_accuracy
    decision = gate(metrics, threshold, settings.thresholds.max_regression,
                    active=active_metrics, candidate_regression=cand_reg,
                    active_regression=act_reg if active else None,
                    active_version=active[0] if active else None)
    version = _publish(task, result.model, registry, snapshot, metrics, settings, args, cache, train)
    if decision.promote:
        registry.promote(version, list(decision.reasons))
    else:
        registry.reject(version, list(decision.reasons))
    log.info("%s candidate %s %s: %s", task, version, "promoted" if decision.promote else "refused",
             "; ".join(decision.reasons))
    return TaskOutcome(task, version, decision.promote, list(decision.reasons), metrics,
                       active[0] if active else None, active_metrics, base_metrics, round(result.seconds, 1))


def _score_faq_all(model, cache: FeatureCache, snapshot: Snapshot, pairs, languages=None) -> dict[str, Any]:
    return score_faq(model, cache, faq_index_for(snapshot, model, cache), pairs, languages)


def _active_model(task: str, registry: AdapterRegistry, encoder) -> tuple[str, Any] | None:
    """(version, merged model) of the active adapter, or None (none yet, or its folder is corrupt)."""
    try:
        found = registry.active_verified(task)
    except CorruptAdapterError as exc:
        log.error("active %s adapter unusable: %s", task, exc)
        return None
    if found is None:
        return None
    record, path = found
    model = load_sentiment(encoder, path)[0] if task == "sentiment" else load_faq(encoder, path)[0]
    return record.version, model


def _publish(task: str, model, registry: AdapterRegistry, snapshot: Snapshot, metrics: dict,
             settings: Settings, args: TrainArgs, cache: FeatureCache, train) -> str:
    """Save the candidate into a staging folder and publish it atomically under a new version."""
    staging = registry.staging_dir(task)
    if task == "sentiment":
        save_sentiment(model, staging, LABELS)
    else:
        save_faq(model, staging, _fit_router(model, cache, snapshot, metrics))
    manifest = {
        "task": task, "metrics": metrics, "snapshot_id": snapshot.id,
        "base_model": str(settings.model.base), "top_layers": settings.model.top_layers,
        "max_length": settings.model.max_length, "train_args": asdict(args) | {"max_train_seconds": None},
        "train_examples": len(train),
    }
    return registry.publish(task, staging, manifest).version


def _fit_router(model, cache: FeatureCache, snapshot: Snapshot, metrics: dict):
    """Question-vs-review router on the FAQ embedding: questions = FAQ texts, reviews = sentiment texts."""
    questions = [t for t, _ in snapshot.pairs("faq", "train")] + [q for q, _ in snapshot.faq_anchors]
    reviews = [t for t, _ in snapshot.pairs("sentiment", "train")]
    if not questions or not reviews:
        return None
    vectors = embed(model, cache, questions + reviews)
    labels = np.array([1] * len(questions) + [0] * len(reviews))
    router = train_router(vectors, labels)
    test_q = [t for t, _ in snapshot.pairs("faq", "test")]
    test_r = [t for t, _ in snapshot.pairs("sentiment", "test")]
    if test_q and test_r:
        metrics["router_accuracy"] = router_accuracy(router, embed(model, cache, test_q + test_r),
                                                     np.array([1] * len(test_q) + [0] * len(test_r)))
    return router


def evaluate_active(settings: Settings) -> dict[str, Any]:
    """Score the active adapters (and the base model for FAQ) on the current snapshot's test split."""
    with Store(settings.paths.database) as store:
        snapshot = take_snapshot(store)
        encoder = load_encoder(settings)
        cache = FeatureCache(encoder, settings.paths.model_cache / "features")
        registry = AdapterRegistry(settings.paths.adapters, store)
        report: dict[str, Any] = {"snapshot_id": snapshot.id, "counts": snapshot.counts}
        for task in TASKS:
            test, languages = snapshot.pairs(task, "test"), snapshot.languages(task, "test")
            active = _active_model(task, registry, encoder)
            entry: dict[str, Any] = {"active_version": active[0] if active else None}
            if task == "sentiment":
                entry["active"] = score_sentiment(active[1], cache, test, languages) if active else None
            else:
                entry["active"] = _score_faq_all(active[1], cache, snapshot, test, languages) if active else None
                entry["base"] = _score_faq_all(new_faq_model(encoder, TrainArgs()), cache, snapshot, test, languages)
            report[task] = entry
        return report


def _child_main(settings: Settings, trigger: str, run_id: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s train[%(process)d] %(levelname)s %(message)s")
    retrain(settings, trigger, run_id=run_id)


def run_in_child(settings: Settings, trigger: str = "manual", timeout: float | None = None) -> dict[str, Any]:
    """Run `retrain` in a separate process (spawned, `model.train_threads` torch threads); blocks until done.

    Whatever happens to the child (crash, kill -9, timeout), the run is recorded and the active
    adapters stay as they were.
    """
    with Store(settings.paths.database) as store:
        run_id = store.runs.start(trigger)
    process = multiprocessing.get_context("spawn").Process(
        target=_child_main, args=(settings, trigger, run_id),
        name="shopbot-train", daemon=True)
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
    with Store(settings.paths.database) as store:
        run = store.runs.get(run_id)
        if run.status == "running":
            reason = f"training process ended with exit code {process.exitcode} before finishing"
            store.runs.finish(run_id, "failed", None, {"status": "failed", "reasons": [reason]}, reason)
            _reject_orphans(settings, store, since=run.started_at, reason=reason)
            run = store.runs.get(run_id)
        return dict(run.result or {"status": run.status})


def _reject_orphans(settings: Settings, store: Store, since: str, reason: str) -> None:
    """Candidates a dead child published but never gated are marked rejected (never served either way)."""
    registry = AdapterRegistry(settings.paths.adapters, store)
    for task in TASKS:
        for record in store.adapters.history(task):
            if record.status == "candidate" and record.created_at >= since:
                registry.reject(record.version, [f"not gated: {reason}"])

