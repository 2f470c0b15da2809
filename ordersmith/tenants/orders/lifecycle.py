"""The order lifecycle: the one table of allowed status transitions.

Payment and fulfillment are not statuses a person sets: `payment_status` and
`fulfillment_status` follow their ledgers (see `derived.py`). Holds are rows, not a
status: an open hold keeps a placed order from being confirmed and any order from being
fulfilled.
"""

from __future__ import annotations

from ordersmith.tenants.orders.errors import InvalidTransitionError

DRAFT = "draft"
PLACED = "placed"
CONFIRMED = "confirmed"
COMPLETED = "completed"
CANCELLED = "cancelled"
ARCHIVED = "archived"

TRANSITIONS: dict[str, frozenset[str]] = {
    DRAFT: frozenset({PLACED, CANCELLED}),
    PLACED: frozenset({CONFIRMED, CANCELLED}),
    CONFIRMED: frozenset({COMPLETED, CANCELLED}),
    COMPLETED: frozenset({ARCHIVED}),
    CANCELLED: frozenset({ARCHIVED}),
    ARCHIVED: frozenset(),
}

# Statuses whose lines can still change: edits, cancellations, holds.
OPEN = frozenset({DRAFT, PLACED, CONFIRMED})


def check_transition(current: str, wanted: str) -> None:
    """Raise `invalid_transition` naming the current status and what may follow it."""
    allowed = TRANSITIONS[current]
    if wanted not in allowed:
        raise InvalidTransitionError(current, wanted, allowed)
