"""What each plan costs: a monthly base price and a graduated price per order over the allowance.

Entitlements (features, limits, included orders) are in `ordersmith/platform/plans.py`;
this module only puts money on them. Amounts are in minor units of `CURRENCY`.
"""

from __future__ import annotations

from dataclasses import dataclass

CURRENCY = "usd"


@dataclass(frozen=True)
class Tier:
    """Overage units up to `up_to` (inclusive, after the allowance; None: no end) cost `unit_amount` each."""

    up_to: int | None
    unit_amount: int


@dataclass(frozen=True)
class Price:
    """A plan's price: base per month and the graduated overage tiers for orders."""

    plan: str
    base_amount: int
    order_tiers: tuple[Tier, ...]


PRICES: dict[str, Price] = {
    price.plan: price
    for price in (
        # The trial costs nothing and has no overage: past its allowance it still places orders.
        Price(plan="trial", base_amount=0, order_tiers=(Tier(None, 0),)),
        Price(
            plan="starter",
            base_amount=2_900,
            order_tiers=(Tier(1_000, 8), Tier(None, 6)),
        ),
        Price(
            plan="growth",
            base_amount=9_900,
            order_tiers=(Tier(5_000, 5), Tier(20_000, 4), Tier(None, 3)),
        ),
        Price(
            plan="enterprise",
            base_amount=49_900,
            order_tiers=(Tier(50_000, 3), Tier(None, 2)),
        ),
    )
}
