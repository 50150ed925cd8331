"""Correction memory: a correction added while near() is embedding is never hidden by a stale cache; the vectors it
caches never keep a swapped-out serving model alive."""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np

from serving.memory import CorrectionMemory

VECTORS = {"珍珠太硬了": [1.0, 0.0, 0.0], "奶茶太甜了": [0.0, 1.0, 0.0], "奶茶太甜了!!": [0.0, 0.99, 0.141],
           "好喝": [0.0, 0.0, 1.0]}


def embed(texts: list[str]) -> np.ndarray:
    return np.stack([np.array(VECTORS[t]) / np.linalg.norm(VECTORS[t]) for t in texts])


class Model:
    """A serving model's stand-in (weak-referenceable, as ServingModel is)."""


def test_a_correction_added_while_near_embeds_is_matched_afterwards() -> None:
    memory = CorrectionMemory(near_threshold=0.95)
    memory.add("珍珠太硬了", "review", "negative")
    model = Model()
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


def test_the_cached_vectors_do_not_keep_the_model_they_came_from_alive() -> None:
    memory = CorrectionMemory(near_threshold=0.95)
    memory.add("奶茶太甜了", "review", "negative")
    old, new = Model(), Model()
    assert memory.near(old, embed(["奶茶太甜了!!"])[0], embed) is not None
    gone = weakref.ref(old)
    del old  # swapped out: no request uses it any more
    gc.collect()
    assert gone() is None
    calls = []
    near = memory.near(new, embed(["奶茶太甜了!!"])[0], lambda texts: calls.append(texts) or embed(texts))
    assert near is not None and calls == [["奶茶太甜了"]]  # the new model's vectors, embedded anew
