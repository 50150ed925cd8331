"""Correction memory: a staff correction decides the same (or a near-identical) message at once."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from storage.text import normalise_text
from vocabulary import MessageKind


@dataclass(frozen=True)
class Remembered:
    """One corrected message as the customer wrote it, and what staff said it is."""

    text: str
    kind: MessageKind
    label: str


class CorrectionMemory:
    """Exact matches by normalised text; near-identical ones by embedding cosine (vectors kept per model)."""

    def __init__(self, near_threshold: float = 0.95):
        self.near_threshold = near_threshold
        self._lock = threading.Lock()
        self._items: dict[str, Remembered] = {}
        # (the model they were embedded with, items, vectors); the model by weak reference, so that a serving model
        # swapped out is freed when its last request finishes, not kept until the next near() call
        self._vectors: tuple[weakref.ref, list[Remembered], np.ndarray] | None = None
        self._generation = 0  # bumped by every add(): vectors embedded from older items are not cached

    def __len__(self) -> int:
        return len(self._items)

    def add(self, text: str, kind: MessageKind, label: str) -> None:
        """Remember a correction; a later correction of the same text wins."""
        key = normalise_text(text)
        if not key:
            return
        with self._lock:
            self._items[key] = Remembered(text, MessageKind(kind), label)
            self._vectors = None
            self._generation += 1

    def exact(self, text: str) -> Remembered | None:
        """The correction stored for this text (after normalisation), if any."""
        return self._items.get(normalise_text(text))

    def items(self) -> list[Remembered]:
        """Everything remembered (a snapshot)."""
        with self._lock:
            return list(self._items.values())

    def near(self, model: object, vector: np.ndarray, embed) -> tuple[Remembered, float] | None:
        """The closest remembered message to `vector` if its cosine clears the threshold.

        `embed(texts) -> (n, d) unit vectors` is the serving model's embedding; vectors are
        recomputed whenever the memory or the model changes. Embedding runs outside the lock; its
        result is cached only if no correction was added meanwhile (else the next call embeds again).
        """
        with self._lock:
            cached, generation = self._vectors, self._generation
            stale = cached is None or cached[0]() is not model
            items = list(self._items.values()) if stale else []
        if stale:
            vectors = embed([r.text for r in items]) if items else np.zeros((0, vector.shape[-1]), dtype=np.float32)
            cached = (weakref.ref(model), items, vectors)
            with self._lock:
                if self._generation == generation:
                    self._vectors = cached
        assert cached is not None  # not stale means cached
        _, items, vectors = cached
        if not items:
            return None
        sims = vectors @ vector
        best = int(np.argmax(sims))
        return (items[best], float(sims[best])) if sims[best] >= self.near_threshold else None
