"""The ONNX Runtime serving path: export at publish, checks before serving, torch-free bot, atomic swaps."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from swapkit import assert_swaps_never_mix

from serving.loading import build_serving, choose_runtime, load_active, load_base, load_runtime
from serving.onnx_models import GraphRefused, OnnxBase, OnnxTop
from serving.runtime import ModelRuntime, ServingModel
from storage.seed import load_demo
from storage.store import Store
from training.args import TrainArgs
from training.encoder import Encoder, SentimentModel
from training.export_onnx import TOP_GRAPH, TOP_PROBE, export_base, export_top
from training.faq_index import FaqIndex
from training.features import FeatureCache
from training.pipeline import retrain
from training.registry import AdapterRegistry, CorruptAdapterError
from training.router import RouterWeights

REPO = Path(__file__).resolve().parents[1]
FAST = TrainArgs(epochs=1, min_steps=0, batch_size=16, progress=False)
OPEN = {"sentiment_accuracy": 0.0, "faq_accuracy": 0.0, "max_regression": 1.0, "max_interval": 1.0}
PROBE = ["珍珠太硬了", "能做少糖吗?", "do you deliver?", "great tea", "还行吧", "the pearls were stale",
         "几点开门", "can I pay by card", "太甜了!!", "not bad", "外卖多久到", "the staff were lovely"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory, tiny_base):
    """The demo shop on the tiny model, trained once: both adapters promoted (open gate), graphs published."""
    from settings import settings_from_dict

    folder = tmp_path_factory.mktemp("onnx-shop")
    settings = settings_from_dict({"model": {"base": str(tiny_base), "top_layers": 1, "runtime": "onnx"},
                                   "thresholds": OPEN, "shop": {"languages": ["zh", "en"]}}, folder, env={})
    with Store(settings.paths.database) as store:
        load_demo(store, REPO / "data" / "demo")
    result = retrain(settings, args=FAST)
    assert result["status"] == "promoted", result
    return settings


def _decisions(runtime: ModelRuntime) -> list[tuple[str, str | None]]:
    return [(d.kind, d.label) for d in runtime.decide_batch(PROBE)]


def test_a_batch_of_mixed_lengths_decides_as_each_message_alone(shop):
    """The trunk and the tops run a batch in groups of similar lengths: one long review no longer pads the rest."""
    batch = ["好喝", "能做少糖吗?", "the pearls were stale and the tea was cold and watery, " * 8, "not bad", "几点开门"]
    with Store(shop.paths.database) as store:
        runtime = load_runtime(shop, store)
    encoder = runtime.serving.encoder
    grouped = encoder.trunk_features(batch)
    assert [len(f) for f in grouped] == [len(encoder.trunk_features([t])[0]) for t in batch]
    for text, features in zip(batch, grouped):
        assert np.allclose(features, encoder.trunk_features([text])[0], atol=1e-5)
    alone = [runtime.decide_batch([t])[0] for t in batch]
    together = runtime.decide_batch(batch)
    assert [(d.kind, d.label) for d in together] == [(d.kind, d.label) for d in alone]
    assert np.allclose([d.confidence for d in together], [d.confidence for d in alone], atol=1e-5)


def test_runtime_choice():
    from settings import settings_from_dict

    def runtime(**model):
        return choose_runtime(settings_from_dict({"model": model}, Path("/tmp"), env={}))

    assert runtime(device="cpu") == "onnx"
    assert runtime(runtime="torch") == "torch"
    assert runtime(device="cuda", runtime="auto") == "torch"
    from settings import ConfigError

    with pytest.raises(ConfigError, match=r"model\.runtime"):
        runtime(device="cuda", runtime="onnx")
    with pytest.raises(ConfigError, match=r"model\.runtime"):
        runtime(runtime="tensorrt")


def test_published_adapters_carry_a_checked_graph_covered_by_their_checksums(shop):
    with Store(shop.paths.database) as store:
        registry = AdapterRegistry(shop.paths.adapters, store)
        for task in ("sentiment", "faq"):
            _, folder = registry.active_verified(task)
            manifest = json.loads((folder / "manifest.json").read_text())
            assert {TOP_GRAPH, TOP_PROBE} <= set(manifest["files"]), task
            OnnxTop.load(folder / TOP_GRAPH, folder / TOP_PROBE, logits=task == "sentiment")


def test_onnx_and_torch_runtimes_decide_alike_on_a_fixed_probe_set(shop):
    with Store(shop.paths.database) as store:
        onnx = load_runtime(shop, store)
        torch_runtime = load_runtime(replace(shop, model=replace(shop.model, runtime="torch")), store)
    assert isinstance(onnx.serving.encoder, OnnxBase) and isinstance(torch_runtime.serving.encoder, Encoder)
    assert onnx.serving.version == torch_runtime.serving.version != "base"
    assert _decisions(onnx) == _decisions(torch_runtime)  # float32 graphs: the same decisions
    cos = (onnx.serving.embed(PROBE) * torch_runtime.serving.embed(PROBE)).sum(1)
    assert cos.min() > 0.999


def test_the_bot_process_on_the_onnx_path_never_imports_torch(shop):
    script = (
        "import json, sys\n"
        "from serving.loading import load_runtime\n"
        "from settings import settings_from_dict\n"
        "from storage.store import Store\n"
        f"settings = settings_from_dict({json.dumps(_raw(shop))}, __import__('pathlib').Path({str(shop.paths.database.parent)!r}), env={{}})\n"
        "with Store(settings.paths.database) as store:\n"
        "    runtime = load_runtime(settings, store)\n"
        f"decisions = [(d.kind, d.label) for d in runtime.decide_batch({PROBE!r})]\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'transformers': 'transformers' in sys.modules,"
        " 'version': runtime.serving.version, 'decisions': decisions}))\n")
    out = subprocess.run([sys.executable, "-c", script], check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["torch"] is False and got["transformers"] is False
    with Store(shop.paths.database) as store:
        here = load_runtime(shop, store)
    assert got["version"] == here.serving.version
    assert [tuple(d) for d in got["decisions"]] == _decisions(here)


def _raw(settings) -> dict:
    """The few settings the subprocess needs, as a config dict (paths relative to the shop folder)."""
    return {"model": {"base": settings.model.base, "top_layers": settings.model.top_layers, "runtime": "onnx"},
            "paths": {"database": str(settings.paths.database), "adapters": str(settings.paths.adapters),
                      "model_cache": str(settings.paths.model_cache)},
            "thresholds": OPEN, "shop": {"languages": ["zh", "en"]}}


# The bot's side of a retrain, a swap, /status and a rollback, as the bot runs them (bot.services, shop.retraining),
# in a fresh process on the ONNX path; the training runs in the real spawned child. A guard notes who imports what
# (tests/importguard.py).
BOT_RETRAINS = """
import asyncio, json, sys
from tests.importguard import install
guard = install(sys.argv[2])  # argv: config, repo, shop folder
from pathlib import Path
from bot.services import open_services
from settings import settings_from_dict
from shop.report.text import build_status_text
from shop.retraining import retrain_and_swap, roll_back
from training.args import TrainArgs
from training.pipeline import run_retrain

