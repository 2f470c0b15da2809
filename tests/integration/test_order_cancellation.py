"""Cancellation over HTTP: whole or by line quantity, stock given back exactly, shipped units kept."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.orders.cancellation import CancelRequest, LineCancel, cancel_order
from ordersmith.tenants.orders.errors import OrderChangedError
from ordersmith.tenants.orders.models import OrderLine
from tests.support.order_actions import (
    entry,
    events_of,
    reservation_rows,
    ship,
    steps,
    tenant_context,
    timeline_of,
)
from tests.support.orders import Store, open_store, two_sku_store
from tests.support.payments import pay


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    return await two_sku_store(client, price=1000)


def cancel_path(order: dict[str, Any]) -> str:
    return f"/api/v1/orders/{order['id']}/cancel"


def buckets(line: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return (
        line["quantity_ordered"],
        line["quantity_cancelled"],
        line["quantity_allocated"],
        line["quantity_backordered"],
        line["quantity_shipped"],
    )


async def stock_at(store: Store, sku: str) -> tuple[int, int, int, list[tuple[str, int, int]]]:
    """(on hand, reserved, available, [(location, reserved, available)]) of a SKU."""
    stock = await store.stock(sku)
    per_location = [(loc["location_code"], loc["reserved"], loc["available"]) for loc in stock["locations"]]
    return stock["on_hand"], stock["reserved"], stock["available"], per_location


async def test_a_partial_cancel_releases_exactly_the_cancelled_units(
    store: Store, database: Database
) -> None:
    await store.receive("TEE-S", "WH-1", 3)
    await store.receive("TEE-S", "WH-2", 4)
    await store.receive("TEE-M", "WH-1", 5)
    order = await store.place(("TEE-S", 5), ("TEE-M", 2))
    tee_s = order["lines"][0]
    assert await stock_at(store, "TEE-S") == (7, 5, 2, [("WH-1", 3, 0), ("WH-2", 2, 2)])
    assert await reservation_rows(database, store, order["id"]) == [
        (1, "WH-1", 3),
        (1, "WH-2", 2),
        (2, "WH-1", 2),
    ]

    body = {"reason": "customer wants fewer", "lines": [{"line_id": tee_s["id"], "quantity": 3}]}
    cancelled = await store.call("POST", cancel_path(order), 200, json=body)

    # The last-chosen location gives back first: WH-2's 2, then 1 of WH-1's 3.
    assert await stock_at(store, "TEE-S") == (7, 2, 5, [("WH-1", 2, 1), ("WH-2", 0, 4)])
    assert await stock_at(store, "TEE-M") == (5, 2, 3, [("WH-1", 2, 3)])
    assert await reservation_rows(database, store, order["id"]) == [
        (1, "WH-1", 2),
        (1, "WH-2", 0),
        (2, "WH-1", 2),
    ]
    assert [buckets(line) for line in cancelled["lines"]] == [(5, 3, 2, 0, 0), (2, 0, 2, 0, 0)]
    assert [(line["total_amount"]) for line in cancelled["lines"]] == [2000, 2000]
    assert [(held["location_code"], held["quantity"]) for held in cancelled["reservations"]] == [
        ("WH-1", 2),
        ("WH-1", 2),
    ]
    assert (cancelled["status"], cancelled["cancel_reason"], cancelled["cancelled_at"]) == (
        "confirmed",
        None,
        None,
    )
    assert (cancelled["subtotal_amount"], cancelled["total_amount"]) == (4000, 4000)
    assert (cancelled["version"], cancelled["touch_count"]) == (2, 2)

    entries = await timeline_of(store, order["id"])
    assert steps(entries) == [["confirmed", "placed"], ["lines_cancelled"]]
    assert entries[-1]["changes"] == {
        "reason": "customer wants fewer",
        "lines": [
            {
                "line_id": tee_s["id"],
                "line_number": 1,
                "sku": "TEE-S",
                "quantity": 3,
                "quantity_cancelled": {"old": 0, "new": 3},
                "quantity_backordered": {"old": 0, "new": 0},
                "quantity_allocated": {"old": 5, "new": 2},
                "released": [{"location": "WH-2", "quantity": 2}, {"location": "WH-1", "quantity": 1}],
            }
        ],
        "subtotal_amount": {"old": 7000, "new": 4000},
        "total_amount": {"old": 7000, "new": 4000},
        "version": {"old": 1, "new": 2},
    }
    assert (entries[-1]["actor_type"], entries[-1]["is_touch"]) == ("user", True)
    events = await events_of(database, order["id"])
    assert events[-1] == (
        "order.lines_cancelled",
        {
            "order_id": order["id"],
            "number": order["number"],
            "reason": "customer wants fewer",
            "lines": [{"line_id": tee_s["id"], "sku": "TEE-S", "quantity": 3}],
            "subtotal_amount": 4000,
            "total_amount": 4000,
        },
    )


async def test_backordered_units_are_cancelled_before_reserved_ones(store: Store, database: Database) -> None:
    await store.add_skus("MUG", price=800, allow_backorder=True)
    await store.receive("MUG", "WH-2", 2)
    order = await store.place(("MUG", 5))
    line = order["lines"][0]
    assert buckets(line) == (5, 0, 2, 3, 0)

    body: dict[str, Any] = {
        "reason": "only two wanted now",
        "lines": [{"line_id": line["id"], "quantity": 3}],
    }
    after_three = await store.call("POST", cancel_path(order), 200, json=body)
    assert buckets(after_three["lines"][0]) == (5, 3, 2, 0, 0)
    assert (await store.stock("MUG"))["reserved"] == 2

    body["lines"][0]["quantity"] = 1
    after_four = await store.call("POST", cancel_path(order), 200, json=body)
    assert buckets(after_four["lines"][0]) == (5, 4, 1, 0, 0)
    assert (await store.stock("MUG"))["reserved"] == 1
    assert await reservation_rows(database, store, order["id"]) == [(1, "WH-2", 1)]
    changes = (await timeline_of(store, order["id"]))[-1]["changes"]["lines"][0]
    assert (changes["quantity_backordered"], changes["quantity_allocated"], changes["released"]) == (
        {"old": 0, "new": 0},
        {"old": 2, "new": 1},
        [{"location": "WH-2", "quantity": 1}],
    )
    assert after_four["subtotal_amount"] == 800


async def test_cancelling_the_whole_order_frees_its_stock_and_releases_its_holds(
    store: Store, database: Database
) -> None:
    await store.receive("TEE-S", "WH-1", 4)
    await store.receive("TEE-M", "WH-2", 4)
    order = await store.place(
        ("TEE-S", 2), ("TEE-M", 3), hold={"type": "fraud_review", "reason": "odd address"}
    )

    cancelled = await store.call("POST", cancel_path(order), 200, json={"reason": " fraud confirmed "})

    assert (cancelled["status"], cancelled["cancel_reason"]) == ("cancelled", "fraud confirmed")
    assert cancelled["cancelled_at"] is not None
    assert [buckets(line) for line in cancelled["lines"]] == [(2, 2, 0, 0, 0), (3, 3, 0, 0, 0)]
    assert (cancelled["subtotal_amount"], cancelled["total_amount"], cancelled["reservations"]) == (0, 0, [])
    assert (cancelled["open_hold_count"], cancelled["holds"][0]["release_note"]) == (
        0,
        "released because the order was cancelled",
    )
    assert (cancelled["version"], cancelled["touch_count"]) == (2, 2)
    assert (await store.stock("TEE-S"))["reserved"] == 0
    assert (await store.stock("TEE-M"))["reserved"] == 0
    assert await reservation_rows(database, store, order["id"]) == [(1, "WH-1", 0), (2, "WH-2", 0)]

    entries = await timeline_of(store, order["id"])
    assert steps(entries) == [["hold_placed", "placed"], ["cancelled", "hold_released", "lines_cancelled"]]
    assert entry(entries, "cancelled")["changes"] == {
        "status": {"old": "placed", "new": "cancelled"},
        "reason": "fraud confirmed",
    }
    assert [line["quantity"] for line in entry(entries, "lines_cancelled")["changes"]["lines"]] == [2, 3]
    topics = [topic for topic, _ in await events_of(database, order["id"])]
    assert topics == ["order.placed", "order.hold_placed", "order.cancelled", "order.hold_released"]
    listed = await store.call("GET", "/api/v1/orders", 200, params={"status": "cancelled"})
    assert [item["id"] for item in listed["data"]] == [order["id"]]


async def test_cancelling_every_unit_line_by_line_cancels_the_order(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 4)
    order = await store.place(("TEE-S", 2))
    body = {"reason": "out of budget", "lines": [{"line_id": order["lines"][0]["id"], "quantity": 2}]}
    cancelled = await store.call("POST", cancel_path(order), 200, json=body)
    assert (cancelled["status"], cancelled["cancel_reason"]) == ("cancelled", "out of budget")


async def test_shipped_units_cannot_be_cancelled(store: Store, database: Database) -> None:
    await store.receive("TEE-S", "WH-1", 10)
    order = await store.place(("TEE-S", 5))
    line_id = order["lines"][0]["id"]
    await ship(database, store, line_id, 3)
    shipped = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert buckets(shipped["lines"][0]) == (5, 0, 2, 0, 3)
    assert shipped["fulfillment_status"] == "partially_fulfilled"
    assert await stock_at(store, "TEE-S") == (7, 2, 5, [("WH-1", 2, 5)])

    body = {"reason": "too many", "lines": [{"line_id": line_id, "quantity": 3}]}
    problem = await store.call("POST", cancel_path(order), 409, json=body)
    assert problem["code"] == "quantity_not_cancellable"
    assert problem["lines"] == [
        {"line_id": line_id, "sku": "TEE-S", "requested": 3, "cancellable": 2, "shipped": 3, "cancelled": 0}
    ]
    assert problem["detail"] == (
        "line 1 (TEE-S): 3 asked, 2 can still be cancelled (3 shipped, 0 already cancelled); "
        "shipped units are returned, not cancelled"
    )
    assert await store.call("GET", f"/api/v1/orders/{order['id']}", 200) == shipped
    assert await stock_at(store, "TEE-S") == (7, 2, 5, [("WH-1", 2, 5)])

    # Cancelling "the order" now cancels what has not shipped; the shipped 3 stand.
    rest = await store.call("POST", cancel_path(order), 200, json={"reason": "ship what you have"})
    assert buckets(rest["lines"][0]) == (5, 2, 0, 0, 3)
    assert (rest["status"], rest["fulfillment_status"], rest["cancel_reason"]) == (
        "confirmed",
        "fulfilled",
        None,
    )
    assert (rest["subtotal_amount"], rest["total_amount"]) == (3000, 3000)
    assert await stock_at(store, "TEE-S") == (7, 0, 7, [("WH-1", 0, 7)])
    assert (await events_of(database, order["id"]))[-1][0] == "order.lines_cancelled"

    problem = await store.call("POST", cancel_path(order), 409, json={"reason": "again"})
    assert problem["code"] == "nothing_to_cancel"
    completed = await store.call("POST", f"/api/v1/orders/{order['id']}/complete", 200)
    assert completed["status"] == "completed"


async def test_closed_orders_cannot_be_cancelled(store: Store, database: Database) -> None:
    await store.receive("TEE-S", "WH-1", 10)
    order = await store.place(("TEE-S", 1))
    await ship(database, store, order["lines"][0]["id"], 1)
    await store.call("POST", f"/api/v1/orders/{order['id']}/complete", 200)
    problem = await store.call("POST", cancel_path(order), 409, json={"reason": "too late"})
    assert (problem["code"], problem["current_status"], problem["allowed_next"]) == (
        "invalid_transition",
        "completed",
        ["archived"],
    )

    gone = await store.place(("TEE-S", 1))
    await store.call("POST", cancel_path(gone), 200, json={"reason": "first"})
    problem = await store.call("POST", cancel_path(gone), 409, json={"reason": "second"})
    assert (problem["code"], problem["current_status"]) == ("invalid_transition", "cancelled")


async def test_bad_cancellations_are_422_naming_the_field(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 10)
    order = await store.place(("TEE-S", 2), ("TEE-M", 1), expected=409)
    assert order["code"] == "insufficient_stock"
    order = await store.place(("TEE-S", 2))
    line_id = order["lines"][0]["id"]

    problem = await store.call("POST", cancel_path(order), 422, json={"reason": "", "lines": []})
    assert problem["errors"] == [
        {"field": "reason", "message": "say why, in 1 to 1000 characters"},
        {"field": "lines", "message": "give at least one line, or leave lines out to cancel everything"},
    ]
    body = {
        "reason": "tidy up",
        "lines": [
            {"line_id": line_id, "quantity": 1},
            {"line_id": str(uuid.uuid4()), "quantity": 1},
            {"line_id": "nope", "quantity": 1},
            {"line_id": line_id, "quantity": 1},
        ],
    }
    problem = await store.call("POST", cancel_path(order), 422, json=body)
    assert problem["errors"] == [
        {"field": "lines[1].line_id", "message": "no such line on this order"},
        {"field": "lines[2].line_id", "message": "no such line on this order"},
        {"field": "lines[3].line_id", "message": "this line is named twice; name it once"},
    ]
    body = {"reason": "tidy up", "lines": [{"line_id": line_id, "quantity": 0}]}
    problem = await store.call("POST", cancel_path(order), 422, json=body)
    assert problem["errors"] == [
        {"field": "lines[0].quantity", "message": "must be a whole number from 1 to 100000"}
    ]
    assert (await store.call("GET", f"/api/v1/orders/{order['id']}", 200))["version"] == 1


async def test_a_retried_cancel_with_the_same_key_cancels_once(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 10)
    order = await store.place(("TEE-S", 5))
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"reason": "fewer", "lines": [{"line_id": order["lines"][0]["id"], "quantity": 2}]}
    first = await store.call("POST", cancel_path(order), 200, json=body, headers=key)
    again = await store.client.post(cancel_path(order), json=body, headers={**store.headers, **key})
    assert (again.status_code, again.json(), again.headers["Idempotent-Replayed"]) == (200, first, "true")
    assert buckets(first["lines"][0]) == (5, 2, 3, 0, 0)
    assert (await store.stock("TEE-S"))["reserved"] == 3


async def test_a_cancel_racing_a_shipment_is_409_and_changes_nothing(
    store: Store, database: Database
) -> None:
    """A shipment that changed the line after the cancel read it: compare-and-set refuses, all rolls back."""
    await store.receive("TEE-S", "WH-1", 10)
    order = await store.place(("TEE-S", 5))
    line_id = uuid.UUID(order["lines"][0]["id"])
    tenant = await tenant_context(database, store)
    request = CancelRequest("fewer", [LineCancel(str(line_id), 3)])

    async def cancel() -> None:
        async with database.tenant_session(tenant) as session:
            await cancel_order(tenant, session, uuid.UUID(order["id"]), request, actor=Actor("system"))

    async with database.tenant_session(tenant) as shipment:
        # A writer that moves the buckets without the order lock, and holds the line's row lock.
        await shipment.execute(
            update(OrderLine)
            .where(OrderLine.id == line_id)
            .values(
                quantity_allocated=OrderLine.quantity_allocated - 4,
                quantity_shipped=OrderLine.quantity_shipped + 4,
            )
        )
        racing = asyncio.create_task(cancel())
        await wait_until_blocking(shipment)
    with pytest.raises(OrderChangedError) as raised:
        await racing
    assert raised.value.code == "order_changed"

    after = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert buckets(after["lines"][0]) == (5, 0, 1, 0, 4)
    assert (after["version"], after["touch_count"], after["subtotal_amount"]) == (1, 1, 5000)
    assert (await store.stock("TEE-S"))["reserved"] == 5
    assert await reservation_rows(database, store, order["id"]) == [(1, "WH-1", 5)]
    assert steps(await timeline_of(store, order["id"])) == [["confirmed", "placed"]]
    assert [topic for topic, _ in await events_of(database, order["id"])] == [
        "order.placed",
        "order.confirmed",
    ]
    async with database.tenant_session(tenant) as session:
        cancelled = await session.scalar(select(OrderLine.quantity_cancelled).where(OrderLine.id == line_id))
    assert cancelled == 0


async def wait_until_blocking(session: AsyncSession) -> None:
    """Until another backend waits on a lock this session's transaction holds."""
    query = text(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
    )
    for _ in range(250):
        if await session.scalar(query):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the cancel never waited for the shipment's row lock")


