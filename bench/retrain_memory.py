"""The bot process's memory around a retrain and swap on the ONNX runtime: does training leave torch behind in it?

    python bench/retrain_memory.py [--shop FOLDER] [--fast] [--model-cache DIR] [--tag NAME]

This process is the bot: it opens the bot's own services (`bot.services.open_services`: the runtime
`[model] runtime` picks, ONNX Runtime on a CPU, the batcher), decides a few messages, then twice runs
what /retrain runs (`shop.retraining.retrain_and_swap` through `training.pipeline.run_retrain`: the
training in a spawned child), which swaps the promoted adapters in, and decides again; then answers
/status and rolls back (`/rollback`: the first retrain's adapters, swapped back in). After each step it reads its own VmRSS and VmHWM
(/proc/self/status), which of torch, peft, transformers and datasets are in sys.modules, and
whether libtorch is mapped in. The training child's memory is not the bot's and is not counted.

config.toml as shipped (paths in a temporary folder, the bundled base), with the gate open
(thresholds at 0, printed and saved) so that the retrain promotes and a swap happens. `--shop`:
the FAQ and reviews loaded as seed data (default data/demo); `--fast`: one epoch, no minimum of
steps (TrainArgs(epochs=1, min_steps=0), saved): the bot's side does the same work, the child less.
`--model-cache`: a folder for the base's ONNX graphs and the feature cache, kept between runs (a
cache: nothing measured depends on it but the start-up time).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401  (sys.path)
from common import REPO, product_settings, save

HEAVY = ("torch", "peft", "transformers", "datasets")
OPEN_GATE = {"sentiment_accuracy": 0.0, "faq_accuracy": 0.0, "max_regression": 1.0, "max_interval": 1.0}
MESSAGES = ["能做少糖吗?", "do you deliver to the university?", "珍珠太硬了，下次不来了", "not bad but pricey"]


def memory(step: str) -> dict[str, Any]:
    """This process's resident memory now and at its peak (MB), the heavy packages it imported, libtorch mapped."""
    gc.collect()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    found = {key: round(int(status[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}
    found |= {"imported": [name for name in HEAVY if name in sys.modules],
              "libtorch_mapped": "libtorch" in Path("/proc/self/maps").read_text()}
    print(f"{step}: {found}", flush=True)
    return {"step": step} | found


async def scenario(settings: Any, fast: bool) -> dict[str, Any]:
    """The bot's services through start, two retrains + swaps, /status and rollback + swap; memory after each."""
    from bot.services import open_services
    from shop.report.text import build_status_text
    from shop.retraining import retrain_and_swap, roll_back
    from training.args import TrainArgs
    from training.pipeline import run_retrain
    from vocabulary import RunTrigger

    args = TrainArgs(epochs=1, min_steps=0, progress=False) if fast else None
    steps = []
    services = await open_services(settings)
    try:
        await asyncio.gather(*(services.decide(text) for text in MESSAGES))
        steps.append(memory("started, decided") | {"serving": services.runtime.serving.version})
        for turn in (1, 2):  # the second one gives the rollback an earlier adapter to restore
            started = time.perf_counter()
            retrained = await retrain_and_swap(settings, RunTrigger.MANUAL, services.reload_adapters,
                                               lambda s, trigger: run_retrain(s, trigger, args))
            seconds = round(time.perf_counter() - started, 1)
            await asyncio.gather(*(services.decide(text) for text in MESSAGES))
            steps.append(memory(f"retrain {turn}, swapped, decided") | {"status": retrained.status, "seconds": seconds,
                                                                        "serving": services.runtime.serving.version})
        build_status_text(settings, services.store, services.runtime.serving.version, services.retraining, "en")
        rolled = [str(getattr(outcome, "version", outcome)) for _, outcome in roll_back(settings, services.store)]
        version = await services.reload_adapters()
        await asyncio.gather(*(services.decide(text) for text in MESSAGES))
        steps.append(memory("/status, rolled back, swapped, decided") | {"serving": version, "rollback": rolled})
    finally:
        await services.aclose()
    return {"steps": steps}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shop", type=Path, default=REPO / "data" / "demo", help="FAQ + reviews folder (seed data)")
    parser.add_argument("--fast", action="store_true", help="TrainArgs(epochs=1, min_steps=0) for the child")
    parser.add_argument("--model-cache", type=Path, help="keep the base's ONNX graphs and feature cache here")
    parser.add_argument("--tag", default="", help="results file bench/results/retrain_memory[-TAG].json")
    options = parser.parse_args(argv)
    from storage.seed import load_demo
    from storage.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        overrides: dict[str, dict] = {"thresholds": OPEN_GATE}
        if options.model_cache:
            overrides["paths"] = {"model_cache": str(options.model_cache.resolve())}
        settings = product_settings(Path(tmp), **overrides)
        with Store(settings.paths.database) as store:
            load_demo(store, options.shop)
        result = asyncio.run(scenario(settings, options.fast))
    result |= {"shop": str(options.shop), "overrides": overrides | ({"train_args": {"epochs": 1, "min_steps": 0}}
                                                                    if options.fast else {}),
               "runtime": settings.model.runtime, "backend": settings.training.backend,
               "load_average": [round(x, 2) for x in os.getloadavg()]}
    save("retrain_memory" + (f"-{options.tag}" if options.tag else ""), result)
    return result


if __name__ == "__main__":
    main()
