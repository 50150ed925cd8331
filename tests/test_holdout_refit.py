"""The enlarged held-out set ("holdout+refit"): which rows it holds, what is fitted on what, what ships, what is compared.

A fake task spec records every fit, so these run in milliseconds: `_train_task` is driven with
rows whose splits are set by hand (the sizes choose the method), and the ONNX export is replaced
by nothing (it has its own tests).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import training.candidates
from settings import ModelSettings, ThresholdSettings
from training.candidates import ActiveAdapter, Recipe, _train_task
from training.measure import held_out, row_key
from training.snapshot import Row, Snapshot
from training.tasks import read_trained_on, write_trained_on

LABELS = ("a", "b", "c", "d")


def shop_rows(train: int, validation: int, test: int) -> tuple[Row, ...]:
    """Rows with the splits given, labels in turn, sorted as a snapshot sorts them."""
    splits = ["train"] * train + ["validation"] * validation + ["test"] * test
    rows = [Row(f"text {i}", LABELS[i % len(LABELS)], "en", split, "seed") for i, split in enumerate(splits)]
    return tuple(sorted(rows, key=lambda r: (r.split, r.text)))


class FakeSpec:
    """A task whose models are the sets of texts they were fitted on; it refuses to predict a text its model saw."""

    name = "faq"

    def __init__(self, truth: dict[str, str]) -> None:
        self.truth = truth
        self.fits: list[tuple[frozenset[str], frozenset[str]]] = []  # (train texts, validation texts)

    def threshold(self, thresholds: ThresholdSettings) -> float:
        return thresholds.faq_accuracy

    def fit(self, train: Sequence[tuple[str, str]], validation: Sequence[tuple[str, str]], anchors: Any = ()) -> int:
        assert not {t for t, _ in train} & {t for t, _ in validation}
        self.fits.append((frozenset(t for t, _ in train), frozenset(t for t, _ in validation)))
        return len(self.fits) - 1

    def base(self) -> None:
        return None

    def ranked(self, model: int | frozenset[str], texts: Sequence[str], index: Any = ()) -> list[list[str]]:
        seen = model if isinstance(model, frozenset) else self.fits[model][0] | self.fits[model][1]
        assert not set(texts) & seen, "predicted a text its model was fitted on"
        return [[self.truth[t]] for t in texts]

    def report(self, texts: Sequence[str], references: Sequence[str], ranked: Any, languages: Any = None) -> dict:
        return {"accuracy": sum(r[0] == y for r, y in zip(ranked, references)) / max(len(texts), 1)}

    def finish(self, model: int, snapshot: Snapshot, metrics: dict) -> int:
        return model

    def save(self, model: int, folder: Path) -> None:
        (folder / "model.json").write_text(json.dumps(model))

    def load(self, folder: Path) -> frozenset[str]:  # an active adapter: it "saw" what it records
        keys = read_trained_on(folder) or frozenset()
        return frozenset(t for t in self.truth if row_key(t) in keys)


def train(rows: tuple[Row, ...], out: Path, monkeypatch: pytest.MonkeyPatch, active: ActiveAdapter | None = None,
          **thresholds: Any) -> tuple[FakeSpec, training.candidates.Candidate]:
    monkeypatch.setattr(training.candidates, "export_adapter", lambda *_: None)
    spec = FakeSpec({r.text: r.label for r in rows})
    recipe = Recipe(ModelSettings(), ThresholdSettings(**({"faq_accuracy": 0.85, "max_interval": 0.05} | thresholds)))
    snapshot = Snapshot({"faq": rows}, (), "snap")
    candidate = _train_task(spec, recipe, snapshot, active, out, None)  # type: ignore[arg-type]
    return spec, candidate


def test_the_held_out_set_is_the_test_split_plus_train_rows_never_validation_and_always_the_same() -> None:
    rows = shop_rows(1200, 150, 150)
    held = held_out(rows, 195)
    assert len(held) == len({r.text for r in held}) == 195
    assert {r for r in rows if r.split == "test"} <= set(held)
    assert {r.split for r in held} == {"train", "test"}  # 45 moved from train, none from validation
    moved = [r for r in held if r.split == "train"]
    assert {r.label: sum(m.label == r.label for m in moved) for r in moved} == {"a": 11, "b": 12, "c": 11, "d": 11}
    shuffled = list(rows)
    random.Random(1).shuffle(shuffled)
    assert set(held_out(tuple(shuffled), 195)) == set(held)  # by key, not by order
    assert held_out(rows, 150) == [r for r in rows if r.split == "test"]  # a large enough test split as it is


@pytest.mark.parametrize(("sizes", "method", "n", "fits"), [
    ((1200, 150, 150), "holdout+refit", 195, 2),  # like the 5,000-example bench's FAQ: 195 ≤ 1350 / 5
    ((1200, 150, 200), "holdout", 200, 1),
    ((700, 90, 80), "cv", 870, 6),  # 195 > 780 / 5: a fold's model would see more than the held-out one
])
def test_the_sizes_choose_the_method_and_its_number_of_fits(sizes: tuple[int, int, int], method: str, n: int,
                                                            fits: int, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    spec, candidate = train(shop_rows(*sizes), tmp_path, monkeypatch)
    assert (candidate.metrics["method"], candidate.metrics["n"], len(spec.fits)) == (method, n, fits)
    assert candidate.metrics["accuracy"] == 1.0  # every prediction by a model that never saw the row (FakeSpec)


def test_the_refit_ships_fitted_on_every_row_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = shop_rows(1200, 150, 150)
    spec, candidate = train(rows, tmp_path, monkeypatch)
    (scored_train, scored_validation), (shipped_train, shipped_validation) = spec.fits
    held = {r.text for r in held_out(rows, 195)}
    train_texts = {r.text for r in rows if r.split == "train"}
    assert scored_train == train_texts - held and len(scored_train) == 1155  # the rest of train
    assert shipped_train == {r.text for r in rows if r.split != "validation"}  # train + test + moved
    assert scored_validation == shipped_validation == {r.text for r in rows if r.split == "validation"}
    assert json.loads((tmp_path / "faq" / "model.json").read_text()) == 1  # the refit is what ships
    assert read_trained_on(tmp_path / "faq") == {row_key(r.text) for r in rows}  # all of it is "seen"
    assert candidate.train_examples == 1350 and candidate.metrics["folds"] == 0


def test_the_refit_is_compared_with_the_active_only_on_rows_neither_was_fitted_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = shop_rows(1200, 150, 150)
    held = held_out(rows, 195)
    active_folder = tmp_path / "active"
    active_folder.mkdir()
    seen_by_active = [r for r in rows if r.split == "validation" or r.text.endswith(("1", "2", "3"))]
    write_trained_on(active_folder, [row_key(r.text) for r in seen_by_active])
    _, candidate = train(rows, tmp_path / "out", monkeypatch, ActiveAdapter("f-1", active_folder))
    unseen = [r for r in held if r not in seen_by_active]
    assert 0 < len(unseen) < len(held)
    assert candidate.comparison is not None and candidate.comparison["n"] == len(unseen)  # FakeSpec: never a seen row
    assert candidate.active_version == "f-1"