async def test_another_stores_order_is_404_on_cancel(client: AsyncTestClient[Litestar], store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(("TEE-S", 2))
    other = await open_store(client)
    problem = await other.call("POST", cancel_path(order), 404, json={"reason": "not mine"})
    assert problem["code"] == "order_not_found"
    assert (await store.call("GET", f"/api/v1/orders/{order['id']}", 200))["status"] == "confirmed"


async def test_a_cut_that_changes_what_is_owed_or_left_to_ship_says_so_on_the_timeline(
    store: Store, database: Database
) -> None:
    await store.receive("TEE-S", "WH-1", 1)
    await store.receive("TEE-M", "WH-1", 1)
    order = await store.place(("TEE-S", 1), ("TEE-M", 1))
    tee_s, tee_m = order["lines"]
    await ship(database, store, tee_s["id"], 1)
    await pay(store, order["id"], provider="manual", method="cash")
    paid = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (paid["payment_status"], paid["fulfillment_status"]) == ("paid", "partially_fulfilled")

    cut = {"reason": "out of TEE-M", "lines": [{"line_id": tee_m["id"], "quantity": 1}]}
    after = await store.call("POST", cancel_path(order), 200, json=cut)
    # Everything left has shipped, and 10.00 was paid for what no longer ships: it completes.
    assert (after["status"], after["payment_status"], after["fulfillment_status"]) == (
        "completed",
        "overpaid",
        "fulfilled",
    )
    cancelled = entry(await timeline_of(store, order["id"]), "lines_cancelled")
    assert {name: cancelled["changes"][name] for name in ("payment_status", "fulfillment_status")} == {
        "payment_status": {"old": "paid", "new": "overpaid"},
        "fulfillment_status": {"old": "partially_fulfilled", "new": "fulfilled"},
    }
