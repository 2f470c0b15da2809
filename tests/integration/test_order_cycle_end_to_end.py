"""The whole order cycle over HTTP: place, pay, release, ship from two locations, return, refund.

Each step checks the order's statuses, the stock at both locations, what the step wrote on
the timeline and the touch count. Every request is made by a person (the store's owner),
so each change is a touch; the automatic ones (confirming, completing) are not.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from tests.support.fake_stripe import SECRET_KEY, FakeStripe
from tests.support.fake_stripe.payments import payment_intents
from tests.support.fulfillment import (
    assert_stock_invariants,
    buckets,
    by_location,
    release,
    ship,
    split_store,
    stock_at,
)
from tests.support.order_actions import timeline_of
from tests.support.orders import Store
from tests.support.payments import WEBHOOK_SECRET, ledger, pay, payments_of

VISA = "pm_card_visa"


class Cycle:
    """One order followed through its life: reads it back and says what the last step wrote."""

    def __init__(self, store: Store, order: dict[str, Any]) -> None:
        self.store, self.order_id = store, order["id"]
        self.seen = 0

    async def order(self) -> dict[str, Any]:
        body: dict[str, Any] = await self.store.call("GET", f"/api/v1/orders/{self.order_id}", 200)
        return body

    async def state(self) -> tuple[str, str, str, int]:
        order = await self.order()
        return (order["status"], order["payment_status"], order["fulfillment_status"], order["touch_count"])

    async def written(self) -> list[str]:
        """Timeline kinds written since the last call, oldest first."""
        entries = await timeline_of(self.store, self.order_id)
        kinds = [entry["kind"] for entry in entries[self.seen :]]
        self.seen = len(entries)
        return kinds

    async def stock(self) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
        return await stock_at(self.store, "TEE-S"), await stock_at(self.store, "TEE-M")


async def _store(client: AsyncTestClient[Litestar], **settings: Any) -> Store:
    """TEE-S only at WH-1 and TEE-M only at WH-2, 10 each, at 10.00 EUR."""
    store = await split_store(client, price=1000)
    await store.call("PUT", "/api/v1/payment-settings", 200, json=settings)
    return store


async def _ship_everything(store: Store, cycle: Cycle) -> list[tuple[str, str, str, int]]:
    """Release the order, ship WH-1's then WH-2's fulfillment order; the order's state after each."""
    released = by_location((await release(store, cycle.order_id))["data"])
    assert sorted(released) == ["WH-1", "WH-2"]
    assert await cycle.written() == ["released_to_fulfillment"]
    states = [await cycle.state()]
    for code in ("WH-1", "WH-2"):
        fulfillment_order = released[code]
        shipment = await ship(
            store,
            fulfillment_order["id"],
            [(line["line_id"], line["quantity_reserved"]) for line in fulfillment_order["lines"]],
            tracking_number=f"TRACK-{code}",
        )
        assert (shipment["location_code"], shipment["tracking_number"]) == (code, f"TRACK-{code}")
        states.append(await cycle.state())
    return states


async def _return_one_tee_and_restock(store: Store, cycle: Cycle) -> str:
    """Ask for one TEE-S back, approve, receive it onto WH-1's shelf; the return's path."""
    order = await cycle.order()
    [tee] = [line for line in order["lines"] if line["sku"] == "TEE-S"]
    created = await store.call(
        "POST",
        f"/api/v1/orders/{cycle.order_id}/returns",
        201,
        json={"lines": [{"line_id": tee["id"], "quantity": 1, "reason_code": "size_fit"}]},
    )
    path = f"/api/v1/returns/{created['id']}"
    await store.call("POST", f"{path}/approve", 200)
    [line] = created["lines"]
    received = await store.call(
        "POST",
        f"{path}/receive",
        200,
        json={
            "dispositions": [
                {
                    "return_line_id": line["id"],
                    "disposition": "restock",
                    "quantity": 1,
                    "location_id": store.locations["WH-1"],
                }
            ]
        },
    )
    assert received["status"] == "received"
    return path


