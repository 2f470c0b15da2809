"""A location rejects units: they are re-routed to another location, or backordered under a stock hold."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from ordersmith.tenants.fulfillment import backorders, shortfall
from tests.support.fulfillment import (
    assert_stock_invariants,
    buckets,
    by_location,
    line_of,
    release,
    run_consumer,
    ship,
    stock_at,
)
from tests.support.order_actions import entry, events_of, timeline_of
from tests.support.orders import Store, open_store


async def rerouting_store(client: AsyncTestClient[Litestar]) -> Store:
    """TEE-S at WH-1 (5, tried first), WH-2 (2) and WH-3 (4)."""
    store = await open_store(client)
    await store.add_skus("TEE-S", price=1000)
    for code, priority, quantity in (("WH-1", 10, 5), ("WH-2", 20, 2), ("WH-3", 30, 4)):
        await store.add_location(code, priority=priority)
        await store.receive("TEE-S", code, quantity)
    return store


def reject_path(fulfillment_order: dict[str, object]) -> str:
    return f"/api/v1/fulfillment-orders/{fulfillment_order['id']}/reject"


async def test_rejected_units_are_rerouted_to_other_locations_by_priority(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await rerouting_store(client)
    order = await store.place(("TEE-S", 4))
    line = line_of(order, "TEE-S")["id"]
    [wh1] = (await release(store, order["id"]))["data"]
    assert wh1["location_code"] == "WH-1"

    # WH-2 has 2 and WH-3 has 4: the planner takes WH-3, the first with all 3.
    result = await store.call(
        "POST", reject_path(wh1), 200, json={"line_id": line, "quantity": 3, "reason": " box crushed "}
    )
    assert result["rerouted"] == [
        {"location": "WH-3", "quantity": 3, "reason": "WH-3 (priority 30) is the first location with all 3"}
    ]
    assert (result["backordered"], result["hold_id"]) == (0, None)
    places = by_location(result["fulfillment_orders"])
    assert [
        (item["status"], [(line["quantity_reserved"], line["quantity_rejected"]) for line in item["lines"]])
        for item in (places["WH-1"], places["WH-3"])
    ] == [("open", [(1, 3)]), ("open", [(3, 0)])]
    assert await stock_at(store, "TEE-S") == {"WH-1": (5, 1), "WH-2": (2, 0), "WH-3": (4, 3)}
    after = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert buckets(after, "TEE-S") == (4, 0, 0, 0, 0)
    assert [(item["location_code"], item["quantity"]) for item in after["reservations"]] == [
        ("WH-1", 1),
        ("WH-3", 3),
    ]
    assert after["reservations"][1]["reason"] == (
        "re-routed from WH-1 (box crushed): WH-3 (priority 30) is the first location with all 3"
    )

    # WH-1 ships its last unit; WH-3 ships the re-routed ones: the order is fulfilled.
    await ship(store, wh1["id"], [(line, 1)])
    await ship(store, places["WH-3"]["id"], [(line, 3)])
    done = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (done["fulfillment_status"], buckets(done, "TEE-S")) == ("fulfilled", (0, 0, 4, 0, 0))
    assert await stock_at(store, "TEE-S") == {"WH-1": (4, 0), "WH-2": (2, 0), "WH-3": (1, 0)}
    await assert_stock_invariants(database, store)

    rejected = entry(await timeline_of(store, order["id"]), "fulfillment_line_rejected")["changes"]
    assert {key: rejected[key] for key in ("location", "sku", "quantity", "reason", "backordered")} == {
        "location": "WH-1",
        "sku": "TEE-S",
        "quantity": 3,
        "reason": "box crushed",
        "backordered": 0,
    }
    assert rejected["fulfillment_orders"] == [
        {
            "fulfillment_order_id": places["WH-3"]["id"],
            "location": "WH-3",
            "is_new": True,
            "lines": [{"line_number": 1, "sku": "TEE-S", "quantity": 3}],
        }
    ]
    topics = [topic for topic, _ in await events_of(database, order["id"])]
    assert topics.count("fulfillment_order.line_rejected") == 1
    assert topics.count("fulfillment_order.created") == 2


async def test_units_no_location_has_are_backordered_under_a_stock_hold(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await rerouting_store(client)
    order = await store.place(("TEE-S", 5))
    line = line_of(order, "TEE-S")["id"]
    [wh1] = (await release(store, order["id"]))["data"]
    # Other locations hold 2 + 4 = 6 free units; 5 are asked of WH-1 and it rejects all of them,
    # after another order took 3 of the 4 at WH-3.
    other = await store.place(("TEE-S", 3))
    assert [item["location_code"] for item in other["reservations"]] == ["WH-3"]

    result = await store.call(
        "POST", reject_path(wh1), 200, json={"line_id": line, "quantity": 5, "reason": "not found on shelf"}
    )
    assert [(item["location"], item["quantity"]) for item in result["rerouted"]] == [("WH-2", 2), ("WH-3", 1)]
    assert result["backordered"] == 2
    order_now = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert buckets(order_now, "TEE-S") == (3, 2, 0, 0, 0)
    [hold] = order_now["holds"]
    assert (hold["id"], hold["type"], order_now["open_hold_count"]) == (result["hold_id"], "stock", 1)
    assert hold["reason"] == (
        "TEE-S: 2 unit(s) rejected at WH-1 (not found on shelf) and no other location has them; they are "
        "backordered. Count WH-1 to put its stock right, then release this hold; if the units are gone, "
        "cancel them and release this hold."
    )
    # The person who rejected placed it, and a person releases it.
    assert hold["placed_by_type"] == "user"
    statuses = {item["location_code"]: item["status"] for item in result["fulfillment_orders"]}
    assert statuses == {"WH-1": "cancelled", "WH-2": "on_hold", "WH-3": "on_hold"}
    rejected = entry(await timeline_of(store, order["id"]), "fulfillment_line_rejected")["changes"]
    assert rejected["status_changes"] == [
        {"fulfillment_order_id": wh1["id"], "location": "WH-1", "status": {"old": "open", "new": "cancelled"}}
    ]
    assert await stock_at(store, "TEE-S") == {"WH-1": (5, 0), "WH-2": (2, 2), "WH-3": (4, 4)}
    await assert_stock_invariants(database, store)

    # Nothing is left at WH-1 to reject or ship.
    problem = await store.call(
        "POST", reject_path(wh1), 409, json={"line_id": line, "quantity": 1, "reason": "x"}
    )
    assert problem["code"] == "fulfillment_order_closed"
    invalid = await store.call(
        "POST",
        reject_path(result["fulfillment_orders"][1]),
        422,
        json={"line_id": line, "quantity": 0, "reason": ""},
    )
    assert sorted(error["field"] for error in invalid["errors"]) == ["quantity", "reason"]
    # A rejection names one line in its own `line_id` field, not in a list of lines.
    for unknown in ("nope", "00000000-0000-7000-8000-000000000000"):
        problem = await store.call(
            "POST",
            reject_path(result["fulfillment_orders"][1]),
            422,
            json={"line_id": unknown, "quantity": 1, "reason": "gone"},
        )
        assert problem["errors"] == [{"field": "line_id", "message": "no such line on this order"}]

    # Two units arrive at WH-2. WH-1 still counts the five it could not find, so the filler
    # takes the backordered two there; the person's hold stays.
    await store.receive("TEE-S", "WH-2", 2)
    await run_consumer(database, store, backorders.CONSUMER_NAME)
    filled = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (buckets(filled, "TEE-S"), filled["open_hold_count"]) == ((5, 0, 0, 0, 0), 1)
    assert sorted((item["location_code"], item["quantity"]) for item in filled["reservations"]) == [
        ("WH-1", 2),
        ("WH-2", 2),
        ("WH-3", 1),
    ]
    # Counting WH-1 puts its stock right: the two it never had move to WH-2's new units.
    await store.call(
        "POST",
        "/api/v1/inventory/adjustments",
        201,
        json={
            "sku": "TEE-S",
            "location_id": store.locations["WH-1"],
            "kind": "count",
            "quantity": 0,
            "reason": "recount",
        },
    )
    await run_consumer(database, store, shortfall.CONSUMER_NAME)
    counted = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert sorted((item["location_code"], item["quantity"]) for item in counted["reservations"]) == [
        ("WH-2", 4),
        ("WH-3", 1),
    ]
    assert await stock_at(store, "TEE-S") == {"WH-1": (0, 0), "WH-2": (4, 4), "WH-3": (4, 4)}
    await assert_stock_invariants(database, store)
