"""How a candidate is measured: k-fold cross-validation of a task's recipe, and the paired comparison with the active adapter.

`training.estimate` holds the statistics (intervals, folds); this module runs task specs over
snapshot rows. A row's identity across snapshots is the hash of its normalised text, which is also
what an adapter records as "trained on".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from storage.text import normalise_text
from training.estimate import Comparison, stratified_folds, stratified_sample
from training.snapshot import Row
from training.tasks import TaskSpec

log = logging.getLogger(__name__)


def row_key(text: str) -> str:
    """The identity of a labelled text across snapshots (the snapshot merges by normalised text)."""
    return hashlib.sha1(normalise_text(text).encode("utf-8")).hexdigest()[:16]


def pairs_of(rows: Sequence[Row]) -> list[tuple[str, str]]:
    """(text, label) of rows."""
    return [(r.text, r.label) for r in rows]


def held_out(rows: Sequence[Row], size: int) -> list[Row]:
    """The test split, enlarged to `size` rows with train rows (stratified by label, by row key); never validation rows.

    A test split already that large is returned as it is; the same rows give the same set anywhere.
    """
    test = [r for r in rows if r.split == "test"]
    train = [r for r in rows if r.split == "train"]
    moved = stratified_sample([r.label for r in train], [row_key(r.text) for r in train], size - len(test))
    return test + [train[i] for i in moved]


def cross_validate(spec: TaskSpec[Any], rows: Sequence[Row], anchors: Sequence[tuple[str, str]], folds: int,
                   fit: Callable[..., Any] | None = None, seed: int = 13) -> list[list[str]]:
    """Out-of-fold ranked labels for every row: k models, each predicting the fold it never saw.

    Folds are stratified by label. Within a fold's training rows, those of the validation split
    are held out for early stopping, as in the final fit. `fit` replaces `spec.fit` (e.g. the
    untrained base model, to score it the same way).
    """
    fit = fit or spec.fit
    fold_of = stratified_folds([r.label for r in rows], folds, seed)
    ranked: list[list[str]] = [[] for _ in rows]
    for fold in range(folds):
        held = [i for i, f in enumerate(fold_of) if f == fold]
        rest = [r for r, f in zip(rows, fold_of) if f != fold]
        if not held or not rest:
            continue
        train = pairs_of([r for r in rest if r.split != "validation"])
        validation = pairs_of([r for r in rest if r.split == "validation"])
        model = fit(train, validation, anchors)
        for i, labels in zip(held, spec.ranked(model, [rows[i].text for i in held], list(anchors) + train)):
            ranked[i] = labels
        log.info("%s cross-validation fold %d/%d done", spec.name, fold + 1, folds)
    return ranked


def report_on(spec: TaskSpec[Any], rows: Sequence[Row], ranked: Sequence[Sequence[str]]) -> dict[str, Any]:
    """The task's report on rows from their ranked labels."""
    return spec.report([r.text for r in rows], [r.label for r in rows], ranked, [r.language for r in rows])


def top1_accuracy(spec: TaskSpec[Any], model: Any, pairs: Sequence[tuple[str, str]], index: Sequence[tuple[str, str]]) -> float:
    """Top-1 accuracy of a model on pairs."""
    ranked = spec.ranked(model, [t for t, _ in pairs], index)
    return sum(bool(r) and r[0] == y for r, (_, y) in zip(ranked, pairs)) / max(len(pairs), 1)


def compare_unseen(spec: TaskSpec[Any], active: tuple[str, Any, frozenset[str] | None], rows: Sequence[Row],
             evaluated: Sequence[Row], ranked: Sequence[Sequence[str]],
             anchors: list[tuple[str, str]]) -> Comparison:
    """Candidate vs active on the evaluated rows the active was never fitted on (paired)."""
    _version, model, trained_on = active
    if trained_on is None:  # an adapter from before this was recorded: it was fitted on train + validation
        unseen = [i for i, r in enumerate(evaluated) if r.split == "test"]
    else:
        unseen = [i for i, r in enumerate(evaluated) if row_key(r.text) not in trained_on]
    paired = [evaluated[i] for i in unseen]
    keys = {row_key(r.text) for r in paired}
    index = anchors + pairs_of([r for r in rows if row_key(r.text) not in keys])
    active_ranked = spec.ranked(model, [r.text for r in paired], index)
    return Comparison.of([bool(ranked[i]) and ranked[i][0] == evaluated[i].label for i in unseen],
                         [bool(a) and a[0] == r.label for a, r in zip(active_ranked, paired)])