settings = settings_from_dict(json.loads(sys.argv[1]), Path(sys.argv[3]), env={})
FAST = TrainArgs(epochs=1, min_steps=0, batch_size=16, progress=False)

async def main():
    services = await open_services(settings)
    try:
        before = services.runtime.serving.version
        retrained = await retrain_and_swap(settings, "manual", services.reload_adapters,
                                           lambda s, trigger: run_retrain(s, trigger, args=FAST))
        swapped = services.runtime.serving.version
        status = build_status_text(settings, services.store, swapped, services.retraining, "en")
        waiting = services.waiting_to_train
        rolled = [getattr(outcome, "version", outcome) for _, outcome in roll_back(settings, services.store)]
        restored = await services.reload_adapters()
        decided = [(d.kind, d.label) for d in await asyncio.gather(*(services.decide(t) for t in ("do you deliver?", "太甜了")))]
    finally:
        await services.aclose()
    return {"before": before, "status": retrained.status, "swapped": swapped, "rolled": rolled, "restored": restored,
            "status_text": bool(status), "waiting": waiting, "decided": decided, "imported": guard.imported,
            "in_sys_modules": guard.loaded()}

print(json.dumps(asyncio.run(main())))
"""


def test_a_retrain_swap_status_and_rollback_on_the_onnx_path_import_no_torch_into_the_bot(shop, tmp_path):
    settings = _copied(shop, tmp_path)
    out = subprocess.run([sys.executable, "-c", BOT_RETRAINS, json.dumps(_raw(settings)), str(REPO),
                          str(settings.paths.database.parent)], check=False,
                         cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["status"] == "promoted" and got["swapped"] != got["before"], got  # trained in the child, swapped in
    assert got["restored"] == got["before"], got  # the rollback served what served before the retrain
    assert got["status_text"] and got["waiting"] is False and len(got["decided"]) == 2, got
    assert got["imported"] == [], "the bot process imported:\n" + "\n".join(got["imported"])
    assert got["in_sys_modules"] == []


def _copied(shop, tmp_path):
    """The trained shop's folder copied (database, adapters, graphs and feature cache): a test may change it."""
    import shutil

    copy = tmp_path / "shop"
    shutil.copytree(shop.paths.database.parent, copy)
    return replace(shop, paths=replace(shop.paths, database=copy / shop.paths.database.name,
                                       adapters=copy / shop.paths.adapters.name,
                                       model_cache=copy / shop.paths.model_cache.name))


