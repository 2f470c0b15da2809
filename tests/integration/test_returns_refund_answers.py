"""A return refund's answer says what the provider did: succeeded, partial or failed, and why."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.fake_stripe import FakeStripe, StripeError
from tests.support.fake_stripe.payments import VISA
from tests.support.fulfillment import approved_return, line_of, ship_whole
from tests.support.orders import Store
from tests.support.payments import pay, payment_store, payments_of


@pytest.fixture
async def store(client: AsyncTestClient[Litestar], fake: FakeStripe) -> Store:
    return await payment_store(client, providers=("manual", "stripe"), capture_policy="at_placement")


def disputed() -> StripeError:
    return StripeError(400, "This charge is disputed and cannot be refunded.", code="charge_disputed")


def refunds(payment: dict[str, Any], state: str) -> list[str]:
    return [row["id"] for row in payment["transactions"] if (row["kind"], row["state"]) == ("refund", state)]


async def test_a_refund_stripe_refuses_says_so_and_its_replay_says_the_same(
    store: Store, fake: FakeStripe
) -> None:
    order = await store.place(("TEE-S", 2))  # 2 x 2500
    await pay(store, order["id"], provider="manual", method="cash", amount=2000)
    await pay(store, order["id"], provider="stripe", method=VISA, amount=3000)
    created = await approved_return(store, await ship_whole(store, order["id"]), "TEE-S", 2)
    path = f"/api/v1/returns/{created['id']}/refunds"

    # The manual payment (oldest) gives its 2000 back; Stripe refuses the card payment's 3000.
    fake.fail_next["/v1/refunds"] = disputed()
    headers = {**store.headers, "Idempotency-Key": "refund-1"}
    first = await store.client.post(path, json={"amount": 5000}, headers=headers)
    fake.fail_next["/v1/refunds"] = disputed()
    failed = await store.call("POST", path, 201, json={"amount": 3000})
    replay = await store.client.post(path, json={"amount": 5000}, headers=headers)
    succeeded = await store.call("POST", path, 201, json={})

    manual, card = (await payments_of(store, order["id"]))["data"]
    assert (first.status_code, replay.status_code, replay.headers["Idempotent-Replayed"]) == (
        201,
        201,
        "true",
    )
    assert replay.json() == first.json()
    partial = first.json()
    assert (partial["refunded_amount"], failed["refunded_amount"], succeeded["refunded_amount"]) == (
        2000,
        2000,
        5000,
    )
    assert [partial["refund"], failed["refund"], succeeded["refund"]] == [
        {
            "requested_amount": 5000,
            "refunded_amount": 2000,
            "currency": "EUR",
            "state": "partial",
            "error_code": "charge_disputed",
            "payment_transaction_ids": refunds(manual, "success"),
            "failed_transaction_id": refunds(card, "failure")[0],
        },
        {
            "requested_amount": 3000,
            "refunded_amount": 0,
            "currency": "EUR",
            "state": "failed",
            "error_code": "charge_disputed",
            "payment_transaction_ids": [],
            "failed_transaction_id": refunds(card, "failure")[1],
        },
        {
            "requested_amount": 3000,
            "refunded_amount": 3000,
            "currency": "EUR",
            "state": "succeeded",
            "error_code": None,
            "payment_transaction_ids": refunds(card, "success"),
            "failed_transaction_id": None,
        },
    ]
    # Reading the return shows no refund object: it belongs to the answer of one request.
    assert "refund" not in await store.call("GET", f"/api/v1/returns/{created['id']}", 200)


async def test_a_return_closed_after_a_refund_whose_answer_was_lost_keeps_its_units(
    store: Store, fake: FakeStripe
) -> None:
    order = await store.place(("TEE-S", 1))
    await pay(store, order["id"], provider="stripe", method=VISA, amount=2500)
    order = await ship_whole(store, order["id"])
    created = await approved_return(store, order, "TEE-S", 1)
    returns = f"/api/v1/orders/{order['id']}/returns"
    body = {"lines": [{"line_id": line_of(order, "TEE-S")["id"], "quantity": 1, "reason_code": "other"}]}
    fake.unreachable = True
    lost = await store.call("POST", f"/api/v1/returns/{created['id']}/refunds", 201, json={})
    fake.unreachable = False
    await store.call("POST", f"/api/v1/returns/{created['id']}/close", 200)

    assert (lost["refund"]["state"], lost["refund"]["error_code"]) == ("failed", "provider_unreachable")
    # Stripe may have refunded the unit: it is not asked back, and refunded, a second time.
    problem = await store.call("POST", returns, 409, json=body)
    assert (problem["code"], problem["lines"][0]["already_returning"]) == ("quantity_not_returnable", 1)
