"""Trunk features computed once per text and reused: a disk cache, plus length-bucketed padded batches.

The trunk is frozen, so its output for a given text, base model and split point never changes.
Weekly retraining therefore only runs the trunk on texts it has not seen before.

Features are numpy arrays and the cache works with any base that has `trunk_features(texts)` and
`run_top(top, features)`: the torch `training.encoder.Encoder` or the ONNX Runtime one
(`serving.onnx_models.OnnxBase`). torch is imported only by `pad_batch` (training), so the
serving process on the ONNX path can use this module without torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np
from tqdm.auto import tqdm

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
LOG_EVERY_S = 30.0


class Base(Protocol):
    """What the cache and the serving model need of a base: its identity, the trunk, and how to run a top."""

    folder: Path
    top_layers: int
    max_length: int
    trunk_dtype: str
    hidden_size: int

    def trunk_features(self, texts: list[str]) -> list[np.ndarray]:
        """Trunk states (tokens, hidden) per text, unpadded, float32."""
        ...

    def run_top(self, top: Any, features: Sequence[np.ndarray]) -> np.ndarray:
        """A top's outputs (batch, ...) for one batch of trunk features."""
        ...


B = TypeVar("B", bound=Base)


class FeatureCache(Generic[B]):
    """Trunk hidden states per text, in memory and (optionally) on disk as float16 .npy files."""

    def __init__(self, encoder: B, folder: Path | None = None, batch_size: int = 32):
        self.encoder = encoder
        self.batch_size = batch_size
        identity = f"{encoder.folder.resolve()}|top={encoder.top_layers}|len={encoder.max_length}|dtype={encoder.trunk_dtype}"
        self.folder = Path(folder) / hashlib.sha1(identity.encode()).hexdigest()[:16] if folder else None
        self._memory: dict[str, np.ndarray] = {}
        self.computed = 0

    def get_many(self, texts: Sequence[str], progress: bool = False) -> list[np.ndarray]:
        """Features (tokens, hidden) for each text, running the trunk only for texts never seen before."""
        keys = [self._key(t) for t in texts]
        missing = {}
        for text, key in zip(texts, keys):
            if key not in self._memory and not self._load(key):
                missing[key] = text
        if missing:
            self._compute(list(missing.items()), progress)
        return [self._memory[k] for k in keys]

    def outputs(self, top: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """A top's outputs (n, ...) for texts, from their cached trunk features, in length-sorted batches."""
        return run_top_batched(self.encoder, top, self.get_many(list(texts)), batch_size)

    def put(self, texts: Sequence[str], features: Sequence[np.ndarray]) -> None:
        """Hold precomputed trunk features for texts (in memory only)."""
        for text, feature in zip(texts, features):
            self._memory[self._key(text)] = feature

    def _compute(self, items: list[tuple[str, str]], progress: bool) -> None:
        items.sort(key=lambda kv: len(kv[1]))  # batches of similar lengths: little padding
        bar = tqdm(total=len(items), desc="trunk features", unit="text", disable=not progress, leave=False)
        began = last_log = time.monotonic()
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            features = self.encoder.trunk_features([text for _, text in chunk])
            for (key, _), hidden in zip(chunk, features):
                feature = hidden.astype(np.float16)
                self._memory[key] = feature
                self._save(key, feature)
            self.computed += len(chunk)
            bar.update(len(chunk))
            if time.monotonic() - last_log >= LOG_EVERY_S:  # a cold pass takes minutes: say how far it got (logs too)
                last_log = time.monotonic()
                done = start + len(chunk)
                log.info("trunk features: %d of %d texts, %.0f texts/s", done, len(items), done / (last_log - began))
        bar.close()

    def _key(self, text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path | None:
        return self.folder / key[:2] / f"{key}.npy" if self.folder else None

    def _load(self, key: str) -> bool:
        path = self._path(key)
        if path is None or not path.exists():
            return False
        try:
            self._memory[key] = np.load(path)
            return True
        except (OSError, ValueError):
            log.warning("unreadable feature cache file %s: recomputing it", path)
            return False

    def _save(self, key: str, feature: np.ndarray) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unique per thread too: shops hosted in one process share this folder, and may write one text at once.
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        with tmp.open("wb") as fh:
            np.save(fh, feature)
        os.replace(tmp, path)


def pad_numpy(features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length features into (batch, longest, hidden) float32 plus a 0/1 int64 mask."""
    longest = max(f.shape[0] for f in features)
    hidden = np.zeros((len(features), longest, features[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(features), longest), dtype=np.int64)
    for i, f in enumerate(features):
        hidden[i, : f.shape[0]] = f
        mask[i, : f.shape[0]] = 1
    return hidden, mask


def pad_batch(features: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """`pad_numpy` as torch tensors (for training and the torch runtime)."""
    import torch

    hidden, mask = pad_numpy([f.numpy() if isinstance(f, torch.Tensor) else f for f in features])
    return torch.from_numpy(hidden), torch.from_numpy(mask)


def run_top_batched(base: Base, top: Any, features: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """A top's outputs (n, ...) for trunk features, run by `base` in batches of similar lengths (rows in input order)."""
    out: np.ndarray | None = None
    for idx in similar_lengths([f.shape[0] for f in features], batch_size):
        batch = base.run_top(top, [features[i] for i in idx])
        if out is None:
            out = np.zeros((len(features), *batch.shape[1:]), dtype=np.float32)
        out[idx] = batch
    return out if out is not None else np.zeros((0, base.hidden_size), dtype=np.float32)


def similar_lengths(lengths: Sequence[int], most: int, slack: float = 1.25, tokens: int = 4) -> list[list[int]]:
    """Indices in groups for inference: in length order, at most `most` each, and a group's longest at most `slack`
    times its shortest (or `tokens` more), so one long text does not pad a whole batch to its length.

    Every text of a batch costs the batch's longest: batches of 32 mixed test-set messages (8-128 tokens)
    ran the trunk 4.7x faster in their 7-8 groups than padded in one call (`bench/mixed_batch.py`); a group
    more is one call more, a fraction of a millisecond.
    """
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        first = lengths[groups[-1][0]] if groups else 0
        if not groups or len(groups[-1]) == most or lengths[i] > max(first * slack, first + tokens):
            groups.append([])
        groups[-1].append(i)
    return groups


def length_batches(lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0) -> Iterator[list[int]]:
    """Indices grouped so each batch holds similar lengths (little padding); batch order shuffled if asked."""
    order = list(range(len(lengths)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(order)
    window = batch_size * 32
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    if shuffle:
        rng.shuffle(batches)
    yield from batches
