"""The return and fulfillment order lifecycles, each as a table: every pair, allowed or refused."""

from __future__ import annotations

import itertools

import pytest

from ordersmith.tenants.fulfillment import lifecycle as fulfillment
from ordersmith.tenants.fulfillment.errors import InvalidFulfillmentTransitionError
from ordersmith.tenants.fulfillment.models import FULFILLMENT_ORDER_STATUSES
from ordersmith.tenants.returns import lifecycle as returns
from ordersmith.tenants.returns.errors import InvalidReturnTransitionError
from ordersmith.tenants.returns.models import RETURN_STATUSES

# Written out by hand, not derived from the code under test.
RETURN_ALLOWED = {
    ("requested", "approved"),
    ("requested", "declined"),
    ("approved", "in_transit"),
    ("approved", "received"),
    ("approved", "closed"),
    ("in_transit", "received"),
    ("in_transit", "closed"),
    ("received", "closed"),
}
FULFILLMENT_ALLOWED = {
    ("open", "in_progress"),
    ("open", "on_hold"),
    ("open", "closed"),
    ("open", "cancelled"),
    ("in_progress", "on_hold"),
    ("in_progress", "closed"),
    ("on_hold", "open"),
    ("on_hold", "in_progress"),
    ("on_hold", "closed"),
    ("on_hold", "cancelled"),
}


def test_the_return_table_covers_every_status_and_only_known_ones() -> None:
    assert set(returns.TRANSITIONS) == set(RETURN_STATUSES)
    assert {(current, wanted) for current, targets in returns.TRANSITIONS.items() for wanted in targets} == (
        RETURN_ALLOWED
    )
    assert frozenset({"approved", "in_transit", "received"}) == returns.RESOLVABLE
    assert frozenset(RETURN_STATUSES) - {"declined"} == returns.COUNTING


@pytest.mark.parametrize(("current", "wanted"), sorted(RETURN_ALLOWED))
def test_an_allowed_return_move_passes(current: str, wanted: str) -> None:
    returns.check_transition(current, wanted)


@pytest.mark.parametrize(
    ("current", "wanted"),
    [pair for pair in itertools.product(RETURN_STATUSES, repeat=2) if pair not in RETURN_ALLOWED],
)
def test_any_other_return_move_names_the_current_status_and_what_may_follow(
    current: str, wanted: str
) -> None:
    with pytest.raises(InvalidReturnTransitionError) as raised:
        returns.check_transition(current, wanted)
    allowed = sorted(next_ for now, next_ in RETURN_ALLOWED if now == current)
    assert raised.value.extensions == {"current_status": current, "allowed_next": allowed}
    assert raised.value.code == "invalid_transition"
    assert f"a return that is {current} cannot become {wanted}" in raised.value.detail


def test_the_fulfillment_table_covers_every_status_and_only_known_ones() -> None:
    assert set(fulfillment.TRANSITIONS) == set(FULFILLMENT_ORDER_STATUSES)
    assert {
        (current, wanted) for current, targets in fulfillment.TRANSITIONS.items() for wanted in targets
    } == FULFILLMENT_ALLOWED


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        pair
        for pair in itertools.product(FULFILLMENT_ORDER_STATUSES, repeat=2)
        if pair not in FULFILLMENT_ALLOWED
    ],
)
def test_any_other_fulfillment_move_is_refused(current: str, wanted: str) -> None:
    with pytest.raises(InvalidFulfillmentTransitionError) as raised:
        fulfillment.check_transition(current, wanted)
    assert raised.value.extensions["current_status"] == current


@pytest.mark.parametrize(
    ("current", "reserved", "shipped", "is_held", "expected"),
    [
        ("open", 3, 0, False, "open"),
        ("open", 3, 0, True, "on_hold"),
        ("open", 1, 2, False, "in_progress"),
        ("open", 0, 3, False, "closed"),
        ("open", 0, 0, False, "cancelled"),
        ("in_progress", 1, 2, True, "on_hold"),
        ("in_progress", 0, 2, True, "closed"),
        ("on_hold", 3, 0, False, "open"),
        ("on_hold", 1, 2, False, "in_progress"),
        ("on_hold", 0, 0, True, "cancelled"),
        ("closed", 5, 0, False, "closed"),
        ("cancelled", 5, 0, False, "cancelled"),
    ],
)
def test_a_fulfillment_order_follows_its_stock(
    current: str, reserved: int, shipped: int, is_held: bool, expected: str
) -> None:
    assert fulfillment.derive(current, reserved=reserved, shipped=shipped, is_held=is_held) == expected


def test_what_the_stock_calls_for_is_always_an_allowed_move() -> None:
    """Shipped units never come back to a fulfillment order, so derive never asks for a refused move."""
    for current in FULFILLMENT_ORDER_STATUSES:
        for reserved, shipped, is_held in itertools.product((0, 1), (0, 1), (False, True)):
            if current == "in_progress" and shipped == 0:
                continue  # an in-progress fulfillment order has shipped something
            wanted = fulfillment.derive(current, reserved=reserved, shipped=shipped, is_held=is_held)
            if wanted != current:
                fulfillment.check_transition(current, wanted)
