"""A fulfillment order's status: the one table of moves, and how the status follows its stock.

A fulfillment order is not moved by hand. Its status follows what its location still
holds for the order (live reservations), what it shipped, and whether the order has an
open hold: `derive` says what it should be, `check_transition` that the move is allowed.
"""

from __future__ import annotations

from ordersmith.tenants.fulfillment.errors import InvalidFulfillmentTransitionError

OPEN = "open"
IN_PROGRESS = "in_progress"
ON_HOLD = "on_hold"
CLOSED = "closed"
CANCELLED = "cancelled"

TRANSITIONS: dict[str, frozenset[str]] = {
    # Nothing shipped yet: the first shipment starts it, a hold stops it, losing all
    # its stock (cancelled, re-routed) cancels it, one shipment of everything closes it.
    OPEN: frozenset({IN_PROGRESS, ON_HOLD, CLOSED, CANCELLED}),
    # Something shipped: it can only end closed (what shipped stays shipped).
    IN_PROGRESS: frozenset({ON_HOLD, CLOSED}),
    ON_HOLD: frozenset({OPEN, IN_PROGRESS, CLOSED, CANCELLED}),
    CLOSED: frozenset(),
    CANCELLED: frozenset(),
}

LIVE = frozenset({OPEN, IN_PROGRESS, ON_HOLD})


def check_transition(current: str, wanted: str) -> None:
    """Raise `invalid_transition` naming the current status and what may follow it."""
    allowed = TRANSITIONS[current]
    if wanted not in allowed:
        raise InvalidFulfillmentTransitionError(current, wanted, allowed)


def derive(current: str, *, reserved: int, shipped: int, is_held: bool) -> str:
    """The status a fulfillment order should have, given its location's stock for the order."""
    if current not in LIVE:
        return current
    if reserved == 0:
        return CLOSED if shipped else CANCELLED
    if is_held:
        return ON_HOLD
    return IN_PROGRESS if shipped else OPEN
