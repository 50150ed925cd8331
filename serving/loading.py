"""Build serving models from the active adapters and the shop's FAQ, and the runtime that holds them."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from serving.memory import CorrectionMemory
from serving.runtime import ModelRuntime, ServingModel
from settings import Settings
from storage.store import Store
from training.encoder import EmbeddingModel, Encoder, load_encoder
from training.faq import FaqIndex, export_sentence_transformer, load_faq
from training.features import FeatureCache
from training.recipe import load_blend
from training.registry import AdapterRegistry, CorruptAdapterError
from training.sentiment import load_sentiment
from vocabulary import CORRECTION_SOURCES, SENTIMENT_LABELS, TASKS, AdapterStatus, Task

log = logging.getLogger(__name__)


def faq_index_items(store: Store) -> list[tuple[str, str]]:
    """Every text that identifies a live FAQ entry: canonical questions and all known phrasings (a retired
    entry's stay stored, out of the index)."""
    retired = store.faq.retired_keys()
    items = [(e.question, e.key) for e in store.faq.all()]
    items += [(ex.text, ex.label) for ex in store.examples.all(task="faq") if ex.label not in retired]
    return items


def build_serving(encoder: Encoder, store: Store, sentiment_dir: Path | None, faq_dir: Path | None,
                  versions: dict[str, str], cache: FeatureCache | None = None) -> ServingModel:
    """A complete serving model from adapter folders (None = the base model for that task)."""
    if faq_dir is not None:
        faq_model, router = load_faq(encoder, faq_dir)
    else:
        faq_model, router = EmbeddingModel(encoder.new_top()).eval(), None
    sentiment_model, labels = load_sentiment(encoder, sentiment_dir) if sentiment_dir is not None else (None, SENTIMENT_LABELS)
    char, char_weight = load_blend(sentiment_dir) if sentiment_dir is not None else (None, 0.0)
    if encoder.quantized:
        faq_model = torch.ao.quantization.quantize_dynamic(faq_model, {torch.nn.Linear}, dtype=torch.qint8)
        if sentiment_model is not None:
            sentiment_model = torch.ao.quantization.quantize_dynamic(sentiment_model, {torch.nn.Linear}, dtype=torch.qint8)
    partial = ServingModel(encoder, faq_model, FaqIndex((), (), torch.zeros(0, encoder.hidden_size).numpy()),
                           sentiment_model, labels, router, dict(versions), cache or FeatureCache(encoder),
                           char, char_weight)
    return rebuild_index(partial, store)


def rebuild_index(serving: ServingModel, store: Store) -> ServingModel:
    """The same serving model with the FAQ index rebuilt from storage (after a new entry or phrasing)."""
    from dataclasses import replace

    cache = serving.cache or FeatureCache(serving.encoder)
    index = FaqIndex.build(serving.faq_model, cache, faq_index_items(store))
    return replace(serving, index=index)


def load_active(encoder: Encoder, settings: Settings, store: Store) -> ServingModel:
    """A serving model from the active, checksum-verified adapters (falls back, never serves a corrupt one)."""
    registry = AdapterRegistry(settings.paths.adapters, store)
    folders: dict[str, Path | None] = {"sentiment": None, "faq": None}
    versions: dict[str, str] = {}
    for task in folders:
        try:
            found = registry.active_verified(task)
        except CorruptAdapterError as exc:
            log.error("no usable %s adapter: %s", task, exc)
            found = None
        if found is not None:
            record, path = found
            folders[task], versions[task] = path, record.version
    # The trunk features on disk are the ones training computed (same encoder identity): a swap
    # then only runs the small FAQ top over the index, not the whole model.
    cache = FeatureCache(encoder, settings.paths.model_cache / "features")
    serving = build_serving(encoder, store, folders["sentiment"], folders["faq"], versions, cache)
    return with_shadow(serving, registry, store) if folders["sentiment"] is None else serving


def with_shadow(serving: ServingModel, registry: AdapterRegistry, store: Store) -> ServingModel:
    """Before any sentiment adapter passed the gate: the serving model with the newest unpromoted (candidate or
    rejected) sentiment adapter aside, for its guesses on reviews; unchanged when there is none usable."""
    from dataclasses import replace

    for record in store.adapters.history(Task.SENTIMENT):  # newest first
        if record.status not in (AdapterStatus.CANDIDATE, AdapterStatus.REJECTED):
            continue
        try:
            model, labels = load_sentiment(serving.encoder, registry.verify(record))
        except (CorruptAdapterError, OSError, ValueError, RuntimeError) as exc:  # e.g. pruned, or not a real adapter
            log.warning("unpromoted sentiment adapter %s not usable for guesses: %s", record.version, exc)
            return serving
        log.info("no sentiment adapter passed the gate: reviews show the guess of unpromoted %s", record.version)
        return replace(serving, shadow_sentiment=model, shadow_labels=labels)
    return serving


def export_faq_encoder(settings: Settings, out: Path) -> str:
    """Write the active FAQ encoder (the base before any adapter) for sentence-transformers; returns its version."""
    encoder = load_encoder(settings)
    with Store(settings.paths.database) as store:
        found = AdapterRegistry(settings.paths.adapters, store).active_verified("faq")
    faq_model = load_faq(encoder, found[1])[0] if found else EmbeddingModel(encoder.new_top())
    export_sentence_transformer(encoder, faq_model, out)
    return found[0].version if found else "base"


def load_memory(store: Store) -> CorrectionMemory:
    """The correction memory, refilled from the staff feedback stored so far."""
    memory = CorrectionMemory()
    retired = store.faq.retired_keys()  # a correction naming a retired entry must not answer with it
    for task in TASKS:
        for ex in store.examples.all(task=task):
            if ex.source in CORRECTION_SOURCES and not (task == Task.FAQ and ex.label in retired):
                memory.add(ex.text, task.kind, ex.label)
    return memory


def load_runtime(settings: Settings, store: Store, encoder: Encoder | None = None) -> ModelRuntime:
    """Everything the bot needs to decide: base model, active adapters, FAQ index, correction memory."""
    # One intra-op thread: on 2 shared cores, 2 OpenMP threads thrash (p50 19 ms -> 240 ms measured);
    # the bot gets its parallelism from its worker threads instead.
    torch.set_num_threads(1)
    encoder = encoder or load_encoder(settings)
    serving = load_active(encoder, settings, store)
    return ModelRuntime(serving, settings.thresholds.answer_confidence, load_memory(store))
