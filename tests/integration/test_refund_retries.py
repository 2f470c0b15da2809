"""Refunds whose answer was lost: sent again with the same key, and counted once (review findings).

Stripe can refund and its answer never arrive (the ledger records `provider_unreachable`).
A return's next refund sends that attempt again as it was, with its own key, so Stripe
answers from memory, even after another payment's part of the refund succeeded. A refund
Stripe reports meanwhile (`charge.refunded`, `refund.created`) is not counted a second
time when the retried request names it: every refund is counted once, by its `re_…` id.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from ordersmith.platform.database import Database
from ordersmith.tenants.schema import TENANT_MIGRATIONS
from tests.support.fake_stripe import FakeStripe, event
from tests.support.fake_stripe.payments import (
    VISA,
    refund_answers_lost,
    refund_in_dashboard,
    refunds_of,
    with_refunds_listed,
)
from tests.support.fulfillment import approved_return, ship_whole
from tests.support.order_actions import tenant_context
from tests.support.orders import Store
from tests.support.payments import ledger_rows, pay, payment_store, payments_of, send_webhook


@pytest.fixture
async def store(client: AsyncTestClient[Litestar], fake: FakeStripe) -> Store:
    return await payment_store(client, providers=("manual", "stripe"), capture_policy="at_placement")


async def _paid_and_shipped(store: Store, quantity: int, amounts: list[int]) -> tuple[Any, list[Any]]:
    """An order of `quantity` TEE-S (25.00 EUR each) paid by Stripe payments of `amounts`, shipped."""
    order = await store.place(("TEE-S", quantity))
    payments = [
        (await pay(store, order["id"], provider="stripe", method=VISA, amount=amount))["payment"]
        for amount in amounts
    ]
    return await ship_whole(store, order["id"]), payments


async def _approved_return(store: Store, order: Any, quantity: int) -> str:
    created = await approved_return(store, order, "TEE-S", quantity)
    return f"/api/v1/returns/{created['id']}"


def _refunded_at_stripe(fake: FakeStripe, payment: Any) -> list[int]:
    return [refund["amount"] for refund in refunds_of(fake, payment["provider_reference"])]


def _charge(fake: FakeStripe, payment: Any) -> dict[str, Any]:
    intent = fake.objects["payment_intent"][payment["provider_reference"]]
    return dict(fake.objects["charge"][intent["latest_charge"]])


async def _refund_outcomes(database: Database, store: Store, order: Any) -> list[tuple[Any, ...]]:
    """The ledger's refund outcomes: state, amount, already counted, refund id named, who."""
    return [
        (row.state, row.amount, row.already_counted_amount, row.provider_refund_id, row.actor_type)
        for row in await ledger_rows(database, store, order["id"])
        if row.kind == "refund" and row.state != "request"
    ]


async def test_a_return_refund_half_failed_across_two_payments_is_finished_without_paying_twice(
    store: Store, fake: FakeStripe
) -> None:
    order, (first, second) = await _paid_and_shipped(store, 4, [4000, 6000])
    path = await _approved_return(store, order, 2)  # worth 5000
    with refund_answers_lost(fake, second["provider_reference"]):
        partial = await store.call("POST", f"{path}/refunds", 201, json={"amount": 5000})
    # Stripe refunded 4000 on the first payment and 1000 on the second; only the 4000 came back.
    assert (
        partial["refunded_amount"],
        _refunded_at_stripe(fake, first),
        _refunded_at_stripe(fake, second),
    ) == (
        4000,
        [4000],
        [1000],
    )

    finished = await store.call("POST", f"{path}/refunds", 201, json={})

    assert (finished["refunded_amount"], [item["amount"] for item in finished["resolutions"]]) == (
        5000,
        [4000, 1000],
    )
    # The second payment's refund was sent again with its first key: Stripe answered from memory.
    keys = [
        request.idempotency_key
        for request in fake.requests_to("POST", "/v1/refunds")
        if request.params["payment_intent"] == second["provider_reference"]
    ]
    assert (len(keys), len(set(keys))) == (2, 1)
    assert (_refunded_at_stripe(fake, first), _refunded_at_stripe(fake, second)) == ([4000], [1000])
    summary = await payments_of(store, order["id"])
    assert (summary["payment_status"], summary["refunded_amount"], summary["net_paid_amount"]) == (
        "partially_refunded",
        5000,
        5000,
    )
    assert [view["status"] for view in summary["data"]] == ["refunded", "partially_refunded"]
    settled = await store.call("POST", f"{path}/refunds", 422, json={})
    assert (settled["code"], settled["remaining"]) == ("resolution_exceeds_return_value", 0)


