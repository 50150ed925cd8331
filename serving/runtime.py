"""The serving runtime: `decide(text) -> Prediction`, with atomic swaps of the whole serving model.

A `ServingModel` is immutable once built: the shared frozen trunk, the sentiment top and the FAQ top
(LoRA merged in), the question/review router and the FAQ index. `ModelRuntime` holds one reference
to it; a swap replaces that reference, so a request in flight finishes on the model it started with
and no request ever sees a mixture (in-place `set_adapter` during a forward pass does mix).

Everything here is numpy: the base (`serving.loading.load_base`: the torch `Encoder`, or the ONNX
Runtime `serving.onnx_models.OnnxBase`) runs the trunk and the tops, so this module never imports torch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.memory import CorrectionMemory
from serving.prediction import Prediction
from training.faq_index import FaqIndex
from training.features import Base, FeatureCache, run_top_batched
from training.recipe import CharNgramModel, blend
from training.router import RouterWeights, cue_score
from vocabulary import SENTIMENT_LABELS, MessageKind, PredictionSource

log = logging.getLogger(__name__)


def heuristic_question_probability(text: str) -> float:
    """Fallback router before any FAQ adapter exists: the router's own cues, question cues minus review cues."""
    return 0.8 if cue_score(text) > 0 else 0.2