async def test_stripe_authorize_ship_from_two_locations_capture_return_and_refund(
    client: AsyncTestClient[Litestar], database: Database, fake: FakeStripe
) -> None:
    store = await _store(
        client,
        enabled_providers=["manual", "stripe"],
        capture_policy="at_placement",
        stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
    )
    order = await store.place(("TEE-S", 2), ("TEE-M", 1))
    cycle = Cycle(store, order)
    assert await cycle.state() == ("confirmed", "unpaid", "unfulfilled", 1)
    assert await cycle.written() == ["placed", "confirmed"]
    assert await cycle.stock() == ({"WH-1": (10, 2)}, {"WH-2": (10, 1)})

    # Authorize only: the money is captured once everything has shipped.
    taken = await pay(store, order["id"], provider="stripe", method=VISA, capture=False)
    payment = taken["payment"]
    [intent] = payment_intents(fake)
    assert (intent["amount"], intent["capture_method"], intent["status"]) == (
        3000,
        "manual",
        "requires_capture",
    )
    assert await cycle.state() == ("confirmed", "authorized", "unfulfilled", 2)
    assert await cycle.written() == ["payment_authorized"]

    states = await _ship_everything(store, cycle)
    assert states == [
        ("confirmed", "authorized", "unfulfilled", 3),
        ("confirmed", "authorized", "partially_fulfilled", 4),
        ("confirmed", "authorized", "fulfilled", 5),
    ]
    assert await cycle.written() == ["shipment_created", "shipment_created"]
    # Shipping turned the reservations into stock that left each shelf.
    assert await cycle.stock() == ({"WH-1": (8, 0)}, {"WH-2": (9, 0)})
    shipped = await cycle.order()
    assert (buckets(shipped, "TEE-S"), buckets(shipped, "TEE-M")) == ((0, 0, 2, 0, 0), (0, 0, 1, 0, 0))
    where = await store.call("GET", f"/api/v1/orders/{order['id']}/shipments", 200)
    assert sorted(item["tracking_number"] for item in where["data"]) == ["TRACK-WH-1", "TRACK-WH-2"]

    # The capture pays the shipped order in full, which completes it on its own.
    captured = await store.call("POST", f"/api/v1/payments/{payment['id']}/capture", 201, json={})
    assert captured["payment_status"] == "paid"
    assert (intent["amount_received"], intent["status"]) == (3000, "succeeded")
    assert await cycle.state() == ("completed", "paid", "fulfilled", 6)
    assert await cycle.written() == ["payment_captured", "completed"]

    path = await _return_one_tee_and_restock(store, cycle)
    assert await cycle.stock() == ({"WH-1": (9, 0)}, {"WH-2": (9, 0)})
    returned = await cycle.order()
    assert buckets(returned, "TEE-S") == (0, 0, 2, 0, 1)
    assert await cycle.written() == ["return_requested", "return_approved", "return_received"]
    assert await cycle.state() == ("completed", "paid", "fulfilled", 9)

    refunded = await store.call("POST", f"{path}/refunds", 201, json={"amount": 1000, "reason": "size"})
    assert refunded["refunded_amount"] == 1000
    [stripe_refund] = fake.objects["refund"].values()
    assert (stripe_refund["payment_intent"], stripe_refund["amount"]) == (intent["id"], 1000)
    assert await cycle.state() == ("completed", "partially_refunded", "fulfilled", 10)
    assert await cycle.written() == ["payment_refunded", "return_refunded"]
    money = await payments_of(store, order["id"])
    assert (money["captured_amount"], money["refunded_amount"], money["refundable_amount"]) == (
        3000,
        1000,
        2000,
    )
    await assert_stock_invariants(database, store)


async def test_manual_partial_payments_ship_from_two_locations_return_and_refund(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await _store(client, enabled_providers=["manual"], capture_policy="at_placement")
    order = await store.place(("TEE-S", 2), ("TEE-M", 1))
    cycle = Cycle(store, order)
    assert await cycle.written() == ["placed", "confirmed"]

    # A deposit by bank transfer now, the rest in cash on collection.
    deposit = await pay(store, order["id"], provider="manual", method="bank_transfer", amount=1200)
    assert deposit["payment_status"] == "partially_paid"
    assert await cycle.state() == ("confirmed", "partially_paid", "unfulfilled", 2)
    assert await cycle.written() == ["payment_captured"]

    states = await _ship_everything(store, cycle)
    # Shipped in full but not paid in full: it waits for the money.
    assert states == [
        ("confirmed", "partially_paid", "unfulfilled", 3),
        ("confirmed", "partially_paid", "partially_fulfilled", 4),
        ("confirmed", "partially_paid", "fulfilled", 5),
    ]
    assert await cycle.written() == ["shipment_created", "shipment_created"]
    assert await cycle.stock() == ({"WH-1": (8, 0)}, {"WH-2": (9, 0)})

    rest = await pay(store, order["id"], provider="manual", method="cash", amount=1800)
    assert rest["payment_status"] == "paid"
    assert await cycle.state() == ("completed", "paid", "fulfilled", 6)
    assert await cycle.written() == ["payment_captured", "completed"]

    path = await _return_one_tee_and_restock(store, cycle)
    assert await cycle.stock() == ({"WH-1": (9, 0)}, {"WH-2": (9, 0)})
    assert await cycle.written() == ["return_requested", "return_approved", "return_received"]

    refunded = await store.call("POST", f"{path}/refunds", 201, json={"amount": 1000, "reason": "size"})
    assert refunded["refunded_amount"] == 1000
    assert await cycle.state() == ("completed", "partially_refunded", "fulfilled", 10)
    assert await cycle.written() == ["payment_refunded", "return_refunded"]
    money = await payments_of(store, order["id"])
    assert (money["captured_amount"], money["refunded_amount"], money["refundable_amount"]) == (
        3000,
        1000,
        2000,
    )
    # The refund goes back through the first payment that took the money, within what it took.
    assert [(item["method"], ledger(item)) for item in money["data"]] == [
        (
            "bank_transfer",
            [
                ("capture", "request", 1200),
                ("capture", "success", 1200),
                ("refund", "request", 1000),
                ("refund", "success", 1000),
            ],
        ),
        ("cash", [("capture", "request", 1800), ("capture", "success", 1800)]),
    ]
    await assert_stock_invariants(database, store)
