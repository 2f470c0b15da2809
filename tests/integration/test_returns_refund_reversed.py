"""A return's refund Stripe fails later: the return gets that much back to refund or credit again."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.fake_stripe import FakeStripe, event
from tests.support.fake_stripe.payments import VISA, fail_at_stripe
from tests.support.fulfillment import approved_return, ship_whole
from tests.support.order_actions import timeline_of
from tests.support.orders import Store
from tests.support.payments import pay, payment_store, send_webhook


@pytest.fixture
async def store(client: AsyncTestClient[Litestar], fake: FakeStripe) -> Store:
    return await payment_store(client, providers=("stripe",), capture_policy="at_placement")


async def test_a_return_refund_stripe_fails_later_can_be_given_again(store: Store, fake: FakeStripe) -> None:
    order = await store.place(("TEE-S", 2))  # 2 x 2500
    await pay(store, order["id"], provider="stripe", method=VISA)
    created = await approved_return(store, await ship_whole(store, order["id"]), "TEE-S", 1)
    path = f"/api/v1/returns/{created['id']}"
    refunded = await store.call("POST", f"{path}/refunds", 201, json={})
    assert (refunded["refunded_amount"], refunded["refund"]["state"]) == (2500, "succeeded")
    [transaction_id] = refunded["refund"]["payment_transaction_ids"]
    payment = (await store.call("GET", f"/api/v1/orders/{order['id']}/payments", 200))["data"][0]
    [counted] = [row for row in payment["transactions"] if row["id"] == transaction_id]

    failed = fail_at_stripe(fake, counted["provider_reference"], reason="expired_or_canceled_card")
    assert (await send_webhook(store, event("refund.failed", failed)))["outcome"] == "applied"

    after = await store.call("GET", path, 200)
    assert (after["refunded_amount"], after["value_amount"]) == (0, 2500)
    [told] = [
        entry for entry in await timeline_of(store, order["id"]) if entry["kind"] == "return_refund_reversed"
    ]
    assert told["changes"] == {
        "return_id": created["id"],
        "return_number": created["number"],
        "amount": 2500,
        "refund_id": counted["provider_reference"],
        "refunded_amount": {"old": 2500, "new": 0},
    }
    assert (told["actor_type"], told["is_touch"]) == ("system", False)
    again = await store.call("POST", f"{path}/refunds", 201, json={})
    assert (again["refunded_amount"], again["refund"]["state"], again["refund"]["refunded_amount"]) == (
        2500,
        "succeeded",
        2500,
    )
