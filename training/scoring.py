"""Score the adapters serving now on the current snapshot's test split, with intervals (`shopbot eval`).

Loads the torch encoder and the active adapters' models, so it runs in a process of its own (the
command), never in the bot; which adapters are active is `training.pipeline.active_adapters`.
"""

from __future__ import annotations

from typing import Any

from settings import Settings
from storage.store import Store
from training.args import TrainArgs
from training.encoder import load_encoder
from training.estimate import Estimate
from training.features import FeatureCache
from training.measure import report_on
from training.pipeline import active_adapters
from training.registry import AdapterRegistry
from training.snapshot import take_snapshot
from training.tasks import TaskSpec, task_specs


def _active_model(spec: TaskSpec[Any], registry: AdapterRegistry) -> tuple[str, Any] | None:
    """(version, merged model) of the active adapter, or None (none yet, or corrupt)."""
    adapter = active_adapters(registry).get(spec.name)
    return (adapter.version, spec.load(adapter.folder)) if adapter else None


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
