"""The order lifecycle as a table: every (current, wanted) pair, allowed or refused."""

from __future__ import annotations

import itertools

import pytest

from ordersmith.tenants.orders import lifecycle
from ordersmith.tenants.orders.errors import InvalidTransitionError
from ordersmith.tenants.orders.models import ORDER_STATUSES

# Written out by hand, not derived from the code under test: changing the table means
# changing this list on purpose.
ALLOWED = {
    ("draft", "placed"),
    ("draft", "cancelled"),
    ("placed", "confirmed"),
    ("placed", "cancelled"),
    ("confirmed", "completed"),
    ("confirmed", "cancelled"),
    ("completed", "archived"),
    ("cancelled", "archived"),
}
NEXT = {
    "draft": ["cancelled", "placed"],
    "placed": ["cancelled", "confirmed"],
    "confirmed": ["cancelled", "completed"],
    "completed": ["archived"],
    "cancelled": ["archived"],
    "archived": [],
}
PAIRS = list(itertools.product(ORDER_STATUSES, repeat=2))


def test_the_table_covers_every_status_and_only_known_ones() -> None:
    assert set(lifecycle.TRANSITIONS) == set(ORDER_STATUSES)
    assert {
        (current, wanted) for current, targets in lifecycle.TRANSITIONS.items() for wanted in targets
    } == ALLOWED
    assert frozenset({"draft", "placed", "confirmed"}) == lifecycle.OPEN


@pytest.mark.parametrize(("current", "wanted"), sorted(ALLOWED))
def test_an_allowed_transition_passes(current: str, wanted: str) -> None:
    lifecycle.check_transition(current, wanted)


@pytest.mark.parametrize(("current", "wanted"), [pair for pair in PAIRS if pair not in ALLOWED])
def test_any_other_transition_names_the_current_status_and_what_may_follow(current: str, wanted: str) -> None:
    with pytest.raises(InvalidTransitionError) as raised:
        lifecycle.check_transition(current, wanted)
    error = raised.value
    assert (error.status, error.code) == (409, "invalid_transition")
    assert error.extensions == {"current_status": current, "allowed_next": NEXT[current]}
    following = ", ".join(NEXT[current]) or "nothing: it is final"
    assert error.detail == (
        f"an order that is {current} cannot become {wanted}; from {current} it can become {following}"
    )


def test_the_walk_covers_all_thirty_six_pairs() -> None:
    assert len(PAIRS) == 36
    assert len([pair for pair in PAIRS if pair in ALLOWED]) == 8
