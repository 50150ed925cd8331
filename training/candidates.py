"""The retrain as one pure function: (snapshot, recipe, base model, active adapters) -> candidate adapter folders + metrics.

`train_candidates` touches no database and no path of the serving machine: it reads the base
model folder and the active adapters' folders it is given, writes each task's candidate into
`out/<task>` (with `trained_on.json`) and returns what the serving side needs to verify, publish
and gate them (`training.pipeline`): per task the candidate's metrics, the active adapter's on the
same examples, the regression set, and the sha256 of every file it wrote. It runs the same in the
serving process, in a spawned child or as a Ray task (`training.backends`); what it is given and
returns are the torch-free records of `training.job`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from training.encoder import Encoder, encoder_at
from training.estimate import HOLDOUT, HOLDOUT_REFIT, Estimate, estimate_plan
from training.export_onnx import export_adapter
from training.features import FeatureCache
from training.job import ActiveAdapter, Candidate, Recipe, Trained
from training.measure import compare_unseen, cross_validate, held_out, pairs_of, report_on, row_key, top1_accuracy
from training.registry import hash_folder
from training.snapshot import Snapshot
from training.tasks import TaskSpec, read_trained_on, task_specs, write_trained_on

log = logging.getLogger(__name__)

PEFT_CONFIG = "adapter_config.json"
SEED = 0  # torch's global seed at the start of every retrain (the trainers seed their own shuffles: TrainArgs.seed)


def train_candidates(snapshot: Snapshot, recipe: Recipe, base: Path, active: Mapping[str, ActiveAdapter],
                     out: Path, features: Path | None = None) -> Trained:
    """Train, estimate and compare every task's candidate on `snapshot`; save each into `out/<task>`.

    `base`: the base model folder; `active`: per task, the adapter serving now (its folder is only
    read); `features`: a folder for the trunk feature cache (a cache: results do not depend on it).
    Runs with `model.train_threads` torch threads and a fixed seed, so the same inputs give the same
    candidates wherever it runs.
    """
    torch.set_num_threads(recipe.model.train_threads)  # more threads thrash on 2 shared cores
    torch.manual_seed(SEED)
    encoder = encoder_at(Path(base), recipe.model)
    cache = FeatureCache(encoder, features)
    candidates = []
    for task, spec in task_specs(cache, recipe.args).items():
        if not snapshot.pairs(task, "train"):
            log.warning("no %s training examples: skipping that task", task)
            continue
        candidates.append(_train_task(spec, recipe, snapshot, active.get(task), Path(out), encoder))
    return Trained(snapshot.id, tuple(candidates))


def _train_task(spec: TaskSpec[Any], recipe: Recipe, snapshot: Snapshot, active_adapter: ActiveAdapter | None,
                out: Path, encoder: Encoder) -> Candidate:
    """Train one candidate, estimate it (`training.estimate`: holdout, holdout+refit or CV), compare it with the active on unseen rows, save it."""
    started = time.perf_counter()
    thresholds = recipe.thresholds
    task, anchors = spec.name, list(snapshot.faq_anchors)
    rows = snapshot.rows[task]
    threshold = spec.threshold(thresholds)
    train_rows = [r for r in rows if r.split == "train"]
    fit_rows = [r for r in rows if r.split != "validation"]
    validation = pairs_of([r for r in rows if r.split == "validation"])
    test_rows = [r for r in rows if r.split == "test"]
    base = spec.base()  # the untrained model (FAQ), scored the same way; None where there is none
    plan = estimate_plan(len(test_rows), len(fit_rows), threshold, thresholds.max_interval, thresholds.cv_folds)
    if plan.method in (HOLDOUT, HOLDOUT_REFIT):  # score a model on held-out rows it was not fitted on
        folds, evaluated = 0, held_out(rows, plan.held_out)
        scored = {row_key(r.text) for r in evaluated}
        held_fit = [r for r in train_rows if row_key(r.text) not in scored]
        model = spec.fit(pairs_of(held_fit), validation, anchors)
        texts, index = [r.text for r in evaluated], anchors + pairs_of(held_fit)
        ranked = spec.ranked(model, texts, index)
        base_ranked = spec.ranked(base, texts, index) if base is not None else None
        if plan.method == HOLDOUT:  # ships as scored
            fit_rows = held_fit
        else:  # the test split was enlarged from train: ship a model refitted on all fit rows, as CV does
            model = spec.fit(pairs_of(fit_rows), validation, anchors)
    else:  # too few rows to hold out enough: score the recipe on every row, then ship it trained on all of them
        folds, evaluated = thresholds.cv_folds, list(rows)
        ranked = cross_validate(spec, evaluated, anchors, folds)
        base_ranked = cross_validate(spec, evaluated, anchors, folds, fit=lambda *_: base) if base is not None else None
        model = spec.fit(pairs_of(fit_rows), validation, anchors)
    seen = {row_key(r.text) for r in fit_rows} | {row_key(t) for t, _ in validation}
    estimate = Estimate.of([bool(labels) and labels[0] == r.label for labels, r in zip(ranked, evaluated)], plan.method,
                           folds)
    metrics = report_on(spec, evaluated, ranked) | estimate.as_dict()
    base_metrics = report_on(spec, evaluated, base_ranked) if base_ranked is not None else None
    active = ((active_adapter.version, spec.load(active_adapter.folder), read_trained_on(active_adapter.folder))
              if active_adapter is not None else None)
    comparison = compare_unseen(spec, active, rows, evaluated, ranked, anchors) if active else None
    regression = snapshot.regression_set(task)
    known = anchors + pairs_of(train_rows)
    cand_reg = top1_accuracy(spec, model, regression, known) if regression else None
    act_reg = top1_accuracy(spec, active[1], regression, known) if regression and active else None
    folder = out / task
    _save(spec, spec.finish(model, snapshot, metrics), folder, seen, recipe.model.base)  # finish() may add to metrics
    export_adapter(task, folder, encoder)  # its ONNX graph and probe, in the trainer: covered by the checksums below
    return Candidate(task, task, hash_folder(folder), threshold, metrics, base_metrics,
                     comparison.as_dict() if comparison else None, cand_reg, act_reg,
                     active[0] if active else None, len(fit_rows), round(time.perf_counter() - started, 1))


def _save(spec: TaskSpec[Any], model: Any, folder: Path, seen: set[str], base: str) -> None:
    """Write the shipped model and the keys it was fitted on into a new folder.

    peft records the base model's folder in adapter_config.json, and its target modules in set order (which
    differs between processes): the file names the configured base (`model.base`) instead of wherever this
    trainer found it, modules sorted, so the same training gives the same files wherever it ran.
    """
    folder.mkdir(parents=True)
    spec.save(model, folder)
    write_trained_on(folder, sorted(seen))
    config = folder / PEFT_CONFIG
    if config.is_file():
        content = json.loads(config.read_text()) | {"base_model_name_or_path": base}
        if isinstance(content.get("target_modules"), list):
            content["target_modules"] = sorted(content["target_modules"])
        config.write_text(json.dumps(content, indent=2, sort_keys=True))
