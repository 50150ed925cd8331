"""Which decisions reach the staff chat by themselves (the mirror policy, `[staff]` in config), and the order
in which /review shows the others: the active-learning queue. No Telegram here.

Mirror policy (`staff.mirror`): "all" mirrors every decision (the behaviour before the policy existed);
"policy" always mirrors what staff must act on (`must_act`: handoffs, negative reviews, reviews nobody could
label, reviews an unpromoted candidate model thinks negative, answers a customer marked 👎) and, of the
confident rest, a deterministic sample of `staff.sample_rate` (by a hash of the decision id, so the same
decisions are sampled on every run; 0 = none). The rest wait in the queue.

The queue: every pending decision not yet shown in the staff chat (neither mirrored nor shown by /review),
whatever its age, scored (higher = shown first; ties: newer first):

    score = (1 - margin)                  margin: the top alternative's confidence minus the second's
                                          (a single alternative: its confidence; none: 0)
          + WEAK_CLASS_BONUS  if the bot's label is a class the active adapter's last gate evaluation found
                              weakest (the true labels of its most confused pairs, metrics["confused"])
          + FLAGGED_BONUS     if the customer marked the answer 👎

Disagreement between the model and the correction memory is not scored: when the memory decides, the model's
own opinion is not stored with the decision, so there is nothing to compare.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from settings import Settings
from storage.decisions import WaitingDecision
from storage.records import Decision
from storage.store import Store
from vocabulary import Action, CustomerFeedback, MessageKind, Task

WEAK_CLASS_BONUS = 0.5
FLAGGED_BONUS = 2.0
SCAN_LIMIT = 500  # the newest waiting decisions scored per /review


def candidate_guess(decision: Decision) -> str | None:
    """The unpromoted candidate's sentiment guess on a review no active model labelled (its alternatives), if any."""
    if decision.kind == MessageKind.REVIEW and decision.label is None and decision.alternatives:
        return decision.alternatives[0][0]
    return None


def flagged(decision: Decision) -> bool:
    """Whether the customer marked the bot's answer 👎: a probable mistake."""
    return decision.customer_feedback == CustomerFeedback.DOWN


def must_act(decision: Decision) -> bool:
    """Whether staff must see this decision now: a handoff, a complaint (or a review nobody could label, or one the
    unpromoted candidate thinks negative), an answer the customer marked 👎."""
    if flagged(decision) or decision.action in (Action.HANDOFF, Action.TAKEN_OVER):  # taken over: staff are in it
        return True
    if decision.kind != MessageKind.REVIEW:
        return False
    if decision.label is None:
        return candidate_guess(decision) in (None, "negative")
    return decision.label == "negative"


def sampled(decision_id: int, rate: float) -> bool:
    """Whether a confident decision is in the mirrored sample: the same answer for the same id on every run."""
    digest = hashlib.sha256(f"decision:{decision_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def should_mirror(settings: Settings, decision: Decision) -> bool:
    """Whether the decision is mirrored to the staff chat as it happens (else it waits for /review)."""
    if settings.staff.mirror == "all":
        return True
    return must_act(decision) or sampled(decision.id, settings.staff.sample_rate)


def margin(decision: Decision) -> float:
    """Top confidence minus the runner-up's (single alternative: its confidence; none: 0)."""
    scores = sorted((score for _key, score in decision.alternatives), reverse=True)
    if not scores:
        return 0.0
    return scores[0] - (scores[1] if len(scores) > 1 else 0.0)


def weakest_labels(metrics: Mapping[str, Any] | None) -> frozenset[str]:
    """The true labels of the most confused pairs in an adapter's gate metrics ({"confused": [[true, pred, n]]})."""
    confused = (metrics or {}).get("confused") or ()
    return frozenset(str(row[0]) for row in confused if isinstance(row, list | tuple) and len(row) == 3)


def score(decision: Decision, weak: Collection[str] = ()) -> float:
    """How much a human look at this decision is worth (see the module docstring)."""
    value = 1.0 - margin(decision)
    label = decision.label if decision.label is not None else candidate_guess(decision)
    if label is not None and label in weak:
        value += WEAK_CLASS_BONUS
    if flagged(decision):
        value += FLAGGED_BONUS
    return value


@dataclass(frozen=True)
class ReviewQueue:
    """The queue over a shop's store."""

    store: Store

    def weak_classes(self) -> frozenset[str]:
        """Weakest classes of the active sentiment and FAQ adapters' last evaluations."""
        weak: set[str] = set()
        for task in (Task.SENTIMENT, Task.FAQ):
            active = self.store.adapters.active(task)
            if active is not None:
                weak |= weakest_labels(active.metrics)
        return frozenset(weak)

    def ordered(self) -> list[WaitingDecision]:
        """The waiting decisions, most worth a look first (ties: newest first)."""
        waiting = self.store.decisions.waiting(SCAN_LIMIT)  # newest first; sorted() keeps that order for ties
        weak = self.weak_classes()
        return sorted(waiting, key=lambda item: -score(item.decision, weak))

    def next(self, count: int) -> list[WaitingDecision]:
        """The next `count` decisions to show."""
        return self.ordered()[:count]

    def waiting_count(self) -> int:
        """How many decisions wait (for the digest)."""
        return self.store.decisions.count_waiting()
