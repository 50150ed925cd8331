"""The Ray training backend against a local Ray instance this module starts (one, on 127.0.0.1, shut down after).

The same snapshot trained as a Ray task and in the local child gives the same candidates, which the serving
side publishes and promotes the same way; a failing or overdue remote task is a failed run with the reason,
and the active adapters stay. Skipped with a reason where ray (the optional extra shopbot[cluster]) is missing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from settings import Settings
from storage.seed import load_demo
from storage.store import Store
from training.args import TrainArgs
from training.backends import SCRATCH_ENV, LocalChild, RayCluster, timeout_reason
from training.pipeline import retrain
from training.registry import ADAPTER_MANIFEST, AdapterRegistry

DEMO_SHOP = Path(__file__).resolve().parents[1] / "data" / "demo"
FAST = TrainArgs(epochs=1, min_steps=0, batch_size=16, progress=False)
LOOSE = {"sentiment_accuracy": 0.0, "faq_accuracy": 0.0, "max_regression": 1.0, "max_interval": 1.0}


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Ray instance for the module: 1 CPU, no dashboard, loopback only, no usage reports."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SCRATCH_ENV, str(tmp_path_factory.mktemp("ray-worker")))  # the workers' base copy and caches
        env.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read when ray is imported: bind to 127.0.0.1
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        env.setenv("RAY_AUTH_MODE", "disabled")  # a loopback-only test instance (no token file in the home folder)
        ray = pytest.importorskip("ray", reason="the Ray backend needs the optional extra: pip install 'shopbot[cluster]'")
        ray.init(num_cpus=1, include_dashboard=False, logging_level="WARNING")
        try:
            assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
            yield ray
        finally:
            ray.shutdown()


def _demo_shop(make_settings, tiny_base: Path, name: str, **sections: Any) -> Settings:
    settings = make_settings(paths={"database": f"{name}/shop.db", "adapters": f"{name}/adapters",
                                    "model_cache": f"{name}/models"},
                             model={"base": str(tiny_base), "top_layers": 1}, thresholds=LOOSE, **sections)
    with Store(settings.paths.database) as store:
        load_demo(store, DEMO_SHOP)
    return settings


def _served(settings: Settings) -> dict[str, tuple[str, dict]]:
    """{task: (active version, its manifest's files)} after checking every file."""
    with Store(settings.paths.database) as store:
        registry = AdapterRegistry(settings.paths.adapters, store)
        found = {}
        for task in ("sentiment", "faq"):
            record = registry.active(task)
            if record is not None:
                manifest = json.loads((registry.verify(record) / ADAPTER_MANIFEST).read_text())
                found[task] = (record.version, manifest["files"])
        return found


def _without_versions(result: dict) -> dict:
    """A run's result with what differs between two shops by construction (versions, seconds) left out."""
    tasks = {task: {k: v for k, v in outcome.items() if k not in ("version", "train_seconds")}
             for task, outcome in result["tasks"].items()}
    return {"status": result["status"], "snapshot_id": result["snapshot_id"], "tasks": tasks}


def test_the_same_snapshot_trained_as_a_ray_task_and_in_the_local_child_is_published_and_promoted_the_same(
        local_ray, make_settings, tiny_base: Path) -> None:
    local_shop, ray_shop = (_demo_shop(make_settings, tiny_base, name) for name in ("local", "ray"))
    limit = local_shop.schedule.retrain_timeout_minutes
    local = retrain(local_shop, "manual", args=FAST, backend=LocalChild(limit))
    remote = retrain(ray_shop, "manual", args=FAST, backend=RayCluster("", limit))
    assert local["status"] == remote["status"] == "promoted", (local["reasons"], remote["reasons"])
    for task in ("sentiment", "faq"):  # same seed, same recipe: the same accuracy (well within 0.5 point)
        assert abs(local["tasks"][task]["metrics"]["accuracy"] - remote["tasks"][task]["metrics"]["accuracy"]) <= 0.005
    assert _without_versions(local) == _without_versions(remote)  # every metric, reason and gate decision
    served_local, served_ray = _served(local_shop), _served(ray_shop)
    assert set(served_local) == set(served_ray) == {"sentiment", "faq"}
    differing = {task: sorted(name for name in {*files, *served_ray[task][1]} if files.get(name) != served_ray[task][1].get(name))
                 for task, (_, files) in served_local.items()}
    assert differing == {"sentiment": [], "faq": []}, "the very same adapter files"
    with Store(ray_shop.paths.database) as store:
        assert store.runs.last().status == "promoted"
        assert [a.status for a in store.adapters.history("sentiment")] == ["active"]

    again = retrain(ray_shop, "manual", args=FAST, backend=RayCluster("", limit))  # compared with the active it sent
    assert again["status"] == "promoted"
    assert again["tasks"]["sentiment"]["active_version"] == served_ray["sentiment"][0]
    assert again["tasks"]["sentiment"]["comparison"] is not None


def _with_an_active_adapter(settings: Settings) -> str:
    """Publish and promote a stand-in sentiment adapter (what the failing runs must leave serving)."""
    with Store(settings.paths.database) as store:
        registry = AdapterRegistry(settings.paths.adapters, store)
        staging = registry.staging_dir("sentiment")
        (staging / "adapter_model.safetensors").write_bytes(b"weights")
        version = registry.publish("sentiment", staging, {"metrics": {"accuracy": 0.9}, "base_model": "tiny"}).version
        registry.promote(version, ["set up by the test"])
        return version


def _failed_and_nothing_changed(settings: Settings, active: str, result: dict) -> str:
    with Store(settings.paths.database) as store:
        run = store.runs.last()
        assert result["status"] == run.status == "failed" and run.error
        assert store.adapters.active("sentiment").version == active
        assert [a.version for a in store.adapters.history("sentiment")] == [active]  # no candidate published
        assert store.adapters.active("faq") is None
    (reason,) = result["reasons"]
    return reason


def test_a_failing_ray_task_is_a_failed_run_with_the_reason_and_the_active_adapters_stay(
        local_ray, make_settings, tiny_base: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-base"
    shutil.copytree(tiny_base, broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"not a model")  # the worker cannot load it
    settings = _demo_shop(make_settings, broken, "broken")
    active = _with_an_active_adapter(settings)
    result = retrain(settings, "manual", args=FAST, backend=RayCluster("", settings.schedule.retrain_timeout_minutes))
    assert _failed_and_nothing_changed(settings, active, result).startswith("the Ray training task failed: ")


def test_a_ray_task_still_running_at_the_limit_is_stopped_and_recorded(local_ray, make_settings,
                                                                      tiny_base: Path) -> None:
    settings = _demo_shop(make_settings, tiny_base, "slow", schedule={"retrain_timeout_minutes": 0.01})
    active = _with_an_active_adapter(settings)
    result = retrain(settings, "manual", args=FAST, backend=RayCluster("", 0.01))
    assert _failed_and_nothing_changed(settings, active, result) == timeout_reason(0.01)
    assert local_ray.get(local_ray.remote(lambda: "still serving tasks").remote(), timeout=120) == "still serving tasks"


BOT_ON_RAY = """
import json, sys
from tests.importguard import install
guard = install(sys.argv[2])  # argv: config, repo, shop folder
from pathlib import Path
from settings import settings_from_dict
from training.args import TrainArgs
from training.pipeline import run_retrain

settings = settings_from_dict(json.loads(sys.argv[1]), Path(sys.argv[3]), env={})
result = run_retrain(settings, "manual", args=TrainArgs(epochs=1, min_steps=0, batch_size=16, progress=False))
print(json.dumps({"status": result["status"], "reasons": result.get("reasons"), "imported": guard.imported,
                  "in_sys_modules": guard.loaded()}))
"""


def test_the_bot_side_of_a_ray_retrain_imports_no_torch(local_ray, tmp_path: Path, tiny_base: Path) -> None:
    """`training.backend = "ray"`: the bot process submits the task and gates its result without torch (or sklearn)."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    with Store(tmp_path / "shop.db") as store:
        load_demo(store, DEMO_SHOP)
    config = {"model": {"base": str(tiny_base), "top_layers": 1, "runtime": "onnx"}, "thresholds": LOOSE,
              "paths": {"database": "shop.db", "adapters": "adapters", "model_cache": "models"},
              "training": {"backend": "ray", "ray_address": local_ray.get_runtime_context().gcs_address}}
    out = subprocess.run([sys.executable, "-c", BOT_ON_RAY, json.dumps(config), str(repo), str(tmp_path)], cwd=repo,
                         capture_output=True, text=True, timeout=300, check=False,
                         env=os.environ | {"HF_HUB_OFFLINE": "1"})  # with the fixture's Ray settings
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["status"] == "promoted", got["reasons"]
    assert got["imported"] == [], "the bot process imported:\n" + "\n".join(got["imported"])
    assert got["in_sys_modules"] == []
