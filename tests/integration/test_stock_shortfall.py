"""Stock lost under reservations: the newest orders holding it are re-routed, or backordered and held."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from ordersmith.platform.tenancy import get_tenant_record
from ordersmith.platform.workers import deliver_event
from ordersmith.tenants.fulfillment import shortfall
from ordersmith.tenants.fulfillment.shortfall import CONSUMER_NAME, ShortfallChangedError
from tests.support.concurrency import wait_for_lock_waiters
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
from tests.support.order_actions import entry, events_of, ship_in, tenant_context, timeline_of
from tests.support.orders import Store, open_store
from tests.support.webhook_receiver import consumer_named, outbox_events


async def three_warehouses(client: AsyncTestClient[Litestar], stock: tuple[int, int, int]) -> Store:
    """TEE-S at WH-1 (tried first), WH-2 and WH-3 with the given units (none: no stock row there)."""
    store = await open_store(client)
    await store.add_skus("TEE-S", price=1000)
    for (code, priority), quantity in zip((("WH-1", 10), ("WH-2", 20), ("WH-3", 30)), stock, strict=True):
        await store.add_location(code, priority=priority)
        if quantity:
            await store.receive("TEE-S", code, quantity)
    return store


async def lose(
    store: Store, location: str, quantity: int, kind: str = "damage", reason: str = "forklift"
) -> Any:
    return await store.call(
        "POST",
        "/api/v1/inventory/adjustments",
        201,
        json={
            "sku": "TEE-S",
            "location_id": store.locations[location],
            "kind": kind,
            "quantity": quantity,
            "reason": reason,
        },
    )


async def run_shortfall(database: Database, store: Store) -> int:
    return await run_consumer(database, store, CONSUMER_NAME)


def held(order: dict[str, Any]) -> list[tuple[str, int]]:
    return [(item["location_code"], item["quantity"]) for item in order["reservations"]]


async def order_of(store: Store, order: dict[str, Any]) -> Any:
    return await store.call("GET", f"/api/v1/orders/{order['id']}", 200)


async def test_the_newest_order_moves_to_the_next_location_and_the_oldest_keeps_its_units(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await three_warehouses(client, (5, 2, 4))
    older = await store.place(("TEE-S", 3))
    newer = await store.place(("TEE-S", 2))
    assert await stock_at(store, "TEE-S") == {"WH-1": (5, 5), "WH-2": (2, 0), "WH-3": (4, 0)}

    await lose(store, "WH-1", -2)
    assert await stock_at(store, "TEE-S") == {"WH-1": (3, 5), "WH-2": (2, 0), "WH-3": (4, 0)}
    # Three receipts, the damage: one consumer run each, and only the damage moves anything.
    assert await run_shortfall(database, store) == 4

    assert await stock_at(store, "TEE-S") == {"WH-1": (3, 3), "WH-2": (2, 2), "WH-3": (4, 0)}
    older_now, newer_now = await order_of(store, older), await order_of(store, newer)
    assert held(older_now) == [("WH-1", 3)]
    assert held(newer_now) == [("WH-2", 2)]
    assert newer_now["reservations"][0]["reason"] == (
        "re-routed from WH-1 (stock lost: damage of 2 at WH-1: forklift): "
        "WH-2 (priority 20) is the first location with all 2"
    )
    # Automation's change: a new version, no touch.
    assert (newer_now["status"], newer_now["open_hold_count"]) == ("confirmed", 0)
    assert (newer_now["version"], newer_now["touch_count"]) == (newer["version"] + 1, newer["touch_count"])
    assert buckets(newer_now, "TEE-S") == (2, 0, 0, 0, 0)

    lost = entry(await timeline_of(store, newer["id"]), "stock_lost")
    assert (lost["actor_type"], lost["actor_id"], lost["is_touch"]) == ("system", "stock-shortfall", False)
    assert lost["changes"] == {
        "location": "WH-1",
        "line_id": line_of(newer, "TEE-S")["id"],
        "line_number": 1,
        "sku": "TEE-S",
        "quantity": 2,
        "loss": "damage of 2 at WH-1: forklift",
        "rerouted": [
            {
                "location": "WH-2",
                "quantity": 2,
                "reason": "WH-2 (priority 20) is the first location with all 2",
            }
        ],
        "backordered": 0,
    }
    assert [kind for kind, _ in await events_of(database, newer["id"])][-1] == "order.stock_lost"
    assert "stock_lost" not in {item["kind"] for item in await timeline_of(store, older["id"])}
    await assert_stock_invariants(database, store)

    # Delivered again, the event changes nothing.
    assert await run_shortfall(database, store) == 0
    assert await stock_at(store, "TEE-S") == {"WH-1": (3, 3), "WH-2": (2, 2), "WH-3": (4, 0)}


async def test_a_loss_larger_than_the_newest_order_takes_the_next_newest_too(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await three_warehouses(client, (6, 0, 10))
    first = await store.place(("TEE-S", 2))
    second = await store.place(("TEE-S", 2))
    third = await store.place(("TEE-S", 2))

    # Counted 3 where 6 were: 3 units short, so the third order moves whole and the second in part.
    await lose(store, "WH-1", 3, kind="count", reason="cycle count")
    await run_shortfall(database, store)

    assert await stock_at(store, "TEE-S") == {"WH-1": (3, 3), "WH-3": (10, 3)}
    assert held(await order_of(store, first)) == [("WH-1", 2)]
    assert sorted(held(await order_of(store, second))) == [("WH-1", 1), ("WH-3", 1)]
    assert held(await order_of(store, third)) == [("WH-3", 2)]
    assert entry(await timeline_of(store, second["id"]), "stock_lost")["changes"]["quantity"] == 1
    assert entry(await timeline_of(store, third["id"]), "stock_lost")["changes"]["loss"] == (
        "count at WH-1 (3 on hand): cycle count"
    )
    await assert_stock_invariants(database, store)


async def test_units_no_location_has_are_backordered_under_a_stock_hold(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await three_warehouses(client, (4, 1, 0))
    order = await store.place(("TEE-S", 4))
    [wh1] = (await release(store, order["id"]))["data"]
    assert (wh1["location_code"], wh1["status"]) == ("WH-1", "open")

    await lose(store, "WH-1", -3, kind="correction", reason="never arrived")
    await run_shortfall(database, store)

    # WH-2's one unit is taken and gets a fulfillment order of its own; two are backordered.
    after = await order_of(store, order)
    assert sorted(held(after)) == [("WH-1", 1), ("WH-2", 1)]
    assert buckets(after, "TEE-S") == (2, 2, 0, 0, 0)
    assert after["open_hold_count"] == 1
    [hold] = after["holds"]
    # One hold per lost SKU, placed in its name: it is released by itself once the units are back.
    assert (hold["type"], hold["placed_by_type"], hold["placed_by_id"], hold["release_role"]) == (
        "stock",
        "system",
        f"stock-shortfall:{line_of(order, 'TEE-S')['variant_id']}",
        "agent",
    )
    assert hold["reason"] == (
        "TEE-S: 2 unit(s) this order held at WH-1 were lost (correction of 3 at WH-1: never arrived), and "
        "no other location has them, so they are backordered. The hold is released by itself once stock "
        "arrives and they are reserved again; or cancel those units."
    )
    assert await stock_at(store, "TEE-S") == {"WH-1": (1, 1), "WH-2": (1, 1)}
    places = by_location(
        (await store.call("GET", f"/api/v1/orders/{order['id']}/fulfillment-orders", 200))["data"]
    )
    assert {code: item["status"] for code, item in places.items()} == {"WH-1": "on_hold", "WH-2": "on_hold"}
    lost = entry(await timeline_of(store, order["id"]), "stock_lost")["changes"]
    assert (lost["backordered"], lost["quantity_allocated"], lost["quantity_backordered"]) == (
        2,
        {"old": 4, "new": 2},
        {"old": 0, "new": 2},
    )
    assert [(item["location"], item["is_new"]) for item in lost["fulfillment_orders"]] == [("WH-2", True)]
    topics = [topic for topic, _ in await events_of(database, order["id"])]
    assert topics[-3:] == ["order.stock_lost", "fulfillment_order.created", "order.hold_placed"]
    await assert_stock_invariants(database, store)


async def test_losses_that_leave_reservations_covered_move_nothing(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await three_warehouses(client, (5, 2, 0))
    order = await store.place(("TEE-S", 3))
    # Two of the five are free: losing them, or counting what is there, leaves the order's three covered.
    await lose(store, "WH-1", -2)
    await lose(store, "WH-1", 3, kind="count", reason="checked")
    await run_shortfall(database, store)
    after = await order_of(store, order)
    assert (held(after), after["version"]) == ([("WH-1", 3)], order["version"])
    assert "stock_lost" not in {item["kind"] for item in await timeline_of(store, order["id"])}
    assert await stock_at(store, "TEE-S") == {"WH-1": (3, 3), "WH-2": (2, 0)}


async def test_a_shipment_racing_the_move_makes_it_choose_again(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await three_warehouses(client, (5, 0, 10))
    older = await store.place(("TEE-S", 3))
    newer = await store.place(("TEE-S", 2))
    await lose(store, "WH-1", -2)
    consumer = consumer_named(CONSUMER_NAME)
    tenant = await get_tenant_record(database, store.slug)
    [damage] = [
        event for event in await outbox_events(database, tenant.id) if event.payload.get("kind") == "damage"
    ]

    # The newer order ships one unit from WH-1 while the consumer waits for its lock: the
    # consumer chose it for 2 units and finds 1, so it gives up and the event comes again.
    async with database.tenant_session(await tenant_context(database, store)) as session:
        await ship_in(session, line_of(newer, "TEE-S")["id"], 1)
        moving = asyncio.create_task(deliver_event(database, consumer, damage))
        await wait_for_lock_waiters(database, 1)
    with pytest.raises(ShortfallChangedError, match=r"^1 unit\(s\) reserved at WH-1 are still not on hand"):
        await moving
    assert await stock_at(store, "TEE-S") == {"WH-1": (2, 4), "WH-3": (10, 0)}
    assert "stock_lost" not in {item["kind"] for item in await timeline_of(store, newer["id"])}

    # The retry takes the newer order's last unit there, then one of the older order's.
    assert await deliver_event(database, consumer, damage) is True
    assert await stock_at(store, "TEE-S") == {"WH-1": (2, 2), "WH-3": (10, 2)}
    assert sorted(held(await order_of(store, older))) == [("WH-1", 2), ("WH-3", 1)]
    assert held(await order_of(store, newer)) == [("WH-3", 1)]
    await assert_stock_invariants(database, store)


async def test_the_order_placed_last_gives_way_even_if_its_draft_was_written_first(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await three_warehouses(client, (4, 0, 5))
    draft = await store.place(("TEE-S", 2), draft=True)
    placed_first = await store.place(("TEE-S", 2))
    placed_last = await store.call("POST", f"/api/v1/orders/{draft['id']}/place", 200)

    await lose(store, "WH-1", -2)
    await run_shortfall(database, store)
    assert held(await order_of(store, placed_first)) == [("WH-1", 2)]
    assert held(await order_of(store, placed_last)) == [("WH-3", 2)]


async def test_each_loss_moves_what_it_took_under_its_own_name(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await three_warehouses(client, (3, 0, 5))
    older = await store.place(("TEE-S", 1))
    newer = await store.place(("TEE-S", 2))
    await lose(store, "WH-1", -2, reason="wet")
    await lose(store, "WH-1", -1, kind="correction", reason="miscounted")
    await run_shortfall(database, store)

    newer_lost = entry(await timeline_of(store, newer["id"]), "stock_lost")["changes"]
    older_lost = entry(await timeline_of(store, older["id"]), "stock_lost")["changes"]
    assert (newer_lost["quantity"], newer_lost["loss"]) == (2, "damage of 2 at WH-1: wet")
    assert (older_lost["quantity"], older_lost["loss"]) == (1, "correction of 1 at WH-1: miscounted")
    assert await stock_at(store, "TEE-S") == {"WH-1": (0, 0), "WH-3": (5, 3)}


async def test_a_fulfillment_order_left_with_nothing_is_cancelled_on_the_timeline(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await three_warehouses(client, (2, 0, 5))
    order = await store.place(("TEE-S", 2))
    [wh1] = (await release(store, order["id"]))["data"]
    await lose(store, "WH-1", -2)
    await run_shortfall(database, store)

    lost = entry(await timeline_of(store, order["id"]), "stock_lost")["changes"]
    assert lost["status_changes"] == [
        {"fulfillment_order_id": wh1["id"], "location": "WH-1", "status": {"old": "open", "new": "cancelled"}}
    ]
    assert [(item["location"], item["is_new"]) for item in lost["fulfillment_orders"]] == [("WH-3", True)]
    assert await stored_statuses(database, store, order["id"]) == ["cancelled", "open"]


async def test_a_second_loss_of_the_same_sku_adds_no_second_hold(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await three_warehouses(client, (4, 0, 0))
    order = await store.place(("TEE-S", 4))
    await lose(store, "WH-1", -1)
    await lose(store, "WH-1", -2, reason="torn")
    await run_shortfall(database, store)
    after = await order_of(store, order)
    assert (buckets(after, "TEE-S"), after["open_hold_count"], len(after["holds"])) == ((1, 3, 0, 0, 0), 1, 1)
    assert [item["kind"] for item in await timeline_of(store, order["id"])].count("stock_lost") == 2


async def test_orders_under_review_then_unreleased_ones_give_way_before_released_ones(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await three_warehouses(client, (4, 0, 5))
    under_review = await store.place(("TEE-S", 1), hold={"type": "fraud_review", "reason": "new customer"})
    released = await store.place(("TEE-S", 1))
    await release(store, released["id"])
    waiting = await store.place(("TEE-S", 1))
    newest_released = await store.place(("TEE-S", 1))
    await release(store, newest_released["id"])

    # Two units lost: the order under review, then the one not yet sent to the warehouse.
    await lose(store, "WH-1", -2)
    await run_shortfall(database, store)
    assert [
        held(await order_of(store, order)) for order in (under_review, released, waiting, newest_released)
    ] == [
        [("WH-3", 1)],
        [("WH-1", 1)],
        [("WH-3", 1)],
        [("WH-1", 1)],
    ]


async def test_two_lines_of_the_lost_sku_share_one_hold_that_counts_both(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await three_warehouses(client, (4, 0, 0))
    order = await store.place(("TEE-S", 2), ("TEE-S", 2))
    await lose(store, "WH-1", -4)
    await run_shortfall(database, store)
    [hold] = (await order_of(store, order))["holds"]
    assert hold["reason"].startswith(
        "TEE-S: 4 unit(s) this order held at WH-1 were lost (damage of 4 at WH-1"
    )


async def test_a_loss_under_more_orders_than_a_batch_goes_on_in_the_next_delivery(
    client: AsyncTestClient[Litestar], database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shortfall, "BATCH", 1)
    store = await three_warehouses(client, (2, 0, 5))
    first = await store.place(("TEE-S", 1))
    second = await store.place(("TEE-S", 1))
    await lose(store, "WH-1", -2)

    await run_shortfall(database, store)
    assert [held(await order_of(store, order)) for order in (first, second)] == [[("WH-1", 1)], [("WH-3", 1)]]
    # The rest of the loss went on in an event of its own, under the same name.
    await run_shortfall(database, store)
    assert held(await order_of(store, first)) == [("WH-3", 1)]
    lost = entry(await timeline_of(store, first["id"]), "stock_lost")["changes"]
    assert lost["loss"] == "damage of 2 at WH-1: forklift"
    assert await stock_at(store, "TEE-S") == {"WH-1": (0, 0), "WH-3": (5, 2)}


async def test_a_count_moves_every_unit_still_uncovered_at_the_location(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await three_warehouses(client, (4, 0, 5))
    order = await store.place(("TEE-S", 4))
    # A damage whose event was never handled (dead-lettered, say), then a count that finds 1.
    await lose(store, "WH-1", -3)
    tenant = await get_tenant_record(database, store.slug)
    consumer = consumer_named(CONSUMER_NAME)
    await lose(store, "WH-1", 1, kind="count", reason="recount")
    [count] = [
        event for event in await outbox_events(database, tenant.id) if event.payload.get("kind") == "count"
    ]
    assert count.payload["shortfall"] == 3
    assert await deliver_event(database, consumer, count) is True
    assert held(await order_of(store, order)) == [("WH-1", 1), ("WH-3", 3)]
    lost = entry(await timeline_of(store, order["id"]), "stock_lost")["changes"]
    assert (lost["quantity"], lost["loss"]) == (3, "count at WH-1 (1 on hand): recount")
