"""Helpers for payment tests: a stocked store with payments set up, Stripe pointed at the fake, webhooks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.tenants.payments import config
from ordersmith.tenants.payments.models import PaymentTransaction
from tests.support.fake_stripe import SECRET_KEY, FakeStripe, sign_webhook
from tests.support.fake_stripe.payments import VISA
from tests.support.fulfillment import release, ship
from tests.support.order_actions import tenant_context
from tests.support.orders import Store, open_store

WEBHOOK_SECRET = "whsec_test_0123456789abcdef"
PRICE = 2500


@contextmanager
def stripe_at(fake: FakeStripe, secret_key: str) -> Iterator[None]:
    """Point the payments context's Stripe calls at the fake for the block."""
    previous = config.current()
    config.configure(config.PaymentsConfig(secret_key=secret_key, stripe_api_base=fake.base_url))
    try:
        yield
    finally:
        config.configure(previous)


async def payment_store(
    client: AsyncTestClient[Litestar],
    *,
    providers: tuple[str, ...] = ("manual",),
    capture_policy: str = "at_placement",
) -> Store:
    """A store selling TEE-S at 25.00 EUR with 50 in WH-1, its payment providers set up."""
    store = await open_store(client)
    await store.add_skus("TEE-S", price=PRICE)
    await store.add_location("WH-1", priority=10)
    await store.receive("TEE-S", "WH-1", 50)
    settings: dict[str, Any] = {"enabled_providers": list(providers), "capture_policy": capture_policy}
    if "stripe" in providers:
        settings |= {"stripe_secret_key": SECRET_KEY, "stripe_webhook_secret": WEBHOOK_SECRET}
    await store.call("PUT", "/api/v1/payment-settings", 200, json=settings)
    return store


async def pay(store: Store, order_id: str, expected: int = 201, **body: Any) -> dict[str, Any]:
    """POST a payment on an order; returns the response body."""
    result: dict[str, Any] = await store.call(
        "POST", f"/api/v1/orders/{order_id}/payments", expected, json=body, headers=body.pop("headers", {})
    )
    return result


async def paid_by_card(store: Store) -> tuple[dict[str, Any], dict[str, Any]]:
    """An order of two TEE-S (50.00 EUR) paid in full by card through Stripe; the order and its payment."""
    order = await store.place(("TEE-S", 2))
    taken = await pay(store, order["id"], provider="stripe", method=VISA)
    assert taken["payment_status"] == "paid"
    return order, taken["payment"]


async def payments_of(store: Store, order_id: str) -> dict[str, Any]:
    result: dict[str, Any] = await store.call("GET", f"/api/v1/orders/{order_id}/payments", 200)
    return result


def ledger(payment: dict[str, Any]) -> list[tuple[str, str, int]]:
    """A payment's ledger as (kind, state, amount), oldest first."""
    return [(item["kind"], item["state"], item["amount"]) for item in payment["transactions"]]


def origin(transaction: dict[str, Any]) -> tuple[Any, ...]:
    """Where a ledger row came from and why: its provider reference, error code, reason, actor and request."""
    return (
        transaction["provider_reference"],
        transaction["error_code"],
        transaction["reason"],
        transaction["actor_type"],
        transaction["actor_id"],
        transaction["request_id"],
    )


async def refund_all_and_no_more(store: Store, payment: dict[str, Any], amount: int) -> None:
    """Refund `amount`, the whole payment, then one cent more: the first is taken, the second refused."""
    refunds = f"/api/v1/payments/{payment['id']}/refunds"
    whole = await store.call("POST", refunds, 201, json={"amount": amount})
    assert (whole["payment_status"], whole["payment"]["refunded_amount"]) == ("refunded", amount)
    beyond = await store.call("POST", refunds, 422, json={"amount": 1})
    assert (beyond["code"], beyond["refundable_amount"]) == ("refund_exceeds_captured", 0)


async def send_webhook(
    store: Store,
    body: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
    expected: int = 200,
    signature: str | None = None,
) -> dict[str, Any]:
    """POST a Stripe event to the store's webhook, signed like Stripe signs it."""
    payload = json.dumps(body).encode()
    header = signature if signature is not None else sign_webhook(payload, secret, timestamp=timestamp)
    response = await store.client.post(
        f"/api/v1/payments/stripe/webhook/{store.slug}",
        content=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    assert response.status_code == expected, response.text
    result: dict[str, Any] = response.json()
    return result


async def ledger_rows(database: Database, store: Store, order_id: str) -> list[PaymentTransaction]:
    """Every ledger row of an order straight from the database, oldest first."""
    tenant = await tenant_context(database, store)
    async with database.tenant_session(tenant) as session:
        rows = await session.scalars(
            select(PaymentTransaction)
            .where(PaymentTransaction.order_id == uuid.UUID(order_id))
            .order_by(PaymentTransaction.created_at, PaymentTransaction.id)
        )
        return list(rows)


def money(summary: dict[str, Any]) -> tuple[str, int, int, int, int, int]:
    """(payment_status, captured, refunded, net paid, capturable, balance due) of an order's payments."""
    return (
        summary["payment_status"],
        summary["captured_amount"],
        summary["refunded_amount"],
        summary["net_paid_amount"],
        summary["capturable_amount"],
        summary["balance_due_amount"],
    )


async def order_state(store: Store, order_id: str) -> tuple[str, str, str, int]:
    """(status, payment_status, fulfillment_status, total) of an order."""
    order = await store.call("GET", f"/api/v1/orders/{order_id}", 200)
    return order["status"], order["payment_status"], order["fulfillment_status"], order["total_amount"]


async def card_order_one_unit_shipped(
    client: AsyncTestClient[Litestar],
) -> tuple[Store, dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A store capturing at shipment, an order of 4 TEE-S (10000) paid by card, 1 unit shipped.

    Returns the store, the order, the payment's answer, the fulfillment order and its line.
    """
    store = await payment_store(client, providers=("stripe",), capture_policy="at_shipment")
    order = await store.place(("TEE-S", 4))
    taken = await pay(store, order["id"], provider="stripe", method=VISA)
    [fulfillment_order] = (await release(store, order["id"]))["data"]
    [line] = fulfillment_order["lines"]
    await ship(store, fulfillment_order["id"], [(line["line_id"], 1)])
    return store, order, taken, fulfillment_order, line
