"""A refund Stripe failed later counts for nothing: resent, disputed, on a closed return (review findings).

Stripe replays an idempotent request's first answer as it was: a refund it failed since
comes back `succeeded`. The ledger knows better (its `refund_reversal`): such an answer
gives nothing back, so a return's next refund asks Stripe for the money anew.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.tenants.returns.models import Return
from tests.support.fake_stripe import FakeStripe, event
from tests.support.fake_stripe.payments import (
    VISA,
    fail_at_stripe,
    open_dispute,
    refund_answers_lost,
    refunds_of,
)
from tests.support.fulfillment import approved_return, ship_whole
from tests.support.order_actions import tenant_context
from tests.support.orders import Store
from tests.support.payments import ledger, pay, payment_store, payments_of, send_webhook


@pytest.fixture
async def store(client: AsyncTestClient[Litestar], fake: FakeStripe) -> Store:
    return await payment_store(client, providers=("stripe",), capture_policy="at_placement")


async def _returned(store: Store) -> tuple[dict[str, Any], dict[str, Any], str]:
    """An order of 2 TEE-S (2500 each) paid by card and shipped, one unit on an approved return."""
    order = await store.place(("TEE-S", 2))
    payment = (await pay(store, order["id"], provider="stripe", method=VISA))["payment"]
    created = await approved_return(store, await ship_whole(store, order["id"]), "TEE-S", 1)
    return order, payment, f"/api/v1/returns/{created['id']}"


def _at_stripe(fake: FakeStripe, payment: dict[str, Any]) -> list[tuple[int, str]]:
    return [(item["amount"], item["status"]) for item in refunds_of(fake, payment["provider_reference"])]


def _refund_answer(body: dict[str, Any]) -> tuple[int, str, int, str | None, str | None]:
    refund = body["refund"]
    return (
        body["refunded_amount"],
        refund["state"],
        refund["refunded_amount"],
        refund["error_code"],
        refund["failed_transaction_id"],
    )


async def test_a_lost_refund_resent_by_its_payment_then_failed_is_refunded_again_by_the_return(
    store: Store, fake: FakeStripe
) -> None:
    order, payment, path = await _returned(store)
    with refund_answers_lost(fake):
        lost = await store.call("POST", f"{path}/refunds", 201, json={})
    assert (lost["refunded_amount"], lost["refund"]["state"]) == (0, "failed")
    retried = await store.call("POST", f"/api/v1/payments/{payment['id']}/retry", 201)
    assert retried["last_transaction"]["state"] == "success"
    [refund] = refunds_of(fake, payment["provider_reference"])
    failed = fail_at_stripe(fake, refund["id"], reason="expired_or_canceled_card")
    assert (await send_webhook(store, event("refund.failed", failed)))["outcome"] == "applied"
    assert (await store.call("GET", path, 200))["refunded_amount"] == 0

    # The customer got nothing: the return's refund reaches Stripe, and the ledger agrees.
    again = await store.call("POST", f"{path}/refunds", 201, json={})
    assert _refund_answer(again) == (2500, "succeeded", 2500, None, None)
    assert _at_stripe(fake, payment) == [(2500, "failed"), (2500, "succeeded")]
    summary = await payments_of(store, order["id"])
    assert (summary["payment_status"], summary["refunded_amount"], summary["refundable_amount"]) == (
        "partially_refunded",
        2500,
        2500,
    )
    beyond = await store.call("POST", f"{path}/refunds", 422, json={})
    assert (beyond["code"], beyond["remaining"]) == ("resolution_exceeds_return_value", 0)


async def test_a_lost_refund_stripe_failed_since_is_not_counted_when_stripe_replays_it(
    store: Store, fake: FakeStripe
) -> None:
    order, payment, path = await _returned(store)
    with refund_answers_lost(fake):
        await store.call("POST", f"{path}/refunds", 201, json={})
    [refund] = refunds_of(fake, payment["provider_reference"])
    assert (await send_webhook(store, event("refund.created", dict(refund))))["outcome"] == "applied"
    failed = fail_at_stripe(fake, refund["id"], reason="expired_or_canceled_card")
    assert (await send_webhook(store, event("refund.failed", failed)))["outcome"] == "applied"

    # The resent attempt is answered from Stripe's memory, `succeeded` as it first was.
    again = await store.call("POST", f"{path}/refunds", 201, json={})
    assert _refund_answer(again) == (2500, "succeeded", 2500, None, None)
    assert _at_stripe(fake, payment) == [(2500, "failed"), (2500, "succeeded")]
    summary = await payments_of(store, order["id"])
    assert (summary["refunded_amount"], summary["refundable_amount"]) == (2500, 2500)
    [view] = summary["data"]
    assert ledger(view)[-8:] == [
        ("refund", "request", 2500),
        ("refund", "failure", 2500),
        ("refund", "success", 2500),
        ("refund_reversal", "success", 2500),
        ("refund", "request", 2500),
        ("refund", "failure", 2500),
        ("refund", "request", 2500),
        ("refund", "success", 2500),
    ]
    replayed = view["transactions"][-3]
    assert (replayed["provider_reference"], replayed["error_code"]) == (
        refund["id"],
        "expired_or_canceled_card",
    )
    assert again["refund"]["payment_transaction_ids"] == [view["transactions"][-1]["id"]]


async def _updated_at(database: Database, store: Store, return_id: str) -> dt.datetime:
    async with database.tenant_session(await tenant_context(database, store)) as session:
        query = select(Return.updated_at).where(Return.id == uuid.UUID(return_id))
        return (await session.scalars(query)).one()


async def test_a_closed_return_keeping_its_units_is_paid_again_after_its_refund_failed(
    store: Store, fake: FakeStripe, database: Database
) -> None:
    order = await store.place(("TEE-S", 2))
    payment = (await pay(store, order["id"], provider="stripe", method=VISA))["payment"]
    shipped = await ship_whole(store, order["id"])
    kept = await approved_return(store, shipped, "TEE-S", 1)
    path = f"/api/v1/returns/{kept['id']}"
    await store.call("POST", f"{path}/refunds", 201, json={})
    await store.call("POST", f"{path}/close", 200, json={})
    [refund] = refunds_of(fake, payment["provider_reference"])
    before = await _updated_at(database, store, kept["id"])
    assert (await send_webhook(store, event("refund.failed", fail_at_stripe(fake, refund["id"]))))[
        "outcome"
    ] == "applied"
    after = await store.call("GET", path, 200)
    assert (after["status"], after["refunded_amount"]) == ("closed", 0)
    assert await _updated_at(database, store, kept["id"]) > before

    # Closed after a refund, it keeps its unit: it may still give what is left of its value.
    credited = await store.call("POST", f"{path}/store-credits", 201, json={"amount": 1000})
    assert (credited["status"], credited["store_credit_amount"]) == ("closed", 1000)
    again = await store.call("POST", f"{path}/refunds", 201, json={})
    assert _refund_answer(again) == (1500, "succeeded", 1500, None, None)
    exchange = await store.call(
        "POST", f"{path}/exchange", 409, json={"lines": [{"sku": "TEE-S", "quantity": 1}]}
    )
    assert (exchange["code"], exchange["current_status"]) == ("return_not_resolvable", "closed")

    # Closed without the goods and without any outcome, a return gave its unit up: never paid.
    freed = await approved_return(store, shipped, "TEE-S", 1)
    await store.call("POST", f"/api/v1/returns/{freed['id']}/close", 200, json={})
    refused = await store.call("POST", f"/api/v1/returns/{freed['id']}/refunds", 409, json={})
    assert (refused["code"], refused["current_status"], refused["detail"]) == (
        "return_not_resolvable",
        "closed",
        "this return was closed without the goods and without any outcome, so its units may be "
        "returned again; it cannot be refunded: open a new return for those units",
    )
    assert _at_stripe(fake, payment) == [(2500, "failed"), (1500, "succeeded")]


async def test_a_dispute_the_ledger_counted_as_refunded_is_charged_back_once_the_refund_fails(
    store: Store, fake: FakeStripe
) -> None:
    order = await store.place(("TEE-S", 2))  # 5000
    payment = (await pay(store, order["id"], provider="stripe", method=VISA))["payment"]
    made = await store.call("POST", f"/api/v1/payments/{payment['id']}/refunds", 201, json={"amount": 5000})
    # The customer disputes the whole charge with their bank while the refund is still going through.
    dispute = open_dispute(fake, payment["provider_reference"], 5000)
    assert (await send_webhook(store, event("charge.dispute.created", dispute)))["outcome"] == "applied"
    [view] = (await payments_of(store, order["id"]))["data"]
    assert (view["refunded_amount"], view["charged_back_amount"], view["refundable_amount"]) == (5000, 0, 0)
    [hold] = (await store.call("GET", f"/api/v1/orders/{order['id']}", 200))["holds"]
    assert hold["reason"] == "chargeback: the customer disputed 5000 EUR with their bank"

    failed = fail_at_stripe(fake, made["last_transaction"]["provider_reference"])
    assert (await send_webhook(store, event("refund.failed", failed)))["outcome"] == "applied"
    # The bank took the 5000 and the refund gave nothing: the merchant holds 0, none refundable.
    summary = await payments_of(store, order["id"])
    [view] = summary["data"]
    assert (view["refunded_amount"], view["charged_back_amount"], view["refundable_amount"]) == (0, 5000, 0)
    assert (summary["payment_status"], summary["net_paid_amount"], summary["refundable_amount"]) == (
        "refunded",
        0,
        0,
    )
    assert ledger(view)[-3:] == [
        ("refund", "success", 5000),
        ("chargeback", "success", 5000),
        ("refund_reversal", "success", 5000),
    ]
    refused = await store.call("POST", f"/api/v1/payments/{payment['id']}/refunds", 422, json={"amount": 1})
    assert (refused["code"], refused["refundable_amount"]) == ("refund_exceeds_captured", 0)
