"""Trunk features computed once per text and reused: a disk cache, plus length-bucketed padded batches.

The trunk is frozen, so its output for a given text, base model and split point never changes.
Weekly retraining therefore only runs the trunk on texts it has not seen before.
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

import numpy as np
import torch
from tqdm.auto import tqdm

from training.encoder import Encoder

log = logging.getLogger(__name__)
LOG_EVERY_S = 30.0


class FeatureCache:
    """Trunk hidden states per text, in memory and (optionally) on disk as float16 .npy files."""

    def __init__(self, encoder: Encoder, folder: Path | None = None, batch_size: int = 32):
        self.encoder = encoder
        self.batch_size = batch_size
        identity = f"{encoder.folder.resolve()}|top={encoder.top_layers}|len={encoder.max_length}|dtype={encoder.trunk_dtype}"
        self.folder = Path(folder) / hashlib.sha1(identity.encode()).hexdigest()[:16] if folder else None
        self._memory: dict[str, torch.Tensor] = {}
        self.computed = 0

    def get_many(self, texts: Sequence[str], progress: bool = False) -> list[torch.Tensor]:
        """Features (tokens, hidden) for each text, running the trunk only for texts never seen before."""
        keys = [self._key(t) for t in texts]
        missing = {}
        for text, key in zip(texts, keys):
            if key not in self._memory and not self._load(key):
                missing[key] = text
        if missing:
            self._compute(list(missing.items()), progress)
        return [self._memory[k] for k in keys]

    def put(self, texts: Sequence[str], features: Sequence[torch.Tensor]) -> None:
        """Hold precomputed trunk features for texts (in memory only)."""
        for text, feature in zip(texts, features):
            self._memory[self._key(text)] = feature

    def _compute(self, items: list[tuple[str, str]], progress: bool) -> None:
        items.sort(key=lambda kv: len(kv[1]))  # batches of similar lengths: little padding
        bar = tqdm(total=len(items), desc="trunk features", unit="text", disable=not progress, leave=False)
        began = last_log = time.monotonic()
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            out = self.encoder.trunk([text for _, text in chunk])
            lengths = out.mask.sum(1).tolist()
            for (key, _), hidden, n in zip(chunk, out.hidden, lengths):
                feature = hidden[: int(n)].to(torch.float16).clone()
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
            self._memory[key] = torch.from_numpy(np.load(path))
            return True
        except (OSError, ValueError):
            log.warning("unreadable feature cache file %s: recomputing it", path)
            return False

    def _save(self, key: str, feature: torch.Tensor) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unique per thread too: shops hosted in one process share this folder, and may write one text at once.
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        with tmp.open("wb") as fh:
            np.save(fh, feature.numpy())
        os.replace(tmp, path)


def pad_batch(features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length features into (batch, longest, hidden) float32 plus a 0/1 mask."""
    longest = max(f.shape[0] for f in features)
    hidden = torch.zeros(len(features), longest, features[0].shape[1])
    mask = torch.zeros(len(features), longest, dtype=torch.long)
    for i, f in enumerate(features):
        hidden[i, : f.shape[0]] = f.float()
        mask[i, : f.shape[0]] = 1
    return hidden, mask


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
