"""A return refund's provider key: a refusal Stripe answered moves it on, so it never refuses the next."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.fake_stripe import FakeStripe, event
from tests.support.fake_stripe.payments import VISA, refund_in_dashboard, refunds_of
from tests.support.fulfillment import approved_return, ship_whole
from tests.support.orders import Store
from tests.support.payments import pay, payment_store, send_webhook


@pytest.fixture
async def store(client: AsyncTestClient[Litestar], fake: FakeStripe) -> Store:
    return await payment_store(client, providers=("manual", "stripe"), capture_policy="at_placement")


async def test_a_return_refund_stripe_refused_does_not_poison_the_next_one(
    store: Store, fake: FakeStripe
) -> None:
    order = await store.place(("TEE-S", 2))  # 2 x 2500
    payment = (await pay(store, order["id"], provider="stripe", method=VISA, amount=5000))["payment"]
    created = await approved_return(store, await ship_whole(store, order["id"]), "TEE-S", 2)
    path = f"/api/v1/returns/{created['id']}"
    # 4000 was refunded in Stripe's dashboard; the webhook saying so has not arrived yet.
    refund_in_dashboard(fake, payment["provider_reference"], 4000)

    refused = await store.call("POST", f"{path}/refunds", 201, json={"amount": 5000})
    [dashboard_refund] = refunds_of(fake, payment["provider_reference"])
    await send_webhook(store, event("refund.created", dashboard_refund))
    again = await store.call("POST", f"{path}/refunds", 201, json={"amount": 1000})

    assert (refused["refunded_amount"], again["refunded_amount"]) == (0, 1000)
    assert [refund["amount"] for refund in refunds_of(fake, payment["provider_reference"])] == [4000, 1000]
    keys = [request.idempotency_key for request in fake.requests_to("POST", "/v1/refunds")]
    assert keys == [
        f"ordersmith:{payment['id']}:refund:return:{created['id']}:refund:1",
        f"ordersmith:{payment['id']}:refund:return:{created['id']}:refund:2",
    ]