@dataclass(frozen=True)
class ServingModel:
    """Everything needed to answer, frozen: replace the whole object to change any part of it."""

    encoder: Base  # the shared trunk; it also runs the tops below (torch modules or ONNX graphs, as it loaded them)
    faq_model: Any
    index: FaqIndex
    sentiment_model: Any | None = None
    labels: tuple[str, ...] = SENTIMENT_LABELS
    router: RouterWeights | None = None
    versions: dict[str, str] = field(default_factory=dict)
    cache: FeatureCache | None = None  # trunk features of known texts (the FAQ index), shared across swaps
    sentiment_char: CharNgramModel | None = None  # character n-grams blended into the sentiment probabilities
    char_weight: float = 0.0
    # Until a sentiment adapter passes the gate: the newest unpromoted one, for its guess on reviews (staff confirm it).
    shadow_sentiment: Any | None = None
    shadow_labels: tuple[str, ...] = SENTIMENT_LABELS

    @property
    def version(self) -> str:
        """e.g. "sentiment=s-20261123-0300;faq=f-20261123-0300" ("base" when nothing is adapted)."""
        return ";".join(f"{task}={v}" for task, v in sorted(self.versions.items())) or "base"

    def faq_vectors(self, features: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """FAQ embeddings (n, hidden) from trunk features: what routing, the index search and the memory read."""
        return run_top_batched(self.encoder, self.faq_model, features, batch_size)

    def sentiment_network(self, features: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray | None:
        """The sentiment top's probabilities (before the n-gram blend), or None without a sentiment adapter."""
        return self._probabilities(self.sentiment_model, features, batch_size)

    def shadow_probabilities(self, features: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray | None:
        """The unpromoted candidate's sentiment probabilities (None without one, or once a sentiment adapter serves)."""
        return None if self.sentiment_model is not None else self._probabilities(self.shadow_sentiment, features, batch_size)

    def _probabilities(self, top: Any | None, features: Sequence[np.ndarray], batch_size: int) -> np.ndarray | None:
        if top is None or not features:
            return None
        return softmax(run_top_batched(self.encoder, top, features, batch_size))

    def trunk_features(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Trunk states per text, unpadded."""
        return self.encoder.trunk_features(list(texts))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """FAQ embeddings (n, hidden) of texts."""
        if not texts:
            return np.zeros((0, self.encoder.hidden_size), dtype=np.float32)
        return self.faq_vectors(self.trunk_features(texts))

    def decide_features(self, texts: Sequence[str], features: Sequence[np.ndarray],
                        answer_threshold: float) -> tuple[list[Prediction], np.ndarray]:
        """Decisions (model only, no memory) and FAQ embeddings for texts whose trunk features are given.

        The FAQ top runs on every text (routing and the index need its vectors); a sentiment top (the promoted one,
        else the unpromoted candidate's guess) runs only on the texts routed to reviews.
        """
        vectors = self.faq_vectors(features)
        if self.router is not None:
            p_question = self.router.probability(vectors, texts)
        else:
            p_question = np.array([heuristic_question_probability(t) for t in texts])
        hits = self.index.search(vectors, k=3)
        reviews = [i for i in range(len(texts)) if float(p_question[i]) < 0.5]
        review_features, review_texts = [features[i] for i in reviews], [texts[i] for i in reviews]
        network = self.sentiment_network(review_features)
        if network is not None and self.sentiment_char is not None:
            network = blend(network, self.sentiment_char.predict_proba(review_texts), self.char_weight)
        probs = dict(zip(reviews, network)) if network is not None else None
        shadow = self.shadow_probabilities(review_features) if probs is None and reviews else None
        guesses = dict(zip(reviews, shadow)) if shadow is not None else {}
        decisions = []
        for i in range(len(texts)):
            pq = float(p_question[i])
            if pq >= 0.5:
                alternatives = tuple((key, conf) for key, _cos, conf in hits[i])
                label, conf = alternatives[0] if alternatives else (None, 0.0)
                decisions.append(Prediction(MessageKind.QUESTION, label, conf, label is not None and conf >= answer_threshold,
                                          alternatives, PredictionSource.MODEL, self.version, pq))
            elif probs is None:  # no sentiment adapter has passed the gate yet: staff label it, shown the
                # unpromoted candidate's guess (as alternatives; the label stays None) when there is one
                guess = guesses.get(i)
                shown = () if guess is None else tuple(
                    (self.shadow_labels[j], float(guess[j])) for j in np.argsort(-guess))
                decisions.append(Prediction(MessageKind.REVIEW, None, 0.0, False, shown, PredictionSource.MODEL,
                                            self.version, pq))
            else:
                order = np.argsort(-probs[i])
                alternatives = tuple((self.labels[j], float(probs[i][j])) for j in order)
                decisions.append(Prediction(MessageKind.REVIEW, alternatives[0][0], alternatives[0][1], False,
                                          alternatives, PredictionSource.MODEL, self.version, pq))
        return decisions, vectors


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, classes) logits."""
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def one_blas_thread() -> None:
    """Every BLAS loaded in this process (numpy's OpenBLAS) to one thread.

    The model's parallelism is its worker threads (`[bot] model_workers`), each running a batch on one
    thread; the serving side's own products (FAQ index, router, n-gram blend) are a few vectors against a
    few hundred. Split over both cores, the libraries' idle threads spin between calls: under load
    (`bench/load.py`) that was 14.2-15.3 instead of 9.8-10.6 ms of the bot's CPU per message, 97-108 instead of 117-127
    messages/s. Called when a runtime is made: a swapped-in model brings no new library (the n-gram blend is
    numpy, `training.recipe.CharNgramModel`).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")  # not OpenMP: torch sets its own threads (`model.train_threads`)


class ModelRuntime:
    """Thread-safe facade: decide with the current serving model and the correction memory; swap atomically."""

    def __init__(self, serving: ServingModel, answer_threshold: float, memory: CorrectionMemory | None = None):
        one_blas_thread()
        self._serving = serving
        self._swap_lock = threading.Lock()
        self.answer_threshold = answer_threshold
        self.memory = memory or CorrectionMemory()

    @property
    def serving(self) -> ServingModel:
        """The serving model in use right now."""
        return self._serving

    def swap(self, new: ServingModel) -> ServingModel:
        """Make `new` serve from the next request on; returns the old one. Requests in flight finish on the old."""
        with self._swap_lock:
            old, self._serving = self._serving, new
        log.info("serving model swapped: %s -> %s", old.version, new.version)
        return old

    def decide(self, text: str) -> Prediction:
        """Decide one message."""
        return self.decide_batch([text])[0]

    def decide_batch(self, texts: Sequence[str]) -> list[Prediction]:
        """Decide many messages with one trunk pass; staff corrections take precedence."""
        serving = self._serving  # one reference for the whole batch: never a mixture
        texts = [t if t.strip() else "?" for t in texts]
        decisions, vectors = serving.decide_features(texts, serving.trunk_features(texts), self.answer_threshold)
        out = []
        for text, decision, vector in zip(texts, decisions, vectors):
            remembered = self.memory.exact(text)
            similarity = 1.0
            if remembered is None and len(self.memory):
                near = self.memory.near(serving, vector, serving.embed)
                if near is not None:
                    remembered, similarity = near
            if remembered is None:
                out.append(decision)
                continue
            out.append(Prediction(remembered.kind, remembered.label, similarity,
                                remembered.kind == MessageKind.QUESTION, ((remembered.label, similarity),),
                                PredictionSource.MEMORY, serving.version, decision.question_probability))
        return out

    def remember(self, text: str, kind: MessageKind, label: str) -> None:
        """A staff correction: takes effect for this text (and near-identical ones) from the next request."""
        self.memory.add(text, kind, label)
