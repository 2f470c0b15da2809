"""A refund Stripe fails after the ledger counted it is taken back once, and the merchant is told."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database, TenantContext
from ordersmith.tenants.payments.models import PaymentTransaction
from ordersmith.tenants.payments.reversals import REFUND_REVERSED_HOOKS, ReversedRefund, on_refund_reversed
from tests.support.fake_stripe import FakeStripe, event
from tests.support.fake_stripe.payments import (
    fail_at_stripe,
    refund_in_dashboard,
    refunds_of,
    with_refunds_listed,
)
from tests.support.order_actions import events_of, timeline_of
from tests.support.orders import Store
from tests.support.payments import (
    ledger,
    origin,
    paid_by_card,
    payment_store,
    payments_of,
    refund_all_and_no_more,
    send_webhook,
)


@pytest.fixture
async def store(client: AsyncTestClient[Litestar], fake: FakeStripe) -> Store:
    return await payment_store(client, providers=("stripe",), capture_policy="at_placement")


@pytest.fixture
def reversed_refunds() -> Iterator[list[tuple[ReversedRefund, str | None]]]:
    """What a hook registered with `on_refund_reversed` receives, with the kind of the row it reads."""
    seen: list[tuple[ReversedRefund, str | None]] = []

    async def remember(tenant: TenantContext, session: AsyncSession, reversed_refund: ReversedRefund) -> None:
        # In the reversal's own transaction, its ledger row is there to read.
        row = await session.get(PaymentTransaction, reversed_refund.reversal_id)
        seen.append((reversed_refund, row.kind if row else None))

    on_refund_reversed(remember)
    yield seen
    REFUND_REVERSED_HOOKS.remove(remember)


async def test_a_refund_stripe_fails_later_is_taken_back_once_and_may_be_given_again(
    store: Store,
    fake: FakeStripe,
    database: Database,
    reversed_refunds: list[tuple[ReversedRefund, str | None]],
) -> None:
    order, payment = await paid_by_card(store)
    refunds = f"/api/v1/payments/{payment['id']}/refunds"
    made = await store.call("POST", refunds, 201, json={"amount": 2000})
    assert made["payment_status"] == "partially_refunded"
    refund = made["last_transaction"]
    intent = fake.get("payment_intent", str(payment["provider_reference"]))
    # Sent while the refund was still going through; delivered only after its failure.
    late = event("charge.refunded", dict(fake.get("charge", intent["latest_charge"])))
    failed = fail_at_stripe(fake, refund["provider_reference"], reason="expired_or_canceled_card")

    updated = event("refund.updated", failed)
    assert (await send_webhook(store, updated))["outcome"] == "applied"
    assert (await send_webhook(store, updated))["outcome"] == "duplicate"
    # Stripe sends both events for one failure: the second finds it taken back already.
    again = await send_webhook(store, event("refund.failed", failed))
    assert again["outcome"] == "ignored: the ledger already says so"
    older_api = await send_webhook(store, event("charge.refund.updated", failed))
    assert older_api["outcome"] == "ignored: the ledger already says so"
    # Its total still holds the refund: taken back, it is not counted again unnamed.
    assert (await send_webhook(store, late))["outcome"] == "ignored: the ledger already says so"

    summary = await payments_of(store, order["id"])
    assert (summary["payment_status"], summary["refunded_amount"], summary["refundable_amount"]) == (
        "paid",
        0,
        5000,
    )
    [view] = summary["data"]
    assert (view["status"], view["refunded_amount"], view["refundable_amount"]) == ("captured", 0, 5000)
    assert ledger(view)[-3:] == [
        ("refund", "request", 2000),
        ("refund", "success", 2000),
        ("refund_reversal", "success", 2000),
    ]
    reversal = view["transactions"][-1]
    assert origin(reversal) == (
        refund["provider_reference"],
        "expired_or_canceled_card",
        "Stripe could not give the refund back: expired_or_canceled_card",
        "system",
        "stripe-webhook",
        None,
    )

    [told] = [
        item for item in await timeline_of(store, order["id"]) if item["kind"] == "payment_refund_failed"
    ]
    details = {
        "payment_id": payment["id"],
        "transaction_id": reversal["id"],
        "provider": "stripe",
        "amount": 2000,
        "currency": "EUR",
        "error_code": "expired_or_canceled_card",
        "reason": "Stripe could not give the refund back: expired_or_canceled_card",
        "refund_id": refund["provider_reference"],
        "refund_transaction_id": refund["id"],
    }
    assert told["changes"] == {**details, "payment_status": {"old": "partially_refunded", "new": "paid"}}
    assert (told["actor_type"], told["actor_id"], told["is_touch"]) == ("system", "stripe-webhook", False)
    topics = [(topic, payload) for topic, payload in await events_of(database, order["id"])]
    assert topics[-1] == (
        "payment.refund_failed",
        {"order_id": order["id"], "number": order["number"], **details, "payment_status": "paid"},
    )
    read = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (read["payment_status"], read["open_hold_count"]) == ("paid", 0)
    assert reversed_refunds == [
        (
            ReversedRefund(
                uuid.UUID(order["id"]),
                uuid.UUID(payment["id"]),
                refund["provider_reference"],
                (uuid.UUID(refund["id"]),),
                2000,
                uuid.UUID(reversal["id"]),
            ),
            "refund_reversal",
        )
    ]

    # What went back to the merchant may be refunded again, all of it and no more.
    await refund_all_and_no_more(store, payment, 5000)


async def test_only_a_counted_refund_is_taken_back_and_a_refund_that_succeeds_changes_nothing(
    store: Store, fake: FakeStripe, reversed_refunds: list[tuple[ReversedRefund, str | None]]
) -> None:
    order, payment = await paid_by_card(store)
    intent_id = str(payment["provider_reference"])
    # Made in the dashboard and failed before any event brought it in: the ledger never counted it.
    refund_in_dashboard(fake, intent_id, 700)
    [unknown] = refunds_of(fake, intent_id)
    never = await send_webhook(store, event("refund.failed", fail_at_stripe(fake, unknown["id"])))
    assert never["outcome"] == "ignored: the refund is failed at Stripe and the ledger never counted it"

    refunds = f"/api/v1/payments/{payment['id']}/refunds"
    kept = (await store.call("POST", refunds, 201, json={"amount": 1500}))["last_transaction"]
    # Counted when made (Stripe said `pending`); it succeeding later adds nothing.
    succeeded = {**fake.get("refund", kept["provider_reference"]), "status": "succeeded"}
    assert (await send_webhook(store, event("refund.updated", succeeded)))["outcome"] == (
        "ignored: the ledger already says so"
    )

    # API versions before 2022-11-15 list the charge's refunds, a canceled one with them.
    lost = (await store.call("POST", refunds, 201, json={"amount": 1000}))["last_transaction"]
    fail_at_stripe(fake, lost["provider_reference"], status="canceled")
    intent = fake.get("payment_intent", intent_id)
    charge = with_refunds_listed(fake, dict(fake.get("charge", intent["latest_charge"])))
    assert charge["amount_refunded"] == 1500
    assert (await send_webhook(store, event("charge.refunded", charge)))["outcome"] == "applied"
    assert (await send_webhook(store, event("charge.refunded", charge)))["outcome"] == (
        "ignored: the ledger already says so"
    )

    summary = await payments_of(store, order["id"])
    assert (summary["payment_status"], summary["refunded_amount"], summary["refundable_amount"]) == (
        "partially_refunded",
        1500,
        3500,
    )
    [view] = summary["data"]
    assert ledger(view)[4:] == [
        ("refund", "request", 1500),
        ("refund", "success", 1500),
        ("refund", "request", 1000),
        ("refund", "success", 1000),
        ("refund_reversal", "success", 1000),
    ]
    assert (view["transactions"][-1]["provider_reference"], view["transactions"][-1]["error_code"]) == (
        lost["provider_reference"],
        "canceled",
    )
    assert [(item.refund_id, item.amount) for item, _ in reversed_refunds] == [
        (lost["provider_reference"], 1000)
    ]
