"""Backordered units are reserved when stock comes free, oldest placed order first."""

from __future__ import annotations

from typing import Any

import pytest
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
    stock_at,
    stored_statuses,
)
from tests.support.order_actions import entry, events_of, timeline_of
from tests.support.orders import Store, open_store


async def backorder_store(client: AsyncTestClient[Litestar]) -> Store:
    """TEE-S, which may be backordered, at WH-1 (tried first) and WH-2, with no stock yet."""
    store = await open_store(client)
    await store.add_skus("TEE-S", price=1000, allow_backorder=True)
    await store.add_location("WH-1", priority=10)
    await store.add_location("WH-2", priority=20)
    return store


async def fill(database: Database, store: Store) -> int:
    return await run_consumer(database, store, backorders.CONSUMER_NAME)


async def order_of(store: Store, order: dict[str, Any]) -> Any:
    return await store.call("GET", f"/api/v1/orders/{order['id']}", 200)


def held(order: dict[str, Any]) -> list[tuple[str, int]]:
    return sorted((item["location_code"], item["quantity"]) for item in order["reservations"])


async def test_a_receipt_fills_the_oldest_backorders_first(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await backorder_store(client)
    older = await store.place(("TEE-S", 3))
    newer = await store.place(("TEE-S", 2))
    assert (buckets(older, "TEE-S"), buckets(newer, "TEE-S")) == ((0, 3, 0, 0, 0), (0, 2, 0, 0, 0))

    await store.receive("TEE-S", "WH-1", 4)
    assert await fill(database, store) == 1

    older_now, newer_now = await order_of(store, older), await order_of(store, newer)
    assert (buckets(older_now, "TEE-S"), held(older_now)) == ((3, 0, 0, 0, 0), [("WH-1", 3)])
    assert (buckets(newer_now, "TEE-S"), held(newer_now)) == ((1, 1, 0, 0, 0), [("WH-1", 1)])
    assert newer_now["reservations"][0]["reason"] == (
        "backorder filled: no location has all 2; WH-1 (priority 10) gives the 1 it has"
    )
    assert (older_now["version"], older_now["touch_count"]) == (older["version"] + 1, older["touch_count"])
    stock = await store.stock("TEE-S")
    assert (stock["on_hand"], stock["reserved"], stock["available"], stock["backordered"]) == (4, 4, 0, 1)

    filled = entry(await timeline_of(store, newer["id"]), "backorder_filled")
    assert (filled["actor_type"], filled["actor_id"], filled["is_touch"]) == (
        "system",
        "backorder-filler",
        False,
    )
    assert filled["changes"] == {
        "line_id": line_of(newer, "TEE-S")["id"],
        "line_number": 1,
        "sku": "TEE-S",
        "quantity": 1,
        "reservations": [
            {
                "location": "WH-1",
                "quantity": 1,
                "reason": "no location has all 2; WH-1 (priority 10) gives the 1 it has",
            }
        ],
        "quantity_backordered": {"old": 2, "new": 1},
        "quantity_allocated": {"old": 0, "new": 1},
    }
    [(_, payload)] = [
        item for item in await events_of(database, newer["id"]) if item[0] == "order.backorder_filled"
    ]
    assert payload == {
        "order_id": newer["id"],
        "number": newer["number"],
        "line_id": line_of(newer, "TEE-S")["id"],
        "sku": "TEE-S",
        "quantity": 1,
        "reservations": [{"location": "WH-1", "quantity": 1}],
        "backordered": 1,
    }
    await assert_stock_invariants(database, store)

    # Delivered again, nothing more happens; the next receipt fills the last unit.
    assert await fill(database, store) == 0
    await store.receive("TEE-S", "WH-2", 5)
    await fill(database, store)
    newer_now = await order_of(store, newer)
    assert (buckets(newer_now, "TEE-S"), held(newer_now)) == ((2, 0, 0, 0, 0), [("WH-1", 1), ("WH-2", 1)])
    assert [item["kind"] for item in await timeline_of(store, newer["id"])].count("backorder_filled") == 2
    assert (await store.stock("TEE-S"))["backordered"] == 0
    await assert_stock_invariants(database, store)


async def test_a_released_order_gets_a_fulfillment_order_where_its_backorder_was_filled(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await backorder_store(client)
    await store.receive("TEE-S", "WH-1", 1)
    order = await store.place(("TEE-S", 3))
    [wh1] = (await release(store, order["id"]))["data"]
    assert wh1["location_code"] == "WH-1"

    await store.receive("TEE-S", "WH-2", 2)
    await fill(database, store)

    places = by_location(
        (await store.call("GET", f"/api/v1/orders/{order['id']}/fulfillment-orders", 200))["data"]
    )
    assert {code: [line["quantity_reserved"] for line in item["lines"]] for code, item in places.items()} == {
        "WH-1": [1],
        "WH-2": [2],
    }
    assert await stored_statuses(database, store, order["id"]) == ["open", "open"]
    filled = entry(await timeline_of(store, order["id"]), "backorder_filled")["changes"]
    assert [(item["location"], item["is_new"]) for item in filled["fulfillment_orders"]] == [("WH-2", True)]
    topics = [topic for topic, _ in await events_of(database, order["id"])]
    assert topics[-2:] == ["order.backorder_filled", "fulfillment_order.created"]
    assert buckets(await order_of(store, order), "TEE-S") == (3, 0, 0, 0, 0)
    await assert_stock_invariants(database, store)


async def test_a_cancellation_frees_stock_for_the_order_waiting_for_it(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await backorder_store(client)
    await store.receive("TEE-S", "WH-1", 2)
    first = await store.place(("TEE-S", 2))
    waiting = await store.place(("TEE-S", 1))
    assert buckets(waiting, "TEE-S") == (0, 1, 0, 0, 0)

    await store.call(
        "POST",
        f"/api/v1/orders/{first['id']}/cancel",
        200,
        json={
            "reason": "customer changed their mind",
            "lines": [{"line_id": line_of(first, "TEE-S")["id"], "quantity": 1}],
        },
    )
    await fill(database, store)
    assert (buckets(await order_of(store, waiting), "TEE-S"), held(await order_of(store, waiting))) == (
        (1, 0, 0, 0, 0),
        [("WH-1", 1)],
    )
    assert await stock_at(store, "TEE-S") == {"WH-1": (2, 2)}
    await assert_stock_invariants(database, store)


async def test_filling_a_shortfall_backorder_releases_the_stock_hold_it_caused(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await open_store(client)
    await store.add_skus("TEE-S", price=1000)
    await store.add_location("WH-1", priority=10)
    await store.add_location("WH-2", priority=20)
    await store.receive("TEE-S", "WH-1", 3)
    order = await store.place(("TEE-S", 3))
    await release(store, order["id"])
    await store.call(
        "POST",
        "/api/v1/inventory/adjustments",
        201,
        json={
            "sku": "TEE-S",
            "location_id": store.locations["WH-1"],
            "kind": "damage",
            "quantity": -2,
            "reason": "wet",
        },
    )
    await run_consumer(database, store, shortfall.CONSUMER_NAME)
    held_order = await order_of(store, order)
    assert (buckets(held_order, "TEE-S"), held_order["open_hold_count"]) == ((1, 2, 0, 0, 0), 1)
    assert await stored_statuses(database, store, order["id"]) == ["on_hold"]

    # A person's hold stays; the shortfall's own is released once every unit is reserved again.
    await store.call(
        "POST", f"/api/v1/orders/{order['id']}/hold", 201, json={"type": "address", "reason": "check flat"}
    )
    await store.receive("TEE-S", "WH-2", 1)
    await fill(database, store)
    partly = await order_of(store, order)
    assert (buckets(partly, "TEE-S"), partly["open_hold_count"]) == ((2, 1, 0, 0, 0), 2)

    await store.receive("TEE-S", "WH-2", 1)
    await fill(database, store)
    after = await order_of(store, order)
    assert (buckets(after, "TEE-S"), held(after)) == ((3, 0, 0, 0, 0), [("WH-1", 1), ("WH-2", 2)])
    [stock_hold, address_hold] = after["holds"]
    assert (stock_hold["type"], stock_hold["released_by_type"], stock_hold["released_by_id"]) == (
        "stock",
        "system",
        "backorder-filler",
    )
    assert stock_hold["release_note"] == backorders.STOCK_ARRIVED_NOTE
    assert (address_hold["type"], address_hold["released_at"], after["open_hold_count"]) == (
        "address",
        None,
        1,
    )
    await assert_stock_invariants(database, store)


async def test_stock_added_where_nothing_waits_changes_no_order(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await backorder_store(client)
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(("TEE-S", 2))
    await store.receive("TEE-S", "WH-1", 1)
    await fill(database, store)
    after = await order_of(store, order)
    assert (after["version"], held(after)) == (order["version"], [("WH-1", 2)])
    assert "backorder_filled" not in {item["kind"] for item in await timeline_of(store, order["id"])}


async def test_a_location_switched_back_on_fills_what_waits_for_its_stock(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await backorder_store(client)
    await store.receive("TEE-S", "WH-2", 2)
    location = f"/api/v1/locations/{store.locations['WH-2']}"
    await store.call("PATCH", location, 200, json={"is_active": False})
    order = await store.place(("TEE-S", 3))
    assert buckets(order, "TEE-S") == (0, 3, 0, 0, 0)
    await fill(database, store)
    assert buckets(await order_of(store, order), "TEE-S") == (0, 3, 0, 0, 0)

    await store.call("PATCH", location, 200, json={"is_active": True})
    await fill(database, store)
    after = await order_of(store, order)
    assert (buckets(after, "TEE-S"), held(after)) == ((2, 1, 0, 0, 0), [("WH-2", 2)])
    await assert_stock_invariants(database, store)


async def lost_under(store: Store, location: str, units: int) -> None:
    await store.call(
        "POST",
        "/api/v1/inventory/adjustments",
        201,
        json={
            "sku": "TEE-S",
            "location_id": store.locations[location],
            "kind": "damage",
            "quantity": -units,
            "reason": "wet",
        },
    )


async def plain_store(client: AsyncTestClient[Litestar]) -> Store:
    """TEE-S, never backordered at placement, and MUG, which may be; WH-1 then WH-2."""
    store = await open_store(client)
    await store.add_skus("TEE-S", price=1000)
    await store.add_skus("MUG", price=500, allow_backorder=True)
    await store.add_location("WH-1", priority=10)
    await store.add_location("WH-2", priority=20)
    return store


async def test_releasing_an_order_that_waits_for_all_its_stock_sends_it_when_the_stock_comes(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await backorder_store(client)
    order = await store.place(("TEE-S", 2))
    assert (order["status"], buckets(order, "TEE-S")) == ("confirmed", (0, 2, 0, 0, 0))
    # Nothing to send yet, but the release counts: it is on the timeline, and a retry adds nothing.
    assert await release(store, order["id"]) == {"data": []}
    assert await release(store, order["id"]) == {"data": []}
    released = [
        item for item in await timeline_of(store, order["id"]) if item["kind"] == "released_to_fulfillment"
    ]
    assert [item["changes"] for item in released] == [
        {"fulfillment_orders": [], "backordered": [{"line_number": 1, "sku": "TEE-S", "quantity": 2}]}
    ]

    await store.receive("TEE-S", "WH-2", 5)
    await fill(database, store)
    [wh2] = (await store.call("GET", f"/api/v1/orders/{order['id']}/fulfillment-orders", 200))["data"]
    assert (wh2["location_code"], wh2["status"], [line["quantity_reserved"] for line in wh2["lines"]]) == (
        "WH-2",
        "open",
        [2],
    )
    filled = entry(await timeline_of(store, order["id"]), "backorder_filled")["changes"]
    assert [(item["location"], item["is_new"]) for item in filled["fulfillment_orders"]] == [("WH-2", True)]
    topics = [topic for topic, _ in await events_of(database, order["id"])]
    assert topics[-2:] == ["order.backorder_filled", "fulfillment_order.created"]
    await assert_stock_invariants(database, store)


async def test_a_released_order_whose_fulfillment_order_was_cancelled_gets_a_new_one(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await plain_store(client)
    await store.receive("TEE-S", "WH-1", 2)
    order = await store.place(("TEE-S", 2))
    await release(store, order["id"])
    await lost_under(store, "WH-1", 2)
    await run_consumer(database, store, shortfall.CONSUMER_NAME)
    assert await stored_statuses(database, store, order["id"]) == ["cancelled"]

    await store.receive("TEE-S", "WH-2", 2)
    await fill(database, store)
    after = await order_of(store, order)
    assert (buckets(after, "TEE-S"), held(after), after["open_hold_count"]) == (
        (2, 0, 0, 0, 0),
        [("WH-2", 2)],
        0,
    )
    assert await stored_statuses(database, store, order["id"]) == ["cancelled", "open"]


async def test_cancelling_the_units_a_loss_backordered_releases_its_hold(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await plain_store(client)
    await store.receive("TEE-S", "WH-1", 3)
    order = await store.place(("TEE-S", 3))
    await lost_under(store, "WH-1", 1)
    await run_consumer(database, store, shortfall.CONSUMER_NAME)
    assert (await order_of(store, order))["open_hold_count"] == 1

    line = line_of(order, "TEE-S")["id"]
    await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/cancel",
        200,
        json={"reason": "cannot wait", "lines": [{"line_id": line, "quantity": 1}]},
    )
    await fill(database, store)
    after = await order_of(store, order)
    assert (buckets(after, "TEE-S"), after["open_hold_count"]) == ((2, 0, 0, 1, 0), 0)
    assert after["holds"][0]["release_note"] == backorders.UNITS_GONE_NOTE


async def test_units_backordered_at_placement_do_not_keep_a_loss_hold_on(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await plain_store(client)
    await store.receive("TEE-S", "WH-1", 2)
    order = await store.place(("TEE-S", 2), ("MUG", 1))
    assert buckets(order, "MUG") == (0, 1, 0, 0, 0)
    await lost_under(store, "WH-1", 1)
    await run_consumer(database, store, shortfall.CONSUMER_NAME)
    assert (await order_of(store, order))["open_hold_count"] == 1

    await store.receive("TEE-S", "WH-2", 1)
    await fill(database, store)
    after = await order_of(store, order)
    # TEE-S is whole again; the MUG still waits, as it did before the loss, with no hold.
    assert (buckets(after, "TEE-S"), buckets(after, "MUG"), after["open_hold_count"]) == (
        (2, 0, 0, 0, 0),
        (0, 1, 0, 0, 0),
        0,
    )


async def test_more_waiting_orders_than_a_batch_are_filled_over_several_deliveries(
    client: AsyncTestClient[Litestar], database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backorders, "BATCH", 1)
    store = await backorder_store(client)
    first = await store.place(("TEE-S", 1))
    second = await store.place(("TEE-S", 1))
    await store.receive("TEE-S", "WH-1", 2)

    assert await fill(database, store) == 1
    assert [buckets(await order_of(store, item), "TEE-S") for item in (first, second)] == [
        (1, 0, 0, 0, 0),
        (0, 1, 0, 0, 0),
    ]
    # The first delivery left an event for the rest; its delivery fills the second order.
    assert await fill(database, store) == 1
    assert buckets(await order_of(store, second), "TEE-S") == (1, 0, 0, 0, 0)
    assert await fill(database, store) == 0
