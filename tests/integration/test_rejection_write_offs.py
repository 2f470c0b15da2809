"""A rejection that writes its units off: they leave the location's count in the same transaction."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.models import OutboxEvent
from ordersmith.tenants.fulfillment import backorders, shortfall
from tests.support.fulfillment import (
    assert_stock_invariants,
    buckets,
    line_of,
    release,
    run_consumer,
    ship,
    stock_at,
)
from tests.support.order_actions import entry, events_of, timeline_of
from tests.support.orders import Store, open_store


async def two_location_store(client: AsyncTestClient[Litestar], wh1: int, wh2: int) -> Store:
    """TEE-S at WH-1 (tried first) and WH-2."""
    store = await open_store(client)
    await store.add_skus("TEE-S", price=1000)
    for code, priority, quantity in (("WH-1", 10, wh1), ("WH-2", 20, wh2)):
        await store.add_location(code, priority=priority)
        if quantity:
            await store.receive("TEE-S", code, quantity)
    return store


async def released_at_wh1(store: Store, quantity: int) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """An order of `quantity` TEE-S, its line id, and its fulfillment order at WH-1."""
    order = await store.place(("TEE-S", quantity))
    [wh1] = (await release(store, order["id"]))["data"]
    assert wh1["location_code"] == "WH-1"
    return order, line_of(order, "TEE-S")["id"], wh1


def reject_path(fulfillment_order: dict[str, Any]) -> str:
    return f"/api/v1/fulfillment-orders/{fulfillment_order['id']}/reject"


async def write_off(
    store: Store,
    fulfillment_order: dict[str, Any],
    line: str,
    quantity: int,
    reason: str,
    kind: str,
    *,
    expected: int = 200,
) -> dict[str, Any]:
    """Reject `quantity` units of a line at its fulfillment order, writing them off as `kind`."""
    body = {"line_id": line, "quantity": quantity, "reason": reason, "write_off": kind}
    result: dict[str, Any] = await store.call("POST", reject_path(fulfillment_order), expected, json=body)
    return result


async def ledger_at(store: Store, code: str) -> list[tuple[str, int, int, str, str | None, str]]:
    """TEE-S's ledger at a location, newest first: kind, quantity, on_hand after, reason, reference, actor."""
    body = await store.call("GET", "/api/v1/inventory/adjustments", 200, params={"sku": "TEE-S"})
    return [
        (
            row["kind"],
            row["quantity"],
            row["on_hand_after"],
            row["reason"],
            row["reference"],
            row["actor_type"],
        )
        for row in body["data"]
        if row["location_id"] == store.locations[code]
    ]


