"""A return's refund Stripe fails later: its resolution shows it reversed, and it can be given again."""

from __future__ import annotations

from typing import Any

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
    assert refund_resolutions(again) == [("reversed", 2500, 2500), ("succeeded", 2500, 0)]
    assert standing(again) == again["refunded_amount"]


def refund_resolutions(body: dict[str, Any]) -> list[tuple[str, int, int]]:
    """A return's refund resolutions as (state, amount, reversed_amount), oldest first."""
    return [
        (item["state"], item["amount"], item["reversed_amount"])
        for item in body["resolutions"]
        if item["kind"] == "refund"
    ]


def standing(body: dict[str, Any]) -> int:
    """What the return's refund resolutions still give back: it must be the return's `refunded_amount`."""
    return sum(amount - reversed_amount for _, amount, reversed_amount in refund_resolutions(body))


async def refund_rows(store: Store, order_id: str) -> dict[int, dict[str, Any]]:
    """The order's refund successes, by amount (each test's refunds differ in amount)."""
    payments = (await store.call("GET", f"/api/v1/orders/{order_id}/payments", 200))["data"]
    return {
        row["amount"]: row
        for payment in payments
        for row in payment["transactions"]
        if (row["kind"], row["state"]) == ("refund", "success")
    }


async def reversal_ids(store: Store, order_id: str) -> list[str]:
    payments = (await store.call("GET", f"/api/v1/orders/{order_id}/payments", 200))["data"]
    return [
        row["id"]
        for payment in payments
        for row in payment["transactions"]
        if row["kind"] == "refund_reversal"
    ]


async def test_a_resolution_stripe_failed_later_shows_reversed_once_however_often_told(
    store: Store, fake: FakeStripe
) -> None:
    order = await store.place(("TEE-S", 2))  # 2 x 2500
    await pay(store, order["id"], provider="stripe", method=VISA)
    created = await approved_return(store, await ship_whole(store, order["id"]), "TEE-S", 1)
    path = f"/api/v1/returns/{created['id']}"
    refunded = await store.call("POST", f"{path}/refunds", 201, json={})
    assert refund_resolutions(refunded) == [("succeeded", 2500, 0)]
    assert refunded["resolutions"][0]["reversal_transaction_ids"] == []
    made = (await refund_rows(store, order["id"]))[2500]

    failed = fail_at_stripe(fake, made["provider_reference"], reason="expired_or_canceled_card")
    told = event("refund.failed", failed)
    assert (await send_webhook(store, told))["outcome"] == "applied"
    assert (await send_webhook(store, told))["outcome"] == "duplicate"
    again = await send_webhook(store, event("refund.updated", failed))
    assert again["outcome"] == "ignored: the ledger already says so"

    after = await store.call("GET", path, 200)
    [resolution] = after["resolutions"]
    # The original amount stays, for history; what Stripe failed is beside it.
    assert (resolution["state"], resolution["amount"], resolution["reversed_amount"]) == (
        "reversed",
        2500,
        2500,
    )
    assert resolution["payment_transaction_ids"] == [made["id"]]
    assert resolution["reversal_transaction_ids"] == await reversal_ids(store, order["id"])
    assert len(resolution["reversal_transaction_ids"]) == 1
    assert (after["refunded_amount"], standing(after)) == (0, 0)
    kinds = [entry["kind"] for entry in await timeline_of(store, order["id"])]
    assert kinds.count("return_refund_reversed") == 1
    listed = await store.call("GET", f"/api/v1/orders/{order['id']}/returns", 200)
    assert refund_resolutions(listed["data"][0]) == [("reversed", 2500, 2500)]


async def test_part_of_a_return_refund_failed_shows_its_resolution_partly_reversed(
    store: Store, fake: FakeStripe
) -> None:
    order = await store.place(("TEE-S", 2))  # 2 x 2500
    await pay(store, order["id"], provider="stripe", method=VISA, amount=3000)
    await pay(store, order["id"], provider="stripe", method=VISA, amount=2000)
    created = await approved_return(store, await ship_whole(store, order["id"]), "TEE-S", 2)
    path = f"/api/v1/returns/{created['id']}"
    # One refund request, two Stripe refunds: 3000 through the first card payment, 2000 the second.
    refunded = await store.call("POST", f"{path}/refunds", 201, json={})
    assert (refunded["refunded_amount"], refund_resolutions(refunded)) == (5000, [("succeeded", 5000, 0)])
    made = await refund_rows(store, order["id"])
    assert sorted(refunded["resolutions"][0]["payment_transaction_ids"]) == sorted(
        [made[3000]["id"], made[2000]["id"]]
    )

    failed = fail_at_stripe(fake, made[2000]["provider_reference"], reason="lost_or_stolen_card")
    assert (await send_webhook(store, event("refund.failed", failed)))["outcome"] == "applied"

    after = await store.call("GET", path, 200)
    assert refund_resolutions(after) == [("partially_reversed", 5000, 2000)]
    assert (after["refunded_amount"], standing(after)) == (3000, 3000)
    # What Stripe failed can be given again: a new resolution, the first keeping its history.
    again = await store.call("POST", f"{path}/refunds", 201, json={})
    assert refund_resolutions(again) == [("partially_reversed", 5000, 2000), ("succeeded", 2000, 0)]
    assert (again["refunded_amount"], standing(again)) == (5000, 5000)


async def test_of_two_refunds_of_a_return_only_the_one_stripe_failed_shows_reversed(
    store: Store, fake: FakeStripe
) -> None:
    order = await store.place(("TEE-S", 2))  # 2 x 2500
    await pay(store, order["id"], provider="stripe", method=VISA)
    created = await approved_return(store, await ship_whole(store, order["id"]), "TEE-S", 2)
    path = f"/api/v1/returns/{created['id']}"
    await store.call("POST", f"{path}/refunds", 201, json={"amount": 1500})
    await store.call("POST", f"{path}/refunds", 201, json={"amount": 3500})
    made = await refund_rows(store, order["id"])

    # The later refund fails: the earlier one stands whole.
    failed = fail_at_stripe(fake, made[3500]["provider_reference"], reason="expired_or_canceled_card")
    assert (await send_webhook(store, event("refund.failed", failed)))["outcome"] == "applied"

    after = await store.call("GET", path, 200)
    assert refund_resolutions(after) == [("succeeded", 1500, 0), ("reversed", 3500, 3500)]
    assert [item["payment_transaction_ids"] for item in after["resolutions"]] == [
        [made[1500]["id"]],
        [made[3500]["id"]],
    ]
    assert (after["refunded_amount"], standing(after)) == (1500, 1500)
    [told] = [
        entry for entry in await timeline_of(store, order["id"]) if entry["kind"] == "return_refund_reversed"
    ]
    assert (told["changes"]["amount"], told["changes"]["refunded_amount"]) == (
        3500,
        {"old": 5000, "new": 1500},
    )
