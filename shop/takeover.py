"""Human takeover without Telegram: while a staff member talks with a customer the bot stays quiet for them.

A staff answer (a reply to a mirror, ✍, an FAQ pick on a handed-off question, a relayed message) starts or
extends the takeover for `conversation.takeover_minutes`; it ends by itself then, or at once on ▶ / /resume.
The end time lives in customers.takeover_until (UTC), so a restart keeps it.

A message that arrives while staff talk with the customer is the staff's to handle, not the bot's: its decision
(action "taken_over") is stored as handled by staff at once (`handled_by_staff`), so it never waits for
feedback in /review or the digest, and the owners' report does not count it among the questions the bot was
asked (the handoff that started the conversation counted once).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from settings import Settings
from storage.clock import to_timestamp
from storage.records import Customer, Decision, NotFoundError
from storage.store import Store
from vocabulary import DecisionStatus

HANDLED = DecisionStatus.ANSWERED_BY_STAFF  # the status of a decision on a message staff handle in their conversation


def taken_over(customer: Customer, now: datetime) -> bool:
    """Whether a staff member is talking with this customer at `now` (the bot must not answer them)."""
    return customer.takeover_until is not None and datetime.fromisoformat(customer.takeover_until) > now


def take_over(settings: Settings, store: Store, customer_id: int, staff_id: int, now: datetime) -> datetime | None:
    """Start (or extend) the takeover of a customer by a staff member who just wrote to them; returns until when
    (None: takeover is off, or the customer is unknown)."""
    minutes = settings.conversation.takeover_minutes
    if not minutes:
        return None
    until = now + timedelta(minutes=minutes)
    try:
        store.customers.set_takeover(customer_id, to_timestamp(until), staff_id)
    except NotFoundError:
        return None
    return until


def handled_by_staff(store: Store, decision: Decision) -> Decision:
    """A taken-over message's decision: staff handle it in their conversation, nothing waits for feedback."""
    return store.decisions.set_status(decision.id, HANDLED)


def resume(store: Store, customer_id: int, now: datetime) -> bool:
    """End a takeover at once; False if the customer was not taken over (nothing changes)."""
    try:
        customer = store.customers.get(customer_id)
    except NotFoundError:
        return False
    if not taken_over(customer, now):
        return False
    store.customers.set_takeover(customer_id, None)
    return True


def customer_of(store: Store, decision_id: int) -> int | None:
    """The customer who wrote the message of a decision (None once their message is gone)."""
    try:
        decision = store.decisions.get(decision_id)
    except NotFoundError:
        return None
    if decision.message_id is None:
        return None
    try:
        return store.messages.get(decision.message_id).customer_id
    except NotFoundError:
        return None