async def test_written_off_units_leave_the_count_and_are_rerouted(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await two_location_store(client, 5, 4)
    order, line, wh1 = await released_at_wh1(store, 3)

    result = await write_off(store, wh1, line, 2, "not on the shelf", "correction")
    assert (result["written_off"], result["backordered"], result["hold_id"]) == (2, 0, None)
    assert [(item["location"], item["quantity"]) for item in result["rerouted"]] == [("WH-2", 2)]
    # WH-1 counted 5 and held 3: 2 are gone from its count and its reservation, 1 stays reserved.
    assert await stock_at(store, "TEE-S") == {"WH-1": (3, 1), "WH-2": (4, 2)}
    reference = f"fulfillment_order:{wh1['id']}"
    [written, _received] = await ledger_at(store, "WH-1")
    assert written == (
        "correction",
        -2,
        3,
        f"rejected at WH-1 for order {order['number']}: not on the shelf",
        reference,
        "user",
    )
    await assert_stock_invariants(database, store)

    rejected = entry(await timeline_of(store, order["id"]), "fulfillment_line_rejected")["changes"]
    adjustment_id = rejected["written_off"].pop("adjustment_id")
    assert rejected["written_off"] == {"kind": "correction", "quantity": 2}
    ledger = await store.call("GET", "/api/v1/inventory/adjustments", 200, params={"sku": "TEE-S"})
    assert ledger["data"][0]["id"] == adjustment_id
    [event] = [
        payload for topic, payload in await events_of(database, order["id"]) if topic.endswith("rejected")
    ]
    assert event["written_off"] == {"kind": "correction", "quantity": 2, "adjustment_id": adjustment_id}
    # The rejected units' reservation went with them: the loss leaves no order short.
    adjusted = await adjustment_event(database, adjustment_id)
    assert (adjusted["kind"], adjusted["quantity"], adjusted["shortfall"]) == ("correction", -2, 0)


async def adjustment_event(database: Database, adjustment_id: str) -> dict[str, Any]:
    """The `inventory.adjusted` event of one ledger row."""
    async with database.platform_session() as session:
        payload: dict[str, Any] = (
            await session.scalars(
                select(OutboxEvent.payload).where(
                    OutboxEvent.topic == "inventory.adjusted",
                    OutboxEvent.payload["adjustment_id"].astext == adjustment_id,
                )
            )
        ).one()
        return payload


async def test_written_off_units_no_location_has_wait_under_a_hold_that_releases_itself(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await two_location_store(client, 4, 0)
    order, line, wh1 = await released_at_wh1(store, 4)

    result = await write_off(store, wh1, line, 3, "crushed in the rack", "damage")
    assert (result["written_off"], result["backordered"], result["rerouted"]) == (3, 3, [])
    assert await stock_at(store, "TEE-S") == {"WH-1": (1, 1)}
    assert (await ledger_at(store, "WH-1"))[0][:3] == ("damage", -3, 1)
    waiting = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert buckets(waiting, "TEE-S") == (1, 3, 0, 0, 0)
    [hold] = waiting["holds"]
    assert (hold["id"], hold["type"], hold["placed_by_type"]) == (result["hold_id"], "stock", "system")
    assert hold["reason"] == (
        "TEE-S: 3 unit(s) rejected at WH-1 (crushed in the rack) and written off, and no other location "
        "has them, so they are backordered. The hold is released by itself once stock arrives and they "
        "are reserved again; or cancel those units."
    )
    await assert_stock_invariants(database, store)

    # The count is right, so stock arriving is real: the filler reserves it and releases the hold.
    await store.receive("TEE-S", "WH-2", 5)
    await run_consumer(database, store, backorders.CONSUMER_NAME)
    filled = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (buckets(filled, "TEE-S"), filled["open_hold_count"]) == ((4, 0, 0, 0, 0), 0)
    assert sorted((item["location_code"], item["quantity"]) for item in filled["reservations"]) == [
        ("WH-1", 1),
        ("WH-2", 3),
    ]
    assert await stock_at(store, "TEE-S") == {"WH-1": (1, 1), "WH-2": (5, 3)}
    await assert_stock_invariants(database, store)


async def test_written_off_units_no_other_location_has_come_from_the_rejecting_shelfs_free_units(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await two_location_store(client, 5, 0)
    order, line, wh1 = await released_at_wh1(store, 2)

    result = await write_off(store, wh1, line, 1, "cracked", "damage")
    # WH-1 refused one broken unit, not its other stock: once its count is right, a good unit takes its place.
    assert (result["written_off"], result["backordered"], result["hold_id"]) == (1, 0, None)
    assert [(item["location"], item["quantity"]) for item in result["rerouted"]] == [("WH-1", 1)]
    assert [(item["location_code"], item["status"]) for item in result["fulfillment_orders"]] == [
        ("WH-1", "open")
    ]
    assert await stock_at(store, "TEE-S") == {"WH-1": (4, 2)}
    after = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (buckets(after, "TEE-S"), after["open_hold_count"]) == ((2, 0, 0, 0, 0), 0)
    rejected = entry(await timeline_of(store, order["id"]), "fulfillment_line_rejected")["changes"]
    assert [item["reason"] for item in rejected["rerouted"]] == [
        "WH-1 (priority 10) is the first location with all 1"
    ]
    [reservation] = after["reservations"]
    assert reservation["reason"] == (
        "taken from WH-1's other free units, the ones rejected there (cracked) written off: "
        "WH-1 (priority 10) is the first location with all 1"
    )
    await ship(store, wh1["id"], [(line, 2)])
    await run_consumer(database, store, shortfall.CONSUMER_NAME)
    await run_consumer(database, store, backorders.CONSUMER_NAME)
    assert await stock_at(store, "TEE-S") == {"WH-1": (2, 0)}
    await assert_stock_invariants(database, store)


async def test_a_write_off_leaves_other_orders_at_the_location_alone(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    # WH-1 counts 4: the released order holds 2 there, a second order the other 2.
    store = await two_location_store(client, 4, 3)
    _, line, wh1 = await released_at_wh1(store, 2)
    other = await store.place(("TEE-S", 2))
    assert [item["location_code"] for item in other["reservations"]] == ["WH-1"]

    result = await write_off(store, wh1, line, 2, "shelf empty", "correction")
    assert (result["written_off"], [(item["location"], item["quantity"]) for item in result["rerouted"]]) == (
        2,
        [("WH-2", 2)],
    )
    # The two units written off were the rejected order's: the other order's two are still counted.
    assert await stock_at(store, "TEE-S") == {"WH-1": (2, 2), "WH-2": (3, 2)}
    await run_consumer(database, store, shortfall.CONSUMER_NAME)
    kept = await store.call("GET", f"/api/v1/orders/{other['id']}", 200)
    assert [(item["location_code"], item["quantity"]) for item in kept["reservations"]] == [("WH-1", 2)]
    assert [item["kind"] for item in await timeline_of(store, other["id"])].count("stock_lost") == 0
    await assert_stock_invariants(database, store)


async def test_a_write_off_takes_no_more_than_the_location_counts(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await two_location_store(client, 3, 3)
    order, line, wh1 = await released_at_wh1(store, 3)
    # Someone already recorded two of the three as damaged; the worker has not moved the order yet.
    await store.call(
        "POST",
        "/api/v1/inventory/adjustments",
        201,
        json={
            "sku": "TEE-S",
            "location_id": store.locations["WH-1"],
            "kind": "damage",
            "quantity": -2,
            "reason": "water leak",
        },
    )
    result = await write_off(store, wh1, line, 3, "wet boxes", "damage")
    # Only the one unit still counted is written off; the two recorded before are not taken twice.
    assert (result["written_off"], result["backordered"]) == (1, 0)
    assert (await ledger_at(store, "WH-1"))[:2] == [
        (
            "damage",
            -1,
            0,
            f"rejected at WH-1 for order {order['number']}: wet boxes",
            f"fulfillment_order:{wh1['id']}",
            "user",
        ),
        ("damage", -2, 1, "water leak", None, "user"),
    ]
    assert await stock_at(store, "TEE-S") == {"WH-1": (0, 0), "WH-2": (3, 3)}
    # The earlier damage's shortfall finds nothing left to move: the order is whole at WH-2.
    await run_consumer(database, store, shortfall.CONSUMER_NAME)
    moved = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert [(item["location_code"], item["quantity"]) for item in moved["reservations"]] == [("WH-2", 3)]
    assert (buckets(moved, "TEE-S"), moved["open_hold_count"]) == ((3, 0, 0, 0, 0), 0)
    assert await stock_at(store, "TEE-S") == {"WH-1": (0, 0), "WH-2": (3, 3)}
    await assert_stock_invariants(database, store)


async def test_a_write_off_of_an_unknown_kind_is_refused_and_changes_nothing(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await two_location_store(client, 3, 3)
    order, line, wh1 = await released_at_wh1(store, 2)
    problem = await write_off(store, wh1, line, 1, "lost", "receive", expected=422)
    assert problem["errors"] == [
        {
            "field": "write_off",
            "message": "must be 'damage' (the units are broken) or 'correction' (they are not there), "
            "or left out to keep the location's count as it is",
        }
    ]
    assert await stock_at(store, "TEE-S") == {"WH-1": (3, 2), "WH-2": (3, 0)}
    assert [row[0] for row in await ledger_at(store, "WH-1")] == ["receive"]
    unchanged = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert [(item["location_code"], item["quantity"]) for item in unchanged["reservations"]] == [("WH-1", 2)]
