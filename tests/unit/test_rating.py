"""Rating against hand-computed bills: base price, allowance, then graduated overage tiers."""

from __future__ import annotations

import pytest

from ordersmith.billing.rating import InvoiceLine, UnknownPlanError, rate
from ordersmith.platform.plans import Meter

# Starter: $29.00 base, 500 orders included, then 8¢ for overage orders 1 to 1,000 and 6¢ beyond.
# Growth: $99.00 base, 3,000 included, then 5¢ (1 to 5,000), 4¢ (5,001 to 20,000), 3¢ beyond.
# Enterprise: $499.00 base, 20,000 included, then 3¢ (1 to 50,000), 2¢ beyond.


@pytest.mark.parametrize(
    ("plan", "orders", "total"),
    [
        ("starter", 0, 2_900),
        ("starter", 499, 2_900),
        ("starter", 500, 2_900),
        # First overage order: the first tier's price.
        ("starter", 501, 2_900 + 8),
        # Last order of the first tier: 1,000 x 8¢.
        ("starter", 1_500, 2_900 + 8_000),
        # One past it: the second tier starts.
        ("starter", 1_501, 2_900 + 8_000 + 6),
        ("starter", 2_500, 2_900 + 8_000 + 1_000 * 6),
        ("growth", 3_000, 9_900),
        ("growth", 3_001, 9_900 + 5),
        ("growth", 8_000, 9_900 + 5_000 * 5),
        ("growth", 8_001, 9_900 + 25_000 + 4),
        ("growth", 23_000, 9_900 + 25_000 + 15_000 * 4),
        ("growth", 23_001, 9_900 + 25_000 + 60_000 + 3),
        ("growth", 33_000, 9_900 + 25_000 + 60_000 + 10_000 * 3),
        ("enterprise", 20_000, 49_900),
        ("enterprise", 70_000, 49_900 + 50_000 * 3),
        ("enterprise", 70_001, 49_900 + 150_000 + 2),
        # The trial costs nothing, however many orders it takes.
        ("trial", 0, 0),
        ("trial", 5_000, 0),
    ],
)
def test_the_total_at_each_tier_boundary_equals_the_hand_computed_bill(
    plan: str, orders: int, total: int
) -> None:
    preview = rate(plan, {Meter.ORDERS: orders})
    assert (preview.plan, preview.currency, preview.total) == (plan, "usd", total)
    assert sum(line.amount for line in preview.lines) == total


def test_the_lines_show_base_allowance_and_each_tier_used() -> None:
    preview = rate("growth", {Meter.ORDERS: 9_000})
    # 9,000 orders: 3,000 included, 6,000 over: 5,000 at 5¢, 1,000 at 4¢.
    assert preview.lines == (
        InvoiceLine("base", "Growth plan, monthly", None, 1, 9_900, 9_900),
        InvoiceLine("included", "orders included in the plan (3,000)", Meter.ORDERS, 3_000, 0, 0),
        InvoiceLine(
            "overage", "orders 1 to 5,000 over the allowance", Meter.ORDERS, 5_000, 5, 25_000, 1, 5_000
        ),
        InvoiceLine(
            "overage",
            "orders 5,001 to 20,000 over the allowance",
            Meter.ORDERS,
            1_000,
            4,
            4_000,
            5_001,
            20_000,
        ),
    )
    assert preview.total == 38_900


def test_the_last_tier_has_no_end() -> None:
    preview = rate("starter", {Meter.ORDERS: 10_500})
    last = preview.lines[-1]
    assert (last.description, last.quantity, last.unit_amount, last.amount) == (
        "orders 1,001 and up over the allowance",
        9_000,
        6,
        54_000,
    )
    assert (last.tier_from, last.tier_to) == (1_001, None)
    assert preview.total == 2_900 + 8_000 + 54_000


def test_no_usage_is_the_base_price_alone() -> None:
    preview = rate("enterprise", {})
    assert preview.lines == (InvoiceLine("base", "Enterprise plan, monthly", None, 1, 49_900, 49_900),)
    assert preview.total == 49_900


def test_an_unknown_plan_is_refused_with_the_plans_there_are() -> None:
    with pytest.raises(UnknownPlanError) as refused:
        rate("platinum", {Meter.ORDERS: 1})
    assert refused.value.code == "unknown_plan"
    assert refused.value.extensions == {"plans": ["trial", "starter", "growth", "enterprise"]}
    assert refused.value.errors[0].field == "plan"


def test_negative_usage_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        rate("starter", {Meter.ORDERS: -1})


def test_api_requests_and_seats_are_measured_not_billed() -> None:
    orders_only = rate("starter", {Meter.ORDERS: 600})
    with_the_rest = rate("starter", {Meter.ORDERS: 600, Meter.API_REQUESTS: 2_000_000, Meter.SEATS: 40})
    # No line and no amount for either: the bill is the orders' bill, 500 included and 100 at 8¢.
    assert with_the_rest == orders_only
    assert with_the_rest.total == 2_900 + 100 * 8
    assert {line.meter for line in with_the_rest.lines} == {None, Meter.ORDERS}
    assert rate("growth", {Meter.API_REQUESTS: 10_000, Meter.SEATS: 16}).lines == (
        InvoiceLine("base", "Growth plan, monthly", None, 1, 9_900, 9_900),
    )
