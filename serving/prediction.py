"""What the model (or the correction memory) says about one customer message, before anything is stored."""

from __future__ import annotations

from dataclasses import dataclass

from vocabulary import MessageKind, PredictionSource


@dataclass(frozen=True)
class Prediction:
    """The kind (question or review), the label (FAQ key or sentiment), how sure, and which model said so."""

    kind: MessageKind
    label: str | None  # FAQ entry key for a question, positive/neutral/negative for a review
    confidence: float
    answerable: bool  # a question whose best FAQ entry clears the answer threshold
    alternatives: tuple[tuple[str, float], ...] = ()  # best first, chosen one included: (key or label, confidence)
    source: PredictionSource = PredictionSource.MODEL  # MEMORY when a staff correction decided it
    version: str = "base"  # adapter versions that served it, e.g. "sentiment=s-..;faq=f-.."
    question_probability: float = 0.0

