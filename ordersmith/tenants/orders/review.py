"""The store's review rule: an order over an amount is held for review instead of confirmed.

The rule is the store's `review_orders_over_amount`, in minor units of its default
currency (orders in other currencies are not compared). It holds an order as it is
placed (a new order or a draft): a `fraud_review` hold placed by the system, which any
agent may release; releasing it confirms the order as any last hold does.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.orders.rules import HoldRequest
from ordersmith.tenants.store.models import StoreSettings

RULE = "review_orders_over_amount"
# Who places a rule's hold: the system, naming the rule (not a touch).
RULE_ACTOR = Actor("system", RULE)
HOLD_TYPE = "fraud_review"


@dataclass(frozen=True)
class ReviewRule:
    """The threshold in force (None: off) and the currency it is in."""

    over_amount: int | None
    currency: str

    def hold_for(self, currency: str, total_amount: int) -> HoldRequest | None:
        """The hold an order of this total should get, or None."""
        if self.over_amount is None or currency != self.currency or total_amount <= self.over_amount:
            return None
        return HoldRequest(
            HOLD_TYPE,
            f"the total {total_amount} is over the store's review threshold of {self.over_amount} "
            f"({currency} minor units)",
        )


async def read_rule(session: AsyncSession) -> ReviewRule:
    """The store's rule, read in the session's transaction."""
    row = (
        await session.execute(
            select(StoreSettings.review_orders_over_amount, StoreSettings.default_currency).where(
                StoreSettings.id == 1
            )
        )
    ).one()
    return ReviewRule(row[0], row[1])
