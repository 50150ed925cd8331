"""FAQ retrieval: a LoRA sentence-embedding adapter trained contrastively, and a nearest-neighbour index.

Matching is nearest neighbour over the shop's own FAQ texts (canonical questions and known
phrasings), so a new FAQ entry works without retraining and an answer is always the shop's text.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel, get_peft_model
from torch import nn
from tqdm.auto import tqdm

from training.args import TrainArgs, epochs_for
from training.early_stopping import EarlyStopping
from training.encoder import EmbeddingModel, Encoder, TopLayers
from training.faq_index import SCALE, FaqIndex
from training.features import FeatureCache, pad_batch
from training.lora import OneCycle, TrainResult, lora_adapter, lora_config, step_autocast
from training.model_folder import write_sentence_transformers_config
from training.router import ROUTER_FILE, RouterWeights, load_router

log = logging.getLogger(__name__)


def new_faq_model(encoder: Encoder, args: TrainArgs) -> PeftModel:
    """A freshly initialised LoRA-wrapped embedding model (same seed -> same weights)."""
    torch.manual_seed(args.seed)
    return get_peft_model(EmbeddingModel(encoder.new_top()), lora_config(args))


def embed(model: nn.Module, cache: FeatureCache, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings (n, hidden) for texts."""
    return cache.outputs(model, texts, batch_size)


@dataclass(frozen=True, eq=False)
class FaqModel:
    """A trained FAQ model: the embedding network over cached trunk features, and the question/review router on it.

    The router (None until `training.tasks.FaqSpec.finish` fits it) is saved and loaded with the adapter.
    """

    network: nn.Module
    cache: FeatureCache
    router: RouterWeights | None = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings (n, hidden) of texts."""
        return embed(self.network, self.cache, texts)

    def index(self, items: Sequence[tuple[str, str]]) -> FaqIndex:
        """The nearest-neighbour index of (text, key) pairs under this model."""
        return FaqIndex.build(self.network, self.cache, items)

    def save(self, folder: Path) -> None:
        """The LoRA weights and the router."""
        save_faq(self.network, folder, self.router)

    @classmethod
    def load(cls, cache: FeatureCache, folder: Path) -> FaqModel:
        """The model `save` wrote, on `cache`'s encoder."""
        network, router = load_faq(cache.encoder, folder)
        return cls(network, cache, router)


class FaqTrainer:
    """train() on (phrasing, key) pairs with in-batch negatives; early stopping on validation top-1."""

    def __init__(self, encoder: Encoder, cache: FeatureCache, args: TrainArgs):
        self.encoder = encoder
        self.cache = cache
        self.args = args

    def train(self, train: list[tuple[str, str]], validation: list[tuple[str, str]],
              anchors: Sequence[tuple[str, str]] = ()) -> TrainResult:
        """Fit a new adapter; `anchors` are always-indexed texts (canonical questions) as (text, key)."""
        args = self.args
        started = time.perf_counter()
        model = new_faq_model(self.encoder, args)
        pool = list(dict.fromkeys(list(train) + list(anchors)))
        by_key: dict[str, list[int]] = defaultdict(list)
        for i, (_, key) in enumerate(pool):
            by_key[key].append(i)
        feats = self.cache.get_many([t for t, _ in pool], progress=args.progress)
        epochs = epochs_for(len(pool), args)
        optimiser = OneCycle(model, args, epochs * pair_batch_count(by_key, args.batch_size))
        rng = random.Random(args.seed)
        result = TrainResult(model)
        index_items = pool
        baseline = self._top1(model, index_items, validation) if validation else -math.inf
        stopper = EarlyStopping(args.patience, keep=("lora_",), baseline=baseline)  # LoRA starts as the identity
        for epoch in range(epochs):
            model.train()
            batches = _pair_batches(pool, by_key, args.batch_size, rng)
            bar = tqdm(batches, desc=f"faq epoch {epoch + 1}", disable=not args.progress, leave=False)
            total = 0.0
            for anchors_idx, positives_idx in bar:
                with step_autocast(args, self.encoder.device):
                    a = model(*pad_batch([feats[i] for i in anchors_idx]))
                    p = model(*pad_batch([feats[i] for i in positives_idx]))
                logits = SCALE * a.float() @ p.float().T
                target = torch.arange(len(anchors_idx), device=logits.device)
                loss = (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)) / 2
                optimiser.step(loss)
                total += loss.item()
                result.examples_seen += 2 * len(anchors_idx)
                bar.set_postfix(loss=f"{loss.item():.3f}")
            top1 = self._top1(model, index_items, validation) if validation else None
            result.history.append({"epoch": epoch + 1, "loss": total / max(len(batches), 1), "val_top1": top1})
            log.info("faq epoch %d loss %.4f val_top1 %s", epoch + 1, total / max(len(batches), 1), top1)
            if stopper.step(model, top1) or time.perf_counter() - started > args.max_train_seconds:
                break
        if not stopper.restore(model):  # no epoch beat the untrained adapter: keep the identity (the base)
            model = new_faq_model(self.encoder, args)
            result.model = model
        model.eval()
        result.seconds = time.perf_counter() - started
        return result

    def _top1(self, model: nn.Module, index_items: Sequence[tuple[str, str]], data: Sequence[tuple[str, str]]) -> float:
        index = FaqIndex.build(model, self.cache, index_items)
        hits = index.search(embed(model, self.cache, [t for t, _ in data]), k=1)
        return sum(bool(h) and h[0][0] == y for h, (_, y) in zip(hits, data)) / max(len(data), 1)


