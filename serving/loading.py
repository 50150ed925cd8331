"""Build serving models from the active adapters and the shop's FAQ, and the runtime that holds them.

`load_base(settings)` is the one base per process (torch `Encoder` or `OnnxBase`, per `model.runtime`);
everything else here takes it. On the ONNX path nothing here imports torch: the base's graphs are
built by a child process with torch when missing, and each adapter's graph is checked before use.
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from serving.memory import CorrectionMemory
from serving.onnx_models import GraphRefused, OnnxBase
from serving.runtime import ModelRuntime, ServingModel
from serving.tops import tops_for
from settings import Settings
from storage.store import Store
from training.export_onnx import base_graphs_for, run_export_in_child
from training.faq_index import FaqIndex
from training.features import Base, FeatureCache
from training.recipe import load_blend
from training.registry import AdapterRegistry, CorruptAdapterError
from vocabulary import CORRECTION_SOURCES, SENTIMENT_LABELS, TASKS, AdapterStatus, Task

log = logging.getLogger(__name__)


def faq_index_items(store: Store) -> list[tuple[str, str]]:
    """Every text that identifies a live FAQ entry: canonical questions and all known phrasings (a retired
    entry's stay stored, out of the index)."""
    retired = store.faq.retired_keys()
    items = [(e.question, e.key) for e in store.faq.all()]
    items += [(ex.text, ex.label) for ex in store.examples.all(task="faq") if ex.label not in retired]
    return items


def choose_runtime(settings: Settings) -> str:
    """"torch" or "onnx" for model.runtime = auto | torch | onnx: auto is ONNX Runtime on the CPU, torch on CUDA."""
    model = settings.model
    if model.runtime != "auto":
        return model.runtime
    if model.load_in_4bit or model.device == "cuda":
        return "torch"
    if model.device == "cpu" or not _cuda_possible():
        return "onnx"
    from training.device import choose_device

    return "torch" if choose_device(model.device) == "cuda" else "onnx"


def _cuda_possible() -> bool:
    """Whether a CUDA GPU could serve, asked without importing torch: an NVIDIA driver and a non-CPU torch build."""
    try:
        build = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False
    return "+cpu" not in build and Path("/proc/driver/nvidia/version").exists()


def load_base(settings: Settings) -> Base:
    """The base of the configured runtime: the torch encoder, or the ONNX graphs (built in a child when missing)."""
    if choose_runtime(settings) == "torch":
        from training.encoder import load_encoder

        encoder = load_encoder(settings)
        encoder.tokenize(["warm-up"])  # sets the fast tokenizer's padding/truncation once, before threads share it
        return encoder
    folder, graphs = base_graphs_for(settings)
    for attempt in (1, 2):
        if not graphs.exists():
            started = time.perf_counter()
            graphs.parent.mkdir(parents=True, exist_ok=True)
            run_export_in_child("base", folder=folder, top_layers=settings.model.top_layers,
                                max_length=settings.model.max_length, out=graphs)
            log.info("ONNX graphs of the base built in %.1f s (%s)", time.perf_counter() - started, graphs)
        try:
            return OnnxBase(graphs, folder, settings.model.top_layers)
        except GraphRefused as error:
            if attempt == 2:
                raise
            log.error("the base's ONNX graphs are refused (%s): building them again", error)
            shutil.rmtree(graphs)
    raise AssertionError("unreachable")


def build_serving(encoder: Base, store: Store, sentiment_dir: Path | None, faq_dir: Path | None,
                  versions: dict[str, str], cache: FeatureCache | None = None) -> ServingModel:
    """A complete serving model from adapter folders (None = the base model for that task).

    On the ONNX path a graph that fails its check raises `GraphRefused` (the caller keeps what serves).
    """
    tops = tops_for(encoder)
    faq_model: Any
    faq_model, router = tops.faq(faq_dir) if faq_dir is not None else (tops.base_faq(), None)
    sentiment_model, labels = tops.sentiment(sentiment_dir) if sentiment_dir is not None else (None, SENTIMENT_LABELS)
    char, char_weight = load_blend(sentiment_dir) if sentiment_dir is not None else (None, 0.0)
    partial = ServingModel(encoder, faq_model, FaqIndex((), (), np.zeros((0, encoder.hidden_size), dtype=np.float32)),
                           sentiment_model, labels, router, dict(versions), cache or FeatureCache(encoder),
                           char, char_weight)
    return rebuild_index(partial, store)


def rebuild_index(serving: ServingModel, store: Store) -> ServingModel:
    """The same serving model with the FAQ index rebuilt from storage (after a new entry or phrasing)."""
    from dataclasses import replace

    cache = serving.cache or FeatureCache(serving.encoder)
    index = FaqIndex.build(serving.faq_model, cache, faq_index_items(store))
    return replace(serving, index=index)


def load_active(encoder: Base, settings: Settings, store: Store) -> ServingModel:
    """A serving model from the active, checksum-verified adapters (falls back, never serves a corrupt one)."""
    registry = AdapterRegistry(settings.paths.adapters, store)
    folders: dict[str, Path | None] = {"sentiment": None, "faq": None}
    versions: dict[str, str] = {}
    for task, (record, path) in registry.all_active_verified().items():
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
            model, labels = tops_for(serving.encoder).sentiment(registry.verify(record))
        except (CorruptAdapterError, OSError, ValueError, RuntimeError) as exc:  # GraphRefused is a RuntimeError  # e.g. pruned, or not a real adapter
            log.warning("unpromoted sentiment adapter %s not usable for guesses: %s", record.version, exc)
            return serving
        log.info("no sentiment adapter passed the gate: reviews show the guess of unpromoted %s", record.version)
        return replace(serving, shadow_sentiment=model, shadow_labels=labels)
    return serving


def export_faq_encoder(settings: Settings, out: Path) -> str:
    """Write the active FAQ encoder (the base before any adapter) for sentence-transformers; returns its version."""
    from training.encoder import EmbeddingModel, load_encoder
    from training.faq import export_sentence_transformer, load_faq

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


def load_runtime(settings: Settings, store: Store, encoder: Base | None = None) -> ModelRuntime:
    """Everything the bot needs to decide: base model, active adapters, FAQ index, correction memory."""
    # One intra-op thread (torch; the ONNX sessions are made with one): on 2 shared cores, 2 OpenMP
    # threads thrash (p50 19 ms -> 240 ms measured); the bot gets its parallelism from its worker threads.
    encoder = encoder or load_base(settings)
    if not isinstance(encoder, OnnxBase):
        import torch

        torch.set_num_threads(1)
    try:
        serving = load_active(encoder, settings, store)
    except GraphRefused as error:  # at start there is nothing to keep serving: the base tops serve instead
        log.error("an active adapter's ONNX graph is refused (%s): serving the base model until it is replaced", error)
        serving = with_shadow(build_serving(encoder, store, None, None, {}, FeatureCache(
            encoder, settings.paths.model_cache / "features")), AdapterRegistry(settings.paths.adapters, store), store)
    return ModelRuntime(serving, settings.thresholds.answer_confidence, load_memory(store))
