"""The words every layer shares: tasks, message kinds, labels, statuses and the kinds of staff feedback.

Each is a `StrEnum`, so a member is its own string: it is stored in SQLite, written to JSON and
compared with text as it is ("faq" == Task.FAQ). Every allowed value is defined here once; storage
checks columns against these, the models train per `Task`, the bot shows buttons per label.
"""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    """What a model is trained for: each task has its own adapter, examples and threshold."""

    SENTIMENT = "sentiment"
    FAQ = "faq"

    @property
    def kind(self) -> MessageKind:
        """The kind of customer message this task decides (sentiment: reviews, FAQ: questions)."""
        return MessageKind.REVIEW if self is Task.SENTIMENT else MessageKind.QUESTION


class MessageKind(StrEnum):
    """What the bot took a customer message for."""

    QUESTION = "question"
    REVIEW = "review"

    @property
    def task(self) -> Task:
        """The task whose model labels this kind of message (questions: FAQ keys, reviews: sentiment)."""
        return Task.FAQ if self is MessageKind.QUESTION else Task.SENTIMENT


TASKS = tuple(Task)  # in training order
SENTIMENT_LABELS = ("positive", "neutral", "negative")  # one order: the staff buttons, the classifier's outputs


class Action(StrEnum):
    """What the bot did with a customer message."""

    ANSWERED = "answered"  # a question answered with an FAQ entry
    HANDOFF = "handoff"  # a question passed to staff: no entry was sure enough
    ACKNOWLEDGED = "acknowledged"  # a review thanked for
    SUGGESTED = "suggested"  # a question shown "did you mean…?" buttons, the customer's pick still awaited
    TAKEN_OVER = "taken_over"  # staff are talking with the customer: the bot said nothing, staff saw it


class DecisionStatus(StrEnum):
    """Where staff feedback on a decision stands."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    CORRECTED = "corrected"
    ANSWERED_BY_STAFF = "answered_by_staff"


class PredictionSource(StrEnum):
    """Who decided a message: the model, or the correction memory (a staff correction of the same text)."""

    MODEL = "model"
    MEMORY = "memory"


class CorrectionKind(StrEnum):
    """A staff member's feedback on one decision."""

    CONFIRM = "confirm"  # ✅ the bot was right
    LABEL = "label"  # a review's sentiment (on a question decision: "this is a review")
    FAQ = "faq"  # the right FAQ entry for a question
    ANSWER = "answer"  # staff's own answer to a question (a new FAQ entry, or an existing key)


class ExampleSource(StrEnum):
    """Where a labelled example came from."""

    SEED = "seed"
    CORRECTION = "correction"
    CONFIRMATION = "confirmation"
    STAFF_ANSWER = "staff_answer"
    CUSTOMER = "customer"  # a customer's pick among "did you mean…?" suggestions: trains, never corrects


class SuggestionOutcome(StrEnum):
    """What became of the "did you mean…?" buttons shown under a question (decisions.suggestion)."""

    OFFERED = "offered"  # shown, nothing pressed yet
    PICKED = "picked"  # the customer picked an entry: answered with it
    REFUSED = "refused"  # "none of these": handed off to staff
    UNANSWERED = "unanswered"  # nothing pressed in time (thresholds.suggestion_wait_minutes): handed off to staff


class CustomerFeedback(StrEnum):
    """A customer's 👍 / 👎 under an automatic answer (decisions.customer_feedback)."""

    UP = "up"
    DOWN = "down"


# Feedback that corrects the bot (the regression set, the correction memory); a confirmation agrees with it.
CORRECTION_SOURCES = (ExampleSource.CORRECTION, ExampleSource.STAFF_ANSWER)


class RunTrigger(StrEnum):
    """What started a retraining run."""

    SCHEDULE = "schedule"
    MANUAL = "manual"  # an owner's /retrain
    CATCHUP = "catchup"  # at start-up, after a missed weekly run
    CLI = "cli"


class RunStatus(StrEnum):
    """How a retraining run ended (running until then)."""

    RUNNING = "running"
    PROMOTED = "promoted"
    REFUSED = "refused"
    FAILED = "failed"
    SKIPPED = "skipped"


COMPLETED_RUNS = (RunStatus.PROMOTED, RunStatus.REFUSED)  # a run that trained and gated its candidates
SUCCESSFUL_RUNS = (*COMPLETED_RUNS, RunStatus.SKIPPED)  # a run that did its job (skipped: too few new examples)


class AdapterStatus(StrEnum):
    """An adapter version's place in the registry."""

    CANDIDATE = "candidate"
    ACTIVE = "active"
    RETIRED = "retired"
    REJECTED = "rejected"
