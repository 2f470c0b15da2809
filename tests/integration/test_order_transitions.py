"""Completing and archiving orders over HTTP, and what an illegal transition answers."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from tests.support.order_actions import events_of, ship, steps, timeline_of
from tests.support.orders import Store, open_store


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    store = await open_store(client)
    await store.add_skus("TEE-S", "TEE-M", price=1000)
    await store.add_location("WH-1", priority=10)
    await store.receive("TEE-S", "WH-1", 10)
    await store.receive("TEE-M", "WH-1", 10)
    return store


def action(order: dict[str, Any], name: str) -> str:
    return f"/api/v1/orders/{order['id']}/{name}"


async def test_an_order_completes_once_everything_live_shipped_then_archives(
    store: Store, database: Database
) -> None:
    order = await store.place(("TEE-S", 3), ("TEE-M", 1))
    tee_s, tee_m = order["lines"]
    await ship(database, store, tee_s["id"], 1)

    problem = await store.call("POST", action(order, "complete"), 409)
    assert (problem["code"], problem["fulfillment_status"]) == ("order_not_fulfilled", "partially_fulfilled")
    assert problem["unshipped"] == [
        {"line_id": tee_s["id"], "sku": "TEE-S", "quantity": 2},
        {"line_id": tee_m["id"], "sku": "TEE-M", "quantity": 1},
    ]
    assert problem["detail"] == (
        "everything live must ship before the order is completed; still to ship: "
        "line 1 (TEE-S) 2, line 2 (TEE-M) 1; ship or cancel them first"
    )

    await ship(database, store, tee_s["id"], 2)
    await store.call(
        "POST",
        action(order, "cancel"),
        200,
        json={"reason": "out of mugs", "lines": [{"line_id": tee_m["id"], "quantity": 1}]},
    )
    completed = await store.call("POST", action(order, "complete"), 200)
    assert (completed["status"], completed["fulfillment_status"], completed["version"]) == (
        "completed",
        "fulfilled",
        3,
    )
    assert completed["completed_at"] is not None

    archived = await store.call("POST", action(order, "archive"), 200)
    assert (archived["status"], archived["version"], archived["completed_at"]) == (
        "archived",
        4,
        completed["completed_at"],
    )
    entries = await timeline_of(store, order["id"])
    assert steps(entries)[-2:] == [["completed"], ["archived"]]
    assert [entry["changes"] for entry in entries[-2:]] == [
        {"status": {"old": "confirmed", "new": "completed"}},
        {"status": {"old": "completed", "new": "archived"}},
    ]
    events = await events_of(database, order["id"])
    assert events[-2:] == [
        ("order.completed", {"order_id": order["id"], "number": order["number"]}),
        ("order.archived", {"order_id": order["id"], "number": order["number"]}),
    ]

    problem = await store.call("POST", action(order, "archive"), 409)
    assert (problem["code"], problem["current_status"], problem["allowed_next"]) == (
        "invalid_transition",
        "archived",
        [],
    )
    assert problem["detail"] == (
        "an order that is archived cannot become archived; from archived it can become nothing: it is final"
    )


async def test_an_illegal_transition_is_409_naming_the_current_status_and_what_may_follow(
    store: Store,
) -> None:
    confirmed = await store.place(("TEE-S", 1))
    problem = await store.call("POST", action(confirmed, "archive"), 409)
    assert problem["code"] == "invalid_transition"
    assert (problem["status"], problem["title"]) == (409, "Invalid transition")
    assert (problem["current_status"], problem["allowed_next"]) == ("confirmed", ["cancelled", "completed"])
    assert problem["detail"] == (
        "an order that is confirmed cannot become archived; from confirmed it can become cancelled, completed"
    )

    held = await store.place(("TEE-S", 1), hold={"type": "manual", "reason": "check"})
    problem = await store.call("POST", action(held, "complete"), 409)
    assert (problem["code"], problem["current_status"], problem["allowed_next"]) == (
        "invalid_transition",
        "placed",
        ["cancelled", "confirmed"],
    )
    assert (await store.call("GET", f"/api/v1/orders/{held['id']}", 200))["version"] == 1


async def test_an_open_hold_stops_completion(store: Store, database: Database) -> None:
    order = await store.place(("TEE-S", 1))
    await ship(database, store, order["lines"][0]["id"], 1)
    await store.call("POST", action(order, "hold"), 201, json={"type": "customer_request", "reason": "wait"})
    problem = await store.call("POST", action(order, "complete"), 409)
    assert (problem["code"], problem["open_hold_count"]) == ("order_on_hold", 1)


async def test_a_cancelled_order_archives(store: Store) -> None:
    order = await store.place(("TEE-S", 1))
    await store.call("POST", action(order, "cancel"), 200, json={"reason": "duplicate"})
    assert (await store.call("POST", action(order, "archive"), 200))["status"] == "archived"


async def test_another_stores_order_is_404_on_complete_and_archive(
    client: AsyncTestClient[Litestar], store: Store
) -> None:
    order = await store.place(("TEE-S", 1))
    other = await open_store(client)
    for name in ("complete", "archive"):
        assert (await other.call("POST", action(order, name), 404))["code"] == "order_not_found"
