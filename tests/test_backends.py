"""Training backends without Ray: local retrains take turns first come first served across shops, and the serving
side refuses candidates whose files are not what the trainer said it wrote (tests/test_backends_ray.py: the Ray one)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from settings import Settings
from shop.retraining import retrain_and_swap
from storage.seed import load_demo
from storage.store import Store
from training.backends import RESULT, FairTurn, TrainJob, local_turn
from training.job import Candidate, Trained
from training.pipeline import retrain
from training.registry import AdapterRegistry

MINI_SHOP = Path(__file__).parent / "data" / "mini_shop"
TURNS_ENV = "SHOPBOT_TEST_TURNS"  # the file the recording child appends to (a spawned child inherits the environment)


def record_turn(job: TrainJob) -> None:  # the training child's target: note when it trains, answer "nothing trained"
    log = Path(os.environ[TURNS_ENV])
    with log.open("a") as out:
        out.write(json.dumps({"out": str(job.out), "start": time.time()}) + "\n")
    time.sleep(1.0)
    with log.open("a") as out:
        out.write(json.dumps({"out": str(job.out), "end": time.time()}) + "\n")
    (job.out / RESULT).write_text(json.dumps(Trained(job.snapshot.id, ()).as_dict()))


def _wait_until(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _shop(make_settings, base: Path, name: str) -> Settings:
    settings = make_settings(paths={"database": f"{name}/shop.db", "adapters": f"{name}/adapters"},
                             model={"base": str(base), "top_layers": 1})
    with Store(settings.paths.database) as store:
        load_demo(store, MINI_SHOP)
    return settings


def test_two_shops_retrains_asked_at_once_train_one_at_a_time_in_the_order_asked(
        make_settings, tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.backends

    monkeypatch.setattr(training.backends, "_child_main", record_turn)  # spawned by reference: the child runs it
    monkeypatch.setenv(TURNS_ENV, str(tmp_path / "turns.jsonl"))
    shops = [_shop(make_settings, tiny_base, name) for name in ("first", "second")]
    turn = local_turn()

    async def reload() -> str:
        raise AssertionError("nothing was promoted, nothing is swapped in")

    async def requested_in_order() -> list:
        started = []
        for shop in shops:  # each asks once the one before holds or waits for its turn
            waiting = turn.queued()
            started.append(asyncio.create_task(retrain_and_swap(shop, "manual", reload)))
            await asyncio.to_thread(_wait_until, lambda: turn.queued() > waiting)  # noqa: B023 - awaited here
        return await asyncio.gather(*started)

    retrained = asyncio.run(asyncio.wait_for(requested_in_order(), 180))
    assert [r.status for r in retrained] == ["refused"] * 2  # each run was trained (to nothing) and recorded
    events = [json.loads(line) for line in (tmp_path / "turns.jsonl").read_text().splitlines()]
    owner = {str(shop.paths.adapters): name for shop, name in zip(shops, ("first", "second"))}
    timeline = [(next(name for root, name in owner.items() if e["out"].startswith(root)), "start" if "start" in e else "end")
                for e in events]
    assert timeline == [("first", "start"), ("first", "end"), ("second", "start"), ("second", "end")]
    assert turn.queued() == 0


def test_a_fair_turn_is_held_by_one_at_a_time_in_the_order_asked() -> None:
    """Many waiting at once (the hosting of many shops): none overtakes another."""
    turn, order, inside = FairTurn(), [], []

    def take(n: int) -> None:
        with turn.turn():
            inside.append(n)
            assert len(inside) == 1
            order.append(n)
            time.sleep(0.01)
            inside.remove(n)

    with turn.turn():  # held: everyone queues behind it, in the order they arrive
        threads = []
        for n in range(8):
            threads.append(threading.Thread(target=take, args=(n,)))
            threads[-1].start()
            while turn.queued() != n + 2:
                time.sleep(0.001)
    for thread in threads:
        thread.join(10)
    assert order == list(range(8)) and turn.queued() == 0


class TamperingTrainer:
    """A backend whose candidate's files differ from the checksums it sends (a corrupted transfer)."""

    def train(self, job: TrainJob) -> Trained:
        folder = job.out / "sentiment"
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"what arrived")
        candidate = Candidate("sentiment", "sentiment", {"adapter_model.safetensors": "0" * 64}, 0.0,
                              {"accuracy": 1.0, "n": 500, "low": 0.99, "high": 1.0}, None, None, None, None, None, 10, 1.0)
        return Trained(job.snapshot.id, (candidate,))


def test_a_candidate_whose_files_do_not_match_the_trainers_checksums_is_never_published(make_settings,
                                                                                        tiny_base: Path) -> None:
    settings = _shop(make_settings, tiny_base, "shop")
    result = retrain(settings, "manual", backend=TamperingTrainer())
    assert result == {"status": "failed",
                      "reasons": ["the sentiment candidate's files do not match the checksums the trainer sent"]}
    with Store(settings.paths.database) as store:
        assert store.adapters.history("sentiment") == [] and store.runs.last().status == "failed"
        assert AdapterRegistry(settings.paths.adapters, store).active("sentiment") is None
    assert not list((settings.paths.adapters / ".staging").iterdir())  # the trainer's scratch folder is gone


def test_the_ray_backend_without_ray_installed_is_a_failed_run_saying_what_to_install(
        make_settings, tiny_base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.backends import RayCluster

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    settings = _shop(make_settings, tiny_base, "shop")
    result = retrain(settings, "manual", backend=RayCluster("auto", 1.0))
    assert result == {"status": "failed", "reasons": ["training.backend = \"ray\" needs ray: pip install 'shopbot[cluster]'"]}
    with Store(settings.paths.database) as store:
        assert store.runs.last().status == "failed" and store.adapters.history("sentiment") == []


def test_a_candidate_folder_outside_the_output_folder_is_refused() -> None:
    fields = {"task": "faq", "files": {}, "threshold": 0.85, "metrics": {}, "base_metrics": None, "comparison": None,
              "candidate_regression": None, "active_regression": None, "active_version": None, "train_examples": 0,
              "train_seconds": 0.0}
    for folder in ("../faq", "/tmp/faq", "", ".."):
        with pytest.raises(ValueError, match="plain name"):
            Candidate(folder=folder, **fields)
