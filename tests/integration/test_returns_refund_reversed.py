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
from tests.support.payments import pay, payment_store, payments_of, send_webhook


@pytest.fixture
async def store(client: AsyncTestClient[Litestar], fake: FakeStripe) -> Store:
    return await payment_store(client, providers=("stripe",), capture_policy="at_placement")


async def _card_paid_return(store: Store, quantity: int) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Two TEE-S (2 x 2500) paid by card and shipped, `quantity` of them returned and approved.

    The order, the return, and the return's path.
    """
    order = await store.place(("TEE-S", 2))
    await pay(store, order["id"], provider="stripe", method=VISA)
    created = await approved_return(store, await ship_whole(store, order["id"]), "TEE-S", quantity)
    return order, created, f"/api/v1/returns/{created['id']}"


async def _failed_at_stripe(store: Store, fake: FakeStripe, refund: dict[str, Any], reason: str) -> None:
    """Stripe fails a refund the ledger counted, and says so with `refund.failed`."""
    failed = fail_at_stripe(fake, refund["provider_reference"], reason=reason)
    assert (await send_webhook(store, event("refund.failed", failed)))["outcome"] == "applied"


async def _reversals_told(store: Store, order_id: str) -> list[dict[str, Any]]:
    """The order's timeline entries saying a return's refund was reversed."""
    return [
        entry for entry in await timeline_of(store, order_id) if entry["kind"] == "return_refund_reversed"
    ]


async def test_a_return_refund_stripe_fails_later_can_be_given_again(store: Store, fake: FakeStripe) -> None:
    order, created, path = await _card_paid_return(store, 1)
    refunded = await store.call("POST", f"{path}/refunds", 201, json={})
    assert (refunded["refunded_amount"], refunded["refund"]["state"]) == (2500, "succeeded")
    [transaction_id] = refunded["refund"]["payment_transaction_ids"]
    [counted] = [row for row in await _transactions(store, order["id"]) if row["id"] == transaction_id]

    await _failed_at_stripe(store, fake, counted, "expired_or_canceled_card")

    after = await store.call("GET", path, 200)
    assert (after["refunded_amount"], after["value_amount"]) == (0, 2500)
    [told] = await _reversals_told(store, order["id"])
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


async def _transactions(store: Store, order_id: str) -> list[dict[str, Any]]:
    """The ledger rows of every payment of the order, as the API shows them."""
    return [
        row for payment in (await payments_of(store, order_id))["data"] for row in payment["transactions"]
    ]


async def refund_rows(store: Store, order_id: str) -> dict[int, dict[str, Any]]:
    """The order's refund successes, by amount (each test's refunds differ in amount)."""
    rows = await _transactions(store, order_id)
    return {row["amount"]: row for row in rows if (row["kind"], row["state"]) == ("refund", "success")}


async def reversal_ids(store: Store, order_id: str) -> list[str]:
    return [row["id"] for row in await _transactions(store, order_id) if row["kind"] == "refund_reversal"]


async def test_a_resolution_stripe_failed_later_shows_reversed_once_however_often_told(
    store: Store, fake: FakeStripe
) -> None:
    order, _, path = await _card_paid_return(store, 1)
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
    assert len(await _reversals_told(store, order["id"])) == 1
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

    await _failed_at_stripe(store, fake, made[2000], "lost_or_stolen_card")

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
    order, _, path = await _card_paid_return(store, 2)
    await store.call("POST", f"{path}/refunds", 201, json={"amount": 1500})
    await store.call("POST", f"{path}/refunds", 201, json={"amount": 3500})
    made = await refund_rows(store, order["id"])

    # The later refund fails: the earlier one stands whole.
    await _failed_at_stripe(store, fake, made[3500], "expired_or_canceled_card")

    after = await store.call("GET", path, 200)
    assert refund_resolutions(after) == [("succeeded", 1500, 0), ("reversed", 3500, 3500)]
    assert [item["payment_transaction_ids"] for item in after["resolutions"]] == [
        [made[1500]["id"]],
        [made[3500]["id"]],
    ]
    assert (after["refunded_amount"], standing(after)) == (1500, 1500)
    [told] = await _reversals_told(store, order["id"])
    assert (told["changes"]["amount"], told["changes"]["refunded_amount"]) == (
        3500,
        {"old": 5000, "new": 1500},
    )
