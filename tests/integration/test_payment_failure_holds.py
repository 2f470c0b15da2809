"""Which failed payment requests hold an order: only those that leave it waiting for its money.

A declined authorization or capture holds the order (`payment` hold, by the system): the
goods should not leave before the money is in. A refund or a void that fails leaves the
order's money where it was; the failure is on the timeline and in the outbox, and the
order's goods still ship.
"""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.fake_stripe import FakeStripe, StripeError
from tests.support.fake_stripe.payments import DECLINED, VISA
from tests.support.fulfillment import release
from tests.support.orders import Store
from tests.support.payments import pay, payment_store


@pytest.fixture
async def store(client: AsyncTestClient[Litestar], fake: FakeStripe) -> Store:
    return await payment_store(client, providers=("manual", "stripe"), capture_policy="at_placement")


async def _open_holds(store: Store, order_id: str) -> list[tuple[str, str]]:
    order = await store.call("GET", f"/api/v1/orders/{order_id}", 200)
    return [(hold["type"], hold["reason"]) for hold in order["holds"] if hold["released_at"] is None]


async def test_a_refund_stripe_refuses_does_not_stop_the_goods(store: Store, fake: FakeStripe) -> None:
    order = await store.place(("TEE-S", 2))  # 2 x 2500, captured at placement
    payment = (await pay(store, order["id"], provider="stripe", method=VISA))["payment"]
    fake.fail_next["/v1/refunds"] = StripeError(
        400, "This charge is disputed and cannot be refunded.", code="charge_disputed"
    )
    refused = await store.call(
        "POST", f"/api/v1/payments/{payment['id']}/refunds", 201, json={"amount": 500, "reason": "late"}
    )
    assert (refused["last_transaction"]["kind"], refused["last_transaction"]["state"]) == (
        "refund",
        "failure",
    )
    assert refused["last_transaction"]["error_code"] == "charge_disputed"
    assert await _open_holds(store, order["id"]) == []
    released = await release(store, order["id"])
    assert [(item["location_code"], item["status"]) for item in released["data"]] == [("WH-1", "open")]
    timeline = await store.call("GET", f"/api/v1/orders/{order['id']}/timeline", 200)
    assert [entry["kind"] for entry in timeline["data"]].count("payment_refund_failed") == 1


async def test_a_declined_authorization_still_holds_the_order(store: Store) -> None:
    order = await store.place(("TEE-S", 1))
    await pay(store, order["id"], provider="stripe", method=DECLINED)
    [(kind, reason)] = await _open_holds(store, order["id"])
    assert (kind, reason.split(" (")[0]) == ("payment", "authorize failed: generic_decline")
    problem = await release(store, order["id"], expected=409)
    assert problem["code"] == "order_on_hold"