def _charge_refunded(fake: FakeStripe, payment: Any) -> dict[str, Any]:
    return event("charge.refunded", _charge(fake, payment))


def _charge_refunded_listing_refunds(fake: FakeStripe, payment: Any) -> dict[str, Any]:
    return event("charge.refunded", with_refunds_listed(fake, _charge(fake, payment)))


def _refund_created(fake: FakeStripe, payment: Any) -> dict[str, Any]:
    [refund] = refunds_of(fake, payment["provider_reference"])
    return event("refund.created", refund)


@pytest.mark.parametrize(
    ("report", "names_the_refund"),
    [
        # API versions since 2022-11-15: the charge's refunded total, no refund named.
        (_charge_refunded, False),
        # Earlier API versions list the charge's refunds in the event.
        (_charge_refunded_listing_refunds, True),
        (_refund_created, True),
    ],
)
async def test_a_lost_return_refund_that_stripe_reported_is_counted_once_when_retried(
    store: Store,
    fake: FakeStripe,
    database: Database,
    report: Callable[[FakeStripe, Any], dict[str, Any]],
    names_the_refund: bool,
) -> None:
    order, [payment] = await _paid_and_shipped(store, 2, [5000])
    path = await _approved_return(store, order, 1)  # worth 2500
    with refund_answers_lost(fake):
        lost = await store.call("POST", f"{path}/refunds", 201, json={"amount": 2500})
    assert (lost["refunded_amount"], _refunded_at_stripe(fake, payment)) == (0, [2500])
    assert (await send_webhook(store, report(fake, payment)))["outcome"] == "applied"

    retried = await store.call("POST", f"{path}/refunds", 201, json={"amount": 2500})

    assert (retried["refunded_amount"], _refunded_at_stripe(fake, payment)) == (2500, [2500])
    summary = await payments_of(store, order["id"])
    assert (summary["payment_status"], summary["refunded_amount"], summary["refundable_amount"]) == (
        "partially_refunded",
        2500,
        2500,
    )
    [refund_id] = [refund["id"] for refund in refunds_of(fake, payment["provider_reference"])]
    reported, answered = (
        (("success", 2500, 0, refund_id, "system"), ("success", 0, 2500, None, "user"))
        if names_the_refund
        else (("success", 2500, 0, None, "system"), ("success", 0, 2500, refund_id, "user"))
    )
    assert await _refund_outcomes(database, store, order) == [
        ("failure", 2500, 0, None, "user"),
        reported,
        answered,
    ]
    # Stripe's total says the same again: nothing new.
    again = await send_webhook(store, _charge_refunded(fake, payment))
    assert again["outcome"] == "ignored: the ledger already says so"
    # The 2500 still held can be given back.
    rest = await store.call("POST", f"/api/v1/payments/{payment['id']}/refunds", 201, json={"amount": 2500})
    assert (rest["payment_status"], _charge(fake, payment)["amount_refunded"]) == ("refunded", 5000)
    assert (await payments_of(store, order["id"]))["refunded_amount"] == 5000


async def test_a_payment_refund_retried_after_stripe_named_it_adds_nothing(
    store: Store, fake: FakeStripe, database: Database
) -> None:
    order, [payment] = await _paid_and_shipped(store, 2, [5000])
    with refund_answers_lost(fake):
        lost = await store.call(
            "POST", f"/api/v1/payments/{payment['id']}/refunds", 201, json={"amount": 1000}
        )
    assert lost["last_transaction"]["error_code"] == "provider_unreachable"

    retried = await store.call("POST", f"/api/v1/payments/{payment['id']}/retry", 201)
    assert (await send_webhook(store, _refund_created(fake, payment)))["outcome"] == (
        "ignored: the ledger already says so"
    )
    assert (await send_webhook(store, _charge_refunded(fake, payment)))["outcome"] == (
        "ignored: the ledger already says so"
    )

    [refund_id] = [refund["id"] for refund in refunds_of(fake, payment["provider_reference"])]
    assert (retried["payment_status"], retried["last_transaction"]["provider_reference"]) == (
        "partially_refunded",
        refund_id,
    )
    assert await _refund_outcomes(database, store, order) == [
        ("failure", 1000, 0, None, "user"),
        ("success", 1000, 0, refund_id, "user"),
    ]
    assert (await payments_of(store, order["id"]))["refunded_amount"] == 1000


