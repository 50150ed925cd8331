"""Which of the week's staff-handled questions belong together: a pure, deterministic clustering of texts by
the cosine of their embeddings, for the owner report's suggested FAQ entries.

The method is average-linkage agglomerative clustering with a cosine threshold: every text starts as
its own cluster; the two clusters whose members are most similar on average (mean cosine over all
pairs across them) are merged, again and again, while that mean is at least `threshold`. The input
is first put in a canonical order (by text, then vector), cosines are rounded to 6 decimals and a tie
goes to the pair first in that order, so the clusters depend only on the set of (text, vector) pairs:
not on the order they come in, nor on the run. A cluster's central wording is its medoid: the member
with the highest mean cosine to the others (the first in canonical order on a tie). A cluster is
suggested only when at least `min_askers` different people asked it: a question of one is not.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

SIMILARITY = 0.88  # mean cosine to merge; paraphrases ~0.90–0.96, other questions ~0.75–0.87 (bundled e5, base top)
MIN_ASKERS = 2  # a question asked by one customer is not suggested
MAX_SUGGESTIONS = 5
_DECIMALS = 6  # cosines are compared rounded, so that summation order cannot change a merge


@dataclass(frozen=True)
class Cluster:
    """Texts that ask the same thing: indices into the input, the central one first."""

    members: tuple[int, ...]  # central first, then by cosine to it (highest first), then canonical order
    askers: int  # how many different people asked

    @property
    def central(self) -> int:
        """The index of the most central wording (the cluster's label)."""
        return self.members[0]


def _canonical_order(texts: Sequence[str], vectors: np.ndarray) -> list[int]:
    return sorted(range(len(texts)), key=lambda i: (texts[i], vectors[i].tobytes()))


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def cluster(texts: Sequence[str], vectors: np.ndarray, threshold: float = SIMILARITY) -> list[list[int]]:
    """Average-linkage clusters of the inputs (each index in exactly one), members in canonical order."""
    if len(texts) != len(vectors):
        raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
    order = _canonical_order(texts, np.asarray(vectors))
    n = len(order)
    if n == 0:
        return []
    unit = _unit(np.asarray(vectors)[order])
    similarity = np.round(unit @ unit.T, _DECIMALS)
    similarity = np.maximum(similarity, similarity.T)  # exactly symmetric
    np.fill_diagonal(similarity, -np.inf)
    sizes = np.ones(n)
    members: list[list[int]] = [[i] for i in range(n)]
    while True:  # a 1×1 matrix (or all merged) holds only -inf: the threshold stops it
        best = int(np.argmax(similarity))  # row-major: the first pair in canonical order on a tie
        a, b = divmod(best, n)
        if similarity[a, b] < threshold:
            break
        a, b = min(a, b), max(a, b)
        merged = np.round((sizes[a] * similarity[a] + sizes[b] * similarity[b]) / (sizes[a] + sizes[b]), _DECIMALS)
        similarity[a], similarity[:, a] = merged, merged
        similarity[b], similarity[:, b] = -np.inf, -np.inf
        similarity[a, a] = -np.inf
        sizes[a] += sizes[b]
        members[a] += members[b]
        members[b] = []
    return [[order[i] for i in group] for group in sorted(sorted(g) for g in members if g)]


def _ranked(group: list[int], texts: Sequence[str], unit: np.ndarray, rank: dict[int, int]) -> tuple[int, ...]:
    """The group with its medoid first, then the others by cosine to the medoid."""
    if len(group) == 1:
        return (group[0],)
    inner = np.round(unit[group] @ unit[group].T, _DECIMALS)
    mean = (inner.sum(axis=1) - np.diag(inner)) / (len(group) - 1)
    central = min(range(len(group)), key=lambda i: (-mean[i], rank[group[i]]))
    others = sorted((i for i in range(len(group)) if i != central), key=lambda i: (-inner[central, i], rank[group[i]]))
    return tuple(group[i] for i in (central, *others))


def suggest(texts: Sequence[str], vectors: np.ndarray, askers: Sequence[Hashable] | None = None,
            threshold: float = SIMILARITY, min_askers: int = MIN_ASKERS,
            limit: int = MAX_SUGGESTIONS) -> list[Cluster]:
    """The top clusters asked by at least `min_askers` people: most askers first, then most texts, then text.

    `askers[i]` says who asked text i (default: each text someone else).
    """
    who: Sequence[Hashable] = askers if askers is not None else range(len(texts))
    if len(who) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(who)} askers")
    unit = _unit(np.asarray(vectors)) if len(texts) else np.zeros((0, 0))
    rank = {index: position for position, index in enumerate(_canonical_order(texts, np.asarray(vectors)))}
    found = [Cluster(_ranked(group, texts, unit, rank), len({who[i] for i in group}))
             for group in cluster(texts, vectors, threshold)]
    found = [c for c in found if c.askers >= min_askers]
    found.sort(key=lambda c: (-c.askers, -len(c.members), texts[c.central], rank[c.central]))
    return found[:limit]