def test_a_corrupt_published_graph_is_refused_by_its_checksum(shop, tmp_path):
    settings = _copied(shop, tmp_path)
    with Store(settings.paths.database) as store:
        registry = AdapterRegistry(settings.paths.adapters, store)
        record, folder = registry.active_verified("sentiment")
        graph = folder / TOP_GRAPH
        graph.write_bytes(graph.read_bytes()[:-100] + b"\0" * 100)
        with pytest.raises(CorruptAdapterError):
            registry.verify(record)


def test_a_graph_that_fails_its_probe_is_refused_and_the_previous_model_keeps_serving(shop, tmp_path):
    base = load_base(shop)
    with Store(shop.paths.database) as store:
        runtime = ModelRuntime(load_active(base, shop, store), 0.5)
        before = _decisions(runtime)
        registry = AdapterRegistry(shop.paths.adapters, store)
        _, folder = registry.active_verified("sentiment")
        bad = tmp_path / "bad"
        bad.mkdir()
        for name in ("labels.json", TOP_GRAPH):
            (bad / name).write_bytes((folder / name).read_bytes())
        stored = dict(np.load(folder / TOP_PROBE))
        stored["expected"] = -stored["expected"]  # the graph of some other model
        np.savez(bad / TOP_PROBE, **stored)
        with pytest.raises(GraphRefused):
            build_serving(base, store, bad, None, {"sentiment": "bad"})
        (bad / TOP_GRAPH).write_bytes(b"not a graph")
        with pytest.raises(GraphRefused):
            build_serving(base, store, bad, None, {"sentiment": "bad"})
    assert _decisions(runtime) == before  # nothing was swapped


@pytest.fixture(scope="module")
def tiny_onnx(tiny_base, tmp_path_factory):
    graphs = tmp_path_factory.mktemp("graphs") / "base"
    export_base(tiny_base, 1, 128, graphs)
    return OnnxBase(graphs, tiny_base, 1), Encoder(tiny_base, top_layers=1)


def _onnx_serving(tiny_onnx, tmp_path: Path, seed: int, version: str) -> ServingModel:
    base, encoder = tiny_onnx
    torch.manual_seed(seed)
    folder = tmp_path / version
    folder.mkdir()
    export_top(SentimentModel(encoder.new_top(), encoder.hidden_size, 3).eval(), encoder, folder)
    sentiment = OnnxTop.load(folder / TOP_GRAPH, folder / TOP_PROBE, logits=True)
    faq = base.base_faq
    index = FaqIndex.build(faq, FeatureCache(base), [("几点开门", "hours"), ("do you deliver", "delivery")])
    router = RouterWeights(np.zeros(base.hidden_size, dtype=np.float32), -10.0)
    return ServingModel(base, faq, index, sentiment, router=router, versions={"sentiment": version})


def test_swap_of_onnx_models_under_concurrent_requests_never_mixes_them(tiny_onnx, tmp_path):
    models = [_onnx_serving(tiny_onnx, tmp_path, 1, "a"), _onnx_serving(tiny_onnx, tmp_path, 2, "b")]
    assert_swaps_never_mix(models, PROBE, swaps=60)
