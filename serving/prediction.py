"""What the bot decided about one customer message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Task = Literal["question", "review"]
Source = Literal["model", "memory"]


@dataclass(frozen=True)
class Decision:
    """The task (question or review), the label (FAQ key or sentiment), how sure, and which model said so."""

    task: Task
    label: str | None  # FAQ entry key for a question, positive/neutral/negative for a review
    confidence: float
    answerable: bool  # a question whose best FAQ entry clears the answer threshold
    alternatives: tuple[tuple[str, float], ...] = ()  # best first, chosen one included: (key or label, confidence)
    source: Source = "model"  # "memory" when a staff correction decided it
    version: str = "base"  # adapter versions that served it, e.g. "sentiment=s-..;faq=f-.."
    question_probability: float = 0.0

    @property
    def is_question(self) -> bool:
        """True for a question (FAQ), False for a review."""
        return self.task == "question"
