"""The FAQ nearest-neighbour index: embeddings of the shop's known FAQ texts, scored per entry (numpy only).

Kept apart from `training.faq` (the torch trainer) so that the serving process on the ONNX path
builds and searches it without importing torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

    @classmethod
    def build(cls, model: Any, cache: FeatureCache, items: Sequence[tuple[str, str]]) -> FaqIndex:
        """Index (text, key) pairs with an FAQ top (torch module or ONNX graph, as `cache`'s base runs it)."""
        unique = list(dict.fromkeys(items))
        vectors = cache.outputs(model, [t for t, _ in unique]) if unique else np.zeros((0, 1), dtype=np.float32)
        return cls(tuple(k for _, k in unique), tuple(t for t, _ in unique), vectors.astype(np.float32))

    def entry_scores(self, query_vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(entry keys, (queries, entries) best cosine per entry)."""
        entries = sorted(set(self.keys))
        if not entries:
            return [], np.zeros((len(query_vectors), 0), dtype=np.float32)
        column = {k: i for i, k in enumerate(entries)}
        sims = query_vectors @ self.vectors.T
        best = np.full((len(query_vectors), len(entries)), -1.0, dtype=np.float32)
        cols = np.array([column[k] for k in self.keys])
        for c in range(len(entries)):
            best[:, c] = sims[:, cols == c].max(axis=1)
        return entries, best

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
