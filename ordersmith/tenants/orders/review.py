"""The store's review rules: orders that are held for review instead of confirmed.

Two rules, each off until the store turns it on (`PATCH /api/v1/store`):
- `review_orders_over_amount`, in minor units of the store's default currency: an order
  in that currency whose total is over it (orders in other currencies are not compared);
- `review_first_orders`: a customer's first order, when neither they nor a customer
  merged into them has had an order placed before.

They hold an order as it is placed (a new order or a draft), and the amount rule holds
an order an edit takes over the threshold: one `fraud_review` hold placed by the system,
whose reason names every rule that applied, which any agent may release; releasing it
confirms the order as any last hold does.

An order that arrives with holds of its own still gets the rules' hold beside them:
otherwise releasing its own hold (a customer's request, an address to check) would
confirm an order nobody reviewed. Only a `fraud_review` already on it stands in for the
rules' hold, as on the edit path: that is the review they ask for, and whoever placed
it chose who may release it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.customers.models import Customer
from ordersmith.tenants.orders.models import Order
from ordersmith.tenants.orders.rules import HoldRequest
from ordersmith.tenants.store.models import StoreSettings

AMOUNT_RULE = "review_orders_over_amount"
FIRST_ORDER_RULE = "review_first_orders"
HOLD_TYPE = "fraud_review"


@dataclass(frozen=True)
class RuleHold(HoldRequest):
    """A review hold and the rules that called for it."""

    rules: tuple[str, ...] = ()

    @property
    def actor(self) -> Actor:
        """Who places it: the system, naming the rules (not a touch)."""
        return Actor("system", "+".join(self.rules))


@dataclass(frozen=True)
class ReviewRule:
    """The rules in force: the threshold (None: off) and its currency, and whether first orders are held."""

    over_amount: int | None
    currency: str
    first_orders: bool = False

    def hold_for(self, currency: str, total_amount: int, *, is_first_order: bool = False) -> RuleHold | None:
        """The hold an order of this total should get (`is_first_order`: the customer's first), or None."""
        reasons, rules = [], []
        if self.over_amount is not None and currency == self.currency and total_amount > self.over_amount:
            rules.append(AMOUNT_RULE)
            reasons.append(
                f"the total {total_amount} is over the store's review threshold of {self.over_amount} "
                f"({currency} minor units)"
            )
        if self.first_orders and is_first_order:
            rules.append(FIRST_ORDER_RULE)
            reasons.append("it is the customer's first order, and the store reviews first orders")
        if not rules:
            return None
        return RuleHold(HOLD_TYPE, "; ".join(reasons), rules=tuple(rules))


def is_under_review(hold_types: Iterable[str]) -> bool:
    """Whether the order's open holds (by type) include a fraud review: then the rules add no second."""
    return HOLD_TYPE in hold_types


def has_ordered(live_customer_id: object) -> Select[tuple[bool]]:
    """Whether the live customer (an id or an expression), or one merged into it, had an order placed.

    By index: the orders of the customer, then of the customers merged into it. A draft
    was never placed, so the draft being placed does not count itself.
    """
    own = exists().where(Order.customer_id == live_customer_id, Order.placed_at.is_not(None))
    merged = exists().where(
        Customer.merged_into_id == live_customer_id,
        Order.customer_id == Customer.id,
        Order.placed_at.is_not(None),
    )
    return select(own | merged)


async def read_rule(session: AsyncSession) -> ReviewRule:
    """The store's rules, read in the session's transaction."""
    row = (
        await session.execute(
            select(
                StoreSettings.review_orders_over_amount,
                StoreSettings.default_currency,
                StoreSettings.review_first_orders,
            ).where(StoreSettings.id == 1)
        )
    ).one()
    return ReviewRule(row[0], row[1], row[2])


async def is_first_order(session: AsyncSession, customer_id: uuid.UUID) -> bool:
    """Whether an order the live customer places now is their first."""
    return not await session.scalar(has_ordered(customer_id))
