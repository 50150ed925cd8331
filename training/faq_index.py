"""The FAQ nearest-neighbour index: embeddings of the shop's known FAQ texts, scored per entry (numpy only).

Kept apart from `training.faq` (the torch trainer) so that the serving process on the ONNX path
builds and searches it without importing torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.features import FeatureCache

SCALE = 20.0  # cosine -> logit scale, in training (in-batch softmax) and for serving confidences


@dataclass(frozen=True)
class FaqIndex:
    """Embeddings of known FAQ texts with their entry keys; scores an entry by its best-matching text."""

    keys: tuple[str, ...]
    texts: tuple[str, ...]
    vectors: np.ndarray  # (n, hidden), unit length
    # Derived once per index, not per query: the entries (sorted keys) and the texts' order grouped by entry.
    entries: list[str] = field(init=False, repr=False, compare=False)
    _by_entry: np.ndarray = field(init=False, repr=False, compare=False)  # text positions, grouped by entry
    _starts: np.ndarray = field(init=False, repr=False, compare=False)  # where each entry's group begins

    def __post_init__(self) -> None:
        entries = sorted(set(self.keys))
        column = {k: i for i, k in enumerate(entries)}
        by_entry = np.argsort(np.array([column[k] for k in self.keys], dtype=np.int64), kind="stable")
        starts = np.searchsorted(np.array([column[self.keys[i]] for i in by_entry], dtype=np.int64), range(len(entries)))
        object.__setattr__(self, "entries", entries)
        object.__setattr__(self, "_by_entry", by_entry)
        object.__setattr__(self, "_starts", starts.astype(np.int64))

    @classmethod
    def build(cls, model: Any, cache: FeatureCache, items: Sequence[tuple[str, str]]) -> FaqIndex:
        """Index (text, key) pairs with an FAQ top (torch module or ONNX graph, as `cache`'s base runs it)."""
        unique = list(dict.fromkeys(items))
        vectors = cache.outputs(model, [t for t, _ in unique]) if unique else np.zeros((0, 1), dtype=np.float32)
        return cls(tuple(k for _, k in unique), tuple(t for t, _ in unique), vectors.astype(np.float32))

    def entry_scores(self, query_vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(entry keys, (queries, entries) best cosine per entry)."""
        if not self.entries:
            return [], np.zeros((len(query_vectors), 0), dtype=np.float32)
        sims = (query_vectors @ self.vectors.T)[:, self._by_entry]  # the same products as unordered: exact
        return self.entries, np.maximum.reduceat(sims, self._starts, axis=1).astype(np.float32)

    def search(self, query_vectors: np.ndarray, k: int = 3) -> list[list[tuple[str, float, float]]]:
        """Top-k entries per query as (key, cosine, confidence); confidence = softmax(SCALE * cosine)."""
        entries, best = self.entry_scores(query_vectors)
        results: list[list[tuple[str, float, float]]] = []
        for row in best:
            if not entries:
                results.append([])
                continue
            probs = np.exp(SCALE * (row - row.max()))
            probs /= probs.sum()
            top = np.argsort(-row)[:k]
            results.append([(entries[i], float(row[i]), float(probs[i])) for i in top])
        return results
