"""The question/review router: a logistic regression over the FAQ embedding and explicit question cues.

Surface cues of a question are written once here: inputs of the learned router (which weighs
them from the shop's own data) and, before any FAQ adapter exists, the whole fallback router.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Surface cues of a question, written once: inputs of the learned router (which weighs them from the
# shop's own data) and, before any FAQ adapter exists, the whole fallback router. Each cue is
# (name, pattern, sign): +1 marks a question, -1 marks a review (an exclamation, emphasis:
# "怎么这么甜", "why is it so sweet!!" are complaints). "why"/为什么 is deliberately not a cue: in a
# shop's chat it is mostly a complaint.
_END = r"[\s。.!！~～…、,，)）\]】\"'”’\U0001F300-\U0001FAFF]*$"  # trailing punctuation and emoji
QUESTION_CUES: tuple[tuple[str, str, int], ...] = (
    ("question_mark", r"[?？]", 1),
    ("zh_final_particle", r"(?:吗|呢|(?<!什)么|嘛|咩|不|没|没有)" + _END, 1),
    ("zh_particle", r"吗|嘛", 1),
    ("zh_question_word", (r"谁|(?<![为凭])什么|(?<!为)啥|哪|怎|咋|几[点个种号楼杯分天毫公折时位]|多少|多久|多长|多大|多远"
                          r"|是否|([\u4e00-\u9fff])[不没]\1|是[^，。！？,.!?]{1,8}还是"), 1),  # A不A: 开不开; 是A还是B
    ("zh_asking", r"请问|想问|问一?下|想知道|想了解|咨询|求|推荐|建议|麻烦|告诉我|发一下|帮我", 1),
    ("en_question_start", (r"^\W*(?:(?:hi|hey|hello)\W+)?(?:can|could|do|does|did|is|are|was|were|will|would|should"
                           r"|may|any|anything|what(?! an?\b)|whats|how|when|where|which|who|r)\b(?!'t|n't)"), 1),
    ("en_question_word", r"\b(?:what(?! an?\b)|whats|how|when|where|which|who|whether)\b", 1),
    ("en_asking", (r"\b(?:i'?d like to know|i (?:wanna|want to|need to) know|wondering|tell me|let me know|please|pls|plz"
                   r"|recommend|suggest|any (?:chance|update|idea|recs?|tips?)|is there|are there|do (?:you|u)"
                   r"|can (?:i|you|u)|could (?:i|you|u))\b"), 1),
    ("exclamation", r"[!！]", -1),
    ("emphasis", r"这么|那么|(?<![不别])太|真的|超|好[吃喝难甜香]|\b(?:so|too|really|super|such|way)\b", -1),
)
CUE_NAMES = tuple(name for name, _, _ in QUESTION_CUES)
_CUES = {name: (re.compile(pattern, re.I), sign) for name, pattern, sign in QUESTION_CUES}

# Asking-style openers: the router's training questions get one prefixed copy each (and a copy
# without its final "?"), so that the cue weights are learned even where the shop's FAQ phrasings
# never open that way.
ASKING_PREFIXES = {"zh": ("请问", "想问下，", "问一下，", "想知道", "麻烦问下", "您好，"),
                   "en": ("hi, ", "quick question: ", "I'd like to know ", "wondering ", "can you tell me ", "hey, ")}
ROUTER_QUESTION_WEIGHT = 4.0  # a question taken for a review is never answered; a review taken for a question goes to the FAQ path
ROUTER_L2_EMBEDDING = 3e-2  # on standardised embedding dimensions (chosen by FAQ-entry-grouped CV on the demo shop)
ROUTER_L2_CUES = 1e-3


def question_cues(texts: Sequence[str], names: Sequence[str] = CUE_NAMES) -> np.ndarray:
    """(len(texts), len(names)) 0/1: which cues each text shows; names unknown to this version stay 0."""
    out = np.zeros((len(texts), len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        if name in _CUES:
            pattern = _CUES[name][0]
            out[:, j] = [pattern.search(t) is not None for t in texts]
    return out


def cue_score(text: str) -> int:
    """Question cues minus review cues shown by text."""
    return sum(sign for pattern, sign in _CUES.values() if pattern.search(text))


def augment_questions(questions: Sequence[str], seed: int = 13, limit: int = 2000) -> list[str]:
    """Asked-style variants of known questions: one with an asking prefix, one without a final "?"."""
    rng = random.Random(seed)
    out = []
    for q in questions:
        zh = re.search(r"[\u4e00-\u9fff]", q) is not None
        prefix = rng.choice(ASKING_PREFIXES["zh" if zh else "en"])
        out.append(prefix + (q if zh else q[:1].lower() + q[1:]))
        bare = re.sub(r"[?？]+\s*$", "", q)
        if bare and bare != q:
            out.append(bare)
    known = set(questions)
    out = [t for t in dict.fromkeys(out) if t not in known]
    return out if len(out) <= limit else rng.sample(out, limit)


@dataclass(frozen=True)
class RouterWeights:
    """Logistic regression over the FAQ embedding and the question cues: p(question rather than review).

    A router saved before the cues existed has none (`cue_weight` empty) and reads the embedding only.
    """

    weight: np.ndarray  # (hidden,) on raw FAQ embeddings
    bias: float
    cue_weight: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))  # (len(cue_names),)
    cue_names: tuple[str, ...] = ()

    def probability(self, vectors: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """p(question) per row; `texts` (the messages of the rows) are needed when the router has cues."""
        logits = vectors @ self.weight + self.bias
        if len(self.cue_names):
            if texts is None:
                raise ValueError("this router also reads question cues: pass the texts")
            logits = logits + question_cues(texts, self.cue_names) @ self.cue_weight
        return 1.0 / (1.0 + np.exp(-logits))

    def to_json(self) -> dict:
        """The router.json content."""
        return {"weight": self.weight.tolist(), "bias": self.bias,
                "cue_names": list(self.cue_names), "cue_weight": self.cue_weight.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> RouterWeights:
        """From router.json; an old file (embedding weights only) gives a router without cues."""
        names = tuple(data.get("cue_names", ()))
        cue_weight = np.asarray(data.get("cue_weight", [0.0] * len(names)), dtype=np.float32)
        if len(cue_weight) != len(names):
            raise ValueError(f"router.json: {len(names)} cue names but {len(cue_weight)} cue weights")
        unknown = [n for n in names if n not in _CUES]
        if unknown:
            log.warning("router.json: cues %s are unknown to this version and are ignored", unknown)
        return cls(np.asarray(data["weight"], dtype=np.float32), float(data["bias"]), cue_weight, names)


ROUTER_FILE = "router.json"  # beside an FAQ adapter


def load_router(folder: Path) -> RouterWeights | None:
    """The router saved beside an FAQ adapter (None when it has none)."""
    path = folder / ROUTER_FILE
    return RouterWeights.from_json(json.loads(path.read_text())) if path.exists() else None


def train_router(vectors: np.ndarray, is_question: np.ndarray, epochs: int = 300, seed: int = 13,
                 texts: Sequence[str] | None = None,
                 question_weight: float = ROUTER_QUESTION_WEIGHT) -> RouterWeights:
    """Fit the router on FAQ embeddings (+ the cues of `texts`, if given) of questions (1) and reviews (0).

    Classes are balanced, then questions weigh `question_weight` times more (a missed question is
    the costlier mistake). Embedding dimensions are standardised for the fit (the weights returned
    apply to raw embeddings); the cues are regularised less, so they keep a weight where the
    embedding alone would decide by topic (a question about a drink reads like a review of one).
    torch is imported here, not with the module: serving reads `RouterWeights` without torch.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x = torch.from_numpy(np.asarray(vectors, dtype=np.float32))
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-3)
    cues = torch.from_numpy(question_cues(texts)) if texts is not None else torch.zeros(len(x), 0)
    inputs = torch.cat([(x - mean) / std, cues], 1)
    hidden = x.shape[1]
    y = torch.from_numpy(is_question.astype(np.float32))
    pos = float(y.sum())
    weight = torch.where(y > 0, question_weight * (len(y) - pos) / max(pos, 1.0), 1.0)
    linear = nn.Linear(inputs.shape[1], 1)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=epochs, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(linear(inputs).squeeze(-1), y, weight=weight)
        w = linear.weight[0]
        loss = loss + ROUTER_L2_EMBEDDING * w[:hidden].pow(2).sum() + ROUTER_L2_CUES * w[hidden:].pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    w = linear.weight.detach()[0]
    embedding_weight = w[:hidden] / std
    bias = float(linear.bias.detach()[0] - (embedding_weight * mean).sum())
    return RouterWeights(embedding_weight.numpy().copy(), bias, w[hidden:].numpy().copy(),
                         CUE_NAMES if texts is not None else ())
