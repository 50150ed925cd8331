"""The check every runtime's hot swap must pass: requests racing swaps never see a mixture of two models."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from serving.runtime import ModelRuntime, ServingModel


def assert_swaps_never_mix(models: Sequence[ServingModel], texts: list[str], swaps: int) -> None:
    """Swap between two distinguishable models `swaps` times while 3 threads decide `texts`: every batch must be
    served by one version with exactly that version's outputs, and both versions must have served."""
    runtime = ModelRuntime(models[0], answer_threshold=0.5)
    expected = {}
    for model in models:
        runtime.swap(model)
        expected[model.version] = [(d.label, d.confidence) for d in runtime.decide_batch(texts)]
    assert expected["sentiment=a"] != expected["sentiment=b"], "the two models must be distinguishable"
    errors: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            decisions = runtime.decide_batch(texts)
            versions = {d.version for d in decisions}
            if len(versions) != 1:
                errors.append(f"one batch served by several versions: {versions}")
                continue
            version = versions.pop()
            seen.add(version)
            got = [(d.label, d.confidence) for d in decisions]
            if got != expected[version]:
                errors.append(f"outputs of {version} do not match that model: {got}")

    workers = [threading.Thread(target=ask) for _ in range(3)]
    for w in workers:
        w.start()
    for i in range(swaps):
        runtime.swap(models[i % 2])
        time.sleep(0.005)
    stop.set()
    for w in workers:
        w.join()
    assert not errors, errors[:3]
    assert seen == {"sentiment=a", "sentiment=b"}