def _pair_batches(pool: list[tuple[str, str]], by_key: dict[str, list[int]], batch_size: int,
                  rng: random.Random) -> list[tuple[list[int], list[int]]]:
    """One epoch of (anchors, positives) batches for the in-batch-negatives loss.

    Every text of an entry with at least two texts is an anchor exactly once, paired with another
    text of its entry. A batch holds at most `batch_size` anchors, all of different entries (so
    every other positive in the batch is a true negative). The anchors are dealt round-robin into
    B = max(ceil(n / batch_size), largest entry) batches, entry by entry in a shuffled order, so an
    entry never lands twice in a batch and batch sizes differ by at most one. A batch left with a
    single anchor (its loss is exactly 0: no negative) is dropped; that happens only when it
    cannot be avoided: an entry holding more than half of all anchors, or an odd count with
    batch_size 2. The shuffle differs per epoch, so a different anchor is the one left out.
    Deterministic for a given rng state.
    """
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 for in-batch negatives, got {batch_size}")
    groups = [list(by_key[key]) for key in sorted(by_key) if len(by_key[key]) > 1]
    if not groups:
        return []
    rng.shuffle(groups)
    for group in groups:
        rng.shuffle(group)
    order = [i for group in groups for i in group]
    count = max(math.ceil(len(order) / batch_size), max(len(g) for g in groups))
    batches = []
    for b in range(count):
        anchors = order[b::count]  # a run of <= count anchors of one entry lands in distinct batches
        if len(anchors) > 1:
            positives = [rng.choice([j for j in by_key[pool[i][1]] if j != i]) for i in anchors]
            batches.append((anchors, positives))
    rng.shuffle(batches)
    return batches


def pair_batch_count(by_key: dict[str, list[int]], batch_size: int) -> int:
    """How many batches `_pair_batches` makes per epoch (the same every epoch)."""
    sizes = [len(v) for v in by_key.values() if len(v) > 1]
    if not sizes:
        return 0
    count = max(math.ceil(sum(sizes) / batch_size), max(sizes))
    return min(count, sum(sizes) - count)  # batches with two or more anchors


def save_faq(model: nn.Module, folder: Path, router: RouterWeights | None = None) -> None:
    """Write the LoRA weights (peft save_pretrained) and the question/review router."""
    lora_adapter(model).save_pretrained(str(folder))
    if router is not None:
        (folder / ROUTER_FILE).write_text(json.dumps(router.to_json()))


def load_faq(encoder: Encoder, folder: Path) -> tuple[nn.Module, RouterWeights | None]:
    """Rebuild an FAQ adapter on a fresh copy of the top layers (on the encoder's device), LoRA merged in; plus its router."""
    model = PeftModel.from_pretrained(EmbeddingModel(encoder.new_top()), str(folder),
                                      torch_device=str(encoder.device)).merge_and_unload()
    router = load_router(folder)
    return model.eval(), router


def export_sentence_transformer(encoder: Encoder, faq_model: nn.Module, out: Path) -> Path:
    """Write the FAQ encoder as a folder that `SentenceTransformer(out)` loads and embeds with as the shop does.

    The base's embeddings and trunk at full precision, the top layers taken from `faq_model` (an FAQ
    adapter with its LoRA merged in, as `load_faq` returns it), the tokenizer, and the
    sentence-transformers modules: mean pooling, normalisation and e5's "query: " prompt.
    """
    from transformers import AutoModel

    model = AutoModel.from_pretrained(encoder.folder, add_pooling_layer=False)
    first = len(model.encoder.layer) - encoder.top_layers
    top = faq_model.top
    assert isinstance(top, TopLayers), f"not an FAQ model: {type(faq_model).__name__}"
    for i, layer in enumerate(top.layers):
        model.encoder.layer[first + i].load_state_dict({k: v.float().cpu() for k, v in layer.state_dict().items()})
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    encoder.tokenizer.save_pretrained(out)
    write_sentence_transformers_config(out, encoder.hidden_size, encoder.max_length)
    return out
