"""Ordersmith's plans as Stripe objects: one meter, a product per paid plan, its two prices.

Created on first need and remembered in `platform.stripe_catalog` under keys derived from
what they are. A price's key carries a fingerprint of its amounts: Stripe prices cannot
change, so a new price in `prices.py` makes a new Stripe price, and subscriptions move to
it on their next plan change. Each creation's idempotency key is the catalog key, so two
processes creating the same object at once get one object.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.billing.gateway import call
from ordersmith.billing.prices import CURRENCY, PRICES, Price
from ordersmith.platform.billing_models import StripeCatalogEntry
from ordersmith.platform.database import Database
from ordersmith.platform.plans import PLANS, Meter
from ordersmith.platform.settings import BillingSettings


@dataclass(frozen=True)
class PlanPrices:
    """The Stripe prices a subscription to one plan is made of."""

    plan: str
    base_price_id: str
    metered_price_id: str


def _fingerprint(definition: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:12]


def metered_tiers(price: Price, included: int) -> list[dict[str, Any]]:
    """Stripe's graduated tiers for a plan's orders: the allowance free, then our overage tiers."""
    tiers: list[dict[str, Any]] = [{"up_to": included, "unit_amount": 0}] if included else []
    for tier in price.order_tiers:
        tiers.append(
            {"up_to": "inf" if tier.up_to is None else included + tier.up_to, "unit_amount": tier.unit_amount}
        )
    return tiers


async def _remembered(database: Database, key: str) -> str | None:
    async with database.platform_session() as session:
        return await session.scalar(select(StripeCatalogEntry.stripe_id).where(StripeCatalogEntry.key == key))


async def _remember(database: Database, key: str, stripe_id: str) -> str:
    async with database.platform_session() as session:
        await session.execute(
            pg_insert(StripeCatalogEntry).values(key=key, stripe_id=stripe_id).on_conflict_do_nothing()
        )
        return str(
            await session.scalar(select(StripeCatalogEntry.stripe_id).where(StripeCatalogEntry.key == key))
        )


async def ensure_meter(database: Database, client: stripe.StripeClient, settings: BillingSettings) -> str:
    """The id of the Billing Meter for orders, pre-aggregated per hour; created on first use."""
    definition = {
        "display_name": "Orders",
        "event_name": settings.stripe_meter_event_name,
        "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
        "value_settings": {"event_payload_key": "value"},
        # We send each hour's total; the latest event of an hour replaces the earlier ones.
        "event_time_window": "hour",
    }
    key = f"meter:{Meter.ORDERS.value}:{_fingerprint(definition)}"
    if (known := await _remembered(database, key)) is not None:
        return known
    meter = await call(
        client.v1.billing.meters.create_async(definition, {"idempotency_key": f"ordersmith-{key}"})  # type: ignore[arg-type]
    )
    return await _remember(database, key, meter.id)


async def ensure_plan_prices(
    database: Database, client: stripe.StripeClient, settings: BillingSettings, plan_code: str
) -> PlanPrices:
    """The base and metered prices of a paid plan in Stripe; created on first use."""
    plan, price = PLANS[plan_code], PRICES[plan_code]
    meter_id = await ensure_meter(database, client, settings)
    product_key = f"product:{plan_code}"
    product_id = await _remembered(database, product_key)
    if product_id is None:
        product = await call(
            client.v1.products.create_async(
                {"name": f"Ordersmith {plan.name}", "metadata": {"plan": plan_code}},
                {"idempotency_key": f"ordersmith-{product_key}"},
            )
        )
        product_id = await _remember(database, product_key, product.id)
    base: dict[str, Any] = {
        "product": product_id,
        "currency": CURRENCY,
        "unit_amount": price.base_amount,
        "recurring": {"interval": "month"},
        "metadata": {"plan": plan_code, "kind": "base"},
    }
    metered: dict[str, Any] = {
        "product": product_id,
        "currency": CURRENCY,
        "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "tiers": metered_tiers(price, plan.included.get(Meter.ORDERS, 0)),
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
        "metadata": {"plan": plan_code, "kind": "orders"},
    }
    ids = []
    for kind, definition in (("base", base), ("orders", metered)):
        key = f"price:{plan_code}:{kind}:{_fingerprint(definition)}"
        price_id = await _remembered(database, key)
        if price_id is None:
            created = await call(
                client.v1.prices.create_async(definition, {"idempotency_key": f"ordersmith-{key}"})  # type: ignore[arg-type]
            )
            price_id = await _remember(database, key, created.id)
        ids.append(price_id)
    return PlanPrices(plan_code, ids[0], ids[1])


async def plan_of_prices(session: AsyncSession, price_ids: set[str]) -> str | None:
    """Which of our plans a subscription's prices belong to (None if none of ours)."""
    keys = (
        await session.scalars(
            select(StripeCatalogEntry.key).where(
                StripeCatalogEntry.stripe_id.in_(price_ids), StripeCatalogEntry.key.startswith("price:")
            )
        )
    ).all()
    plans = {key.split(":")[1] for key in keys}
    return plans.pop() if len(plans) == 1 else None
