"""When an order completes on its own: the rule as a table."""

from __future__ import annotations

import pytest

from ordersmith.tenants.orders.completion import is_due


@pytest.mark.parametrize(
    ("status", "payment", "fulfillment", "total", "holds", "due"),
    [
        ("confirmed", "paid", "fulfilled", 1000, 0, True),
        ("confirmed", "overpaid", "fulfilled", 1000, 0, True),
        ("confirmed", "partially_refunded", "fulfilled", 1000, 0, True),
        ("confirmed", "refunded", "fulfilled", 1000, 0, True),
        # Nothing to collect on a free order.
        ("confirmed", "unpaid", "fulfilled", 0, 0, True),
        ("confirmed", "paid", "partially_fulfilled", 1000, 0, False),
        ("confirmed", "paid", "unfulfilled", 1000, 0, False),
        ("confirmed", "authorized", "fulfilled", 1000, 0, False),
        ("confirmed", "partially_paid", "fulfilled", 1000, 0, False),
        ("confirmed", "unpaid", "fulfilled", 1000, 0, False),
        ("confirmed", "requires_action", "fulfilled", 1000, 0, False),
        ("confirmed", "voided", "fulfilled", 1000, 0, False),
        # A hold stops it; a placed order is not confirmed yet; the rest are past completing.
        ("confirmed", "paid", "fulfilled", 1000, 1, False),
        ("placed", "paid", "fulfilled", 1000, 0, False),
        ("completed", "paid", "fulfilled", 1000, 0, False),
        ("cancelled", "refunded", "unfulfilled", 1000, 0, False),
        ("archived", "paid", "fulfilled", 1000, 0, False),
    ],
)
def test_an_order_completes_when_confirmed_unheld_shipped_and_paid(
    status: str, payment: str, fulfillment: str, total: int, holds: int, due: bool
) -> None:
    assert is_due(status, payment, fulfillment, total=total, open_holds=holds) is due
