"""The return lifecycle: the one table of allowed status moves.

requested → approved | declined; approved → in_transit (the customer sent it) or
received (handed over in store); in_transit → received. A return closes once received,
or earlier when staff settle it without the goods coming back (a refund without return).
Refunds, store credit and exchanges are outcomes, not statuses: they may happen in any
approved, in-transit or received return, so a return can be received without a refund
and refunded without being received (refunds and store credit also once it is closed, if
it keeps its units: see `outcomes.py`).
"""

from __future__ import annotations

from ordersmith.tenants.returns.errors import InvalidReturnTransitionError

REQUESTED = "requested"
APPROVED = "approved"
DECLINED = "declined"
IN_TRANSIT = "in_transit"
RECEIVED = "received"
CLOSED = "closed"

TRANSITIONS: dict[str, frozenset[str]] = {
    REQUESTED: frozenset({APPROVED, DECLINED}),
    APPROVED: frozenset({IN_TRANSIT, RECEIVED, CLOSED}),
    IN_TRANSIT: frozenset({RECEIVED, CLOSED}),
    RECEIVED: frozenset({CLOSED}),
    DECLINED: frozenset(),
    CLOSED: frozenset(),
}

# A return whose units still count against what a line can return; a closed one only when
# it was received or resolved (`service.claimed_quantities` says exactly when).
COUNTING = frozenset({REQUESTED, APPROVED, IN_TRANSIT, RECEIVED, CLOSED})
# Where refunds, store credit and exchanges may be given; refunds and store credit also on a
# closed return that keeps its units (`outcomes._check_resolvable`).
RESOLVABLE = frozenset({APPROVED, IN_TRANSIT, RECEIVED})
# Still someone's work: shown as open returns in customer follow-ups.
OPEN = frozenset({REQUESTED, APPROVED, IN_TRANSIT, RECEIVED})


def check_transition(current: str, wanted: str) -> None:
    """Raise `invalid_transition` naming the current status and what may follow it."""
    allowed = TRANSITIONS[current]
    if wanted not in allowed:
        raise InvalidReturnTransitionError(current, wanted, allowed)