@pytest.mark.parametrize("total_first", [True, False])
async def test_a_dashboard_refund_reported_twice_is_counted_once(
    store: Store, fake: FakeStripe, database: Database, total_first: bool
) -> None:
    order, [payment] = await _paid_and_shipped(store, 2, [5000])
    refund_in_dashboard(fake, payment["provider_reference"], 1000)
    total, named = _charge_refunded(fake, payment), _refund_created(fake, payment)
    [refund_id] = [refund["id"] for refund in refunds_of(fake, payment["provider_reference"])]

    outcomes = [
        (await send_webhook(store, body))["outcome"]
        for body in ((total, named) if total_first else (named, total))
    ]
    redelivered = await send_webhook(store, _refund_created(fake, payment))

    assert redelivered["outcome"] == "ignored: the ledger already says so"
    summary = await payments_of(store, order["id"])
    assert (summary["payment_status"], summary["refunded_amount"]) == ("partially_refunded", 1000)
    if total_first:
        # The refund, named later, takes its amount from the total counted first.
        assert outcomes == ["applied", "applied"]
        assert await _refund_outcomes(database, store, order) == [
            ("success", 1000, 0, None, "system"),
            ("success", 0, 1000, refund_id, "system"),
        ]
    else:
        assert outcomes == ["applied", "ignored: the ledger already says so"]
        assert await _refund_outcomes(database, store, order) == [("success", 1000, 0, refund_id, "system")]


async def test_while_a_return_refund_awaits_stripe_its_money_is_neither_credited_nor_refunded_otherwise(
    store: Store, fake: FakeStripe
) -> None:
    order, [payment] = await _paid_and_shipped(store, 2, [5000])
    path = await _approved_return(store, order, 2)  # worth 5000
    with refund_answers_lost(fake):
        lost = await store.call("POST", f"{path}/refunds", 201, json={})
    assert (lost["refunded_amount"], _refunded_at_stripe(fake, payment)) == (0, [5000])

    credit = await store.call("POST", f"{path}/store-credits", 422, json={"amount": 1000})
    smaller = await store.call("POST", f"{path}/refunds", 422, json={"amount": 2000})
    assert (credit["code"], credit["remaining"]) == ("resolution_exceeds_return_value", 0)
    assert "awaiting the provider's answer" in credit["detail"]
    assert (smaller["code"], smaller["errors"]) == (
        "validation_failed",
        [{"field": "amount", "message": "must be at least 5000"}],
    )

    retried = await store.call("POST", f"{path}/refunds", 201, json={})

    assert (
        retried["refunded_amount"],
        retried["store_credit_amount"],
        _refunded_at_stripe(fake, payment),
    ) == (
        5000,
        0,
        [5000],
    )
    summary = await payments_of(store, order["id"])
    assert (summary["payment_status"], summary["refunded_amount"]) == ("refunded", 5000)


async def test_migration_0017_names_the_refunds_already_recorded_from_stripe_answers(
    store: Store, fake: FakeStripe, database: Database
) -> None:
    _, [payment] = await _paid_and_shipped(store, 2, [5000])
    await store.call("POST", f"/api/v1/payments/{payment['id']}/refunds", 201, json={"amount": 1000})
    refund_in_dashboard(fake, payment["provider_reference"], 500)
    await send_webhook(store, _charge_refunded(fake, payment))
    path = TENANT_MIGRATIONS.script_location / "versions" / "0017_provider_refund_ids.py"
    spec = importlib.util.spec_from_file_location("provider_refund_ids", path)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    schema = (await tenant_context(database, store)).schema_name
    query = text(
        "SELECT amount, provider_refund_id FROM payment_transactions"
        " WHERE kind = 'refund' AND state = 'success' ORDER BY created_at, id"
    )

    async with database.owner.connect() as connection:
        # The ledger as it stood before the migration, filled in again; rolled back.
        await connection.begin()
        try:
            await connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
            live = [tuple(row) for row in await connection.execute(query)]
            await connection.execute(text("UPDATE payment_transactions SET provider_refund_id = NULL"))
            await connection.execute(text(migration.FILL_IN))
            filled = [tuple(row) for row in await connection.execute(query)]
        finally:
            await connection.rollback()

    [api_refund, _] = [refund["id"] for refund in refunds_of(fake, payment["provider_reference"])]
    assert live == [(1000, api_refund), (500, None)]
    assert filled == live
