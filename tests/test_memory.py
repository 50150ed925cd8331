"""Correction memory: a correction added while near() is embedding is never hidden by a stale cache."""

from __future__ import annotations

import threading

import numpy as np

from serving.memory import CorrectionMemory

VECTORS = {"珍珠太硬了": [1.0, 0.0, 0.0], "奶茶太甜了": [0.0, 1.0, 0.0], "奶茶太甜了!!": [0.0, 0.99, 0.141],
           "好喝": [0.0, 0.0, 1.0]}


def embed(texts: list[str]) -> np.ndarray:
    return np.stack([np.array(VECTORS[t]) / np.linalg.norm(VECTORS[t]) for t in texts])


def test_a_correction_added_while_near_embeds_is_matched_afterwards() -> None:
    memory = CorrectionMemory(near_threshold=0.95)
    memory.add("珍珠太硬了", "review", "negative")
    model = object()
    embedding, release = threading.Event(), threading.Event()

    def slow_embed(texts: list[str]) -> np.ndarray:  # near() is rebuilding its vectors from the old items
        embedding.set()
        assert release.wait(10)
        return embed(texts)

    reader = threading.Thread(target=memory.near, args=(model, embed(["好喝"])[0], slow_embed))
    reader.start()
    assert embedding.wait(10)
    writer = threading.Thread(target=memory.add, args=("奶茶太甜了", "review", "negative"))  # staff correct meanwhile
    writer.start()
    writer.join(5)
    release.set()
    reader.join(10)
    writer.join(10)
    assert not reader.is_alive() and not writer.is_alive()

    near = memory.near(model, embed(["奶茶太甜了!!"])[0], embed)
    assert near is not None and near[0].text == "奶茶太甜了" and near[1] >= 0.95
