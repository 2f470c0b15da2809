"""Edits after placement move stock reservations with them: split, release, never oversell."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.tenancy import get_tenant_record
from ordersmith.tenants.inventory.errors import InsufficientStockError
from ordersmith.tenants.orders.edit_requests import AddLine, EditRequest, SetQuantity
from ordersmith.tenants.orders.edits import edit_order
from tests.support.order_edits import (
    add,
    commit,
    edited_events,
    held,
    line_buckets,
    preview,
    remove,
    reserved_matches_reservations,
    set_quantity,
    stock_at_locations,
    timeline_kinds,
)
from tests.support.orders import Store, two_sku_store


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    return await two_sku_store(client, price=1999)


async def test_more_units_split_across_locations_and_fewer_release_exactly(
    store: Store, database: Database
) -> None:
    await store.receive("TEE-S", "WH-1", 3)
    await store.receive("TEE-S", "WH-2", 3)
    order = await store.place(("TEE-S", 2))
    line = order["lines"][0]["id"]

    grown = await commit(store, order["id"], set_quantity(line, 6))

    assert [
        (item["location_code"], item["reserved"], item["released"], item["reason"])
        for item in grown["edit"]["stock"][0]["locations"]
    ] == [
        ("WH-1", 1, 0, "no location has all 4; WH-1 (priority 10) gives the 1 it has"),
        ("WH-2", 3, 0, "no location has all 4; WH-2 (priority 20) gives the 3 it has"),
    ]
    # The line's units at WH-1 stay one reservation, whose reason covers all three.
    assert [(r["location_code"], r["quantity"], r["reason"]) for r in grown["order"]["reservations"]] == [
        (
            "WH-1",
            3,
            "2 held here before; 1 more: no location has all 4; WH-1 (priority 10) gives the 1 it has",
        ),
        ("WH-2", 3, "no location has all 4; WH-2 (priority 20) gives the 3 it has"),
    ]
    assert line_buckets(grown["order"]) == [("TEE-S", 6, 0, 6, 0, 0)]
    assert await stock_at_locations(store, "TEE-S") == [("WH-1", 3, 3, 0), ("WH-2", 3, 3, 0)]

    shrunk = await commit(store, order["id"], set_quantity(line, 1))

    # Given back last-chosen location first: all 3 at WH-2, then 2 of the 3 at WH-1.
    assert shrunk["edit"]["stock"] == [
        {
            "sku": "TEE-S",
            "variant_id": order["lines"][0]["variant_id"],
            "reserved": 0,
            "released": 5,
            "backordered_change": 0,
            "locations": [
                {
                    "location_id": store.locations["WH-1"],
                    "location_code": "WH-1",
                    "reserved": 0,
                    "released": 2,
                    "reason": None,
                },
                {
                    "location_id": store.locations["WH-2"],
                    "location_code": "WH-2",
                    "reserved": 0,
                    "released": 3,
                    "reason": None,
                },
            ],
        }
    ]
    assert line_buckets(shrunk["order"]) == [("TEE-S", 1, 0, 1, 0, 0)]
    assert held(shrunk["order"]) == [(1, "WH-1", 1)]
    assert await stock_at_locations(store, "TEE-S") == [("WH-1", 3, 1, 2), ("WH-2", 3, 0, 3)]
    assert (shrunk["order"]["version"], shrunk["order"]["total_amount"]) == (3, 1999)
    assert await reserved_matches_reservations(database, store)


async def test_fewer_units_drop_backorders_before_reserved_units(store: Store) -> None:
    await store.add_skus("MUG", price=800, allow_backorder=True)
    await store.receive("MUG", "WH-2", 2)
    order = await store.place(("MUG", 5))
    line = order["lines"][0]["id"]

    fewer = await commit(store, order["id"], set_quantity(line, 3))
    assert line_buckets(fewer["order"]) == [("MUG", 3, 0, 2, 1, 0)]
    assert [
        (s["reserved"], s["released"], s["backordered_change"], s["locations"])
        for s in fewer["edit"]["stock"]
    ] == [(0, 0, -2, [])]
    assert await stock_at_locations(store, "MUG") == [("WH-2", 2, 2, 0)]

    fewest = await commit(store, order["id"], set_quantity(line, 1))
    assert line_buckets(fewest["order"]) == [("MUG", 1, 0, 1, 0, 0)]
    assert [(s["reserved"], s["released"], s["backordered_change"]) for s in fewest["edit"]["stock"]] == [
        (0, 1, -1)
    ]
    assert await stock_at_locations(store, "MUG") == [("WH-2", 2, 1, 1)]


async def test_units_a_line_gives_back_serve_a_new_line_of_the_same_sku(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 4)
    order = await store.place(("TEE-S", 2))

    done = await commit(store, order["id"], remove(order["lines"][0]["id"]), add("TEE-S", 4))

    assert line_buckets(done["order"]) == [("TEE-S", 2, 2, 0, 0, 0), ("TEE-S", 4, 0, 4, 0, 0)]
    assert held(done["order"]) == [(2, "WH-1", 4)]
    assert [(s["reserved"], s["released"]) for s in done["edit"]["stock"]] == [(4, 2)]
    assert await stock_at_locations(store, "TEE-S") == [("WH-1", 4, 4, 0)]


async def test_short_stock_is_409_and_the_edit_changes_nothing(store: Store, database: Database) -> None:
    await store.receive("TEE-S", "WH-1", 3)
    await store.receive("TEE-M", "WH-1", 2)
    order = await store.place(("TEE-S", 2), ("TEE-M", 1))
    changes = (set_quantity(order["lines"][0]["id"], 1), add("TEE-M", 2))

    for attempt in (preview, commit):
        problem = await attempt(store, order["id"], *changes, expected=409)
        assert problem["code"] == "insufficient_stock"
        assert problem["shortfalls"] == [{"sku": "TEE-M", "requested": 2, "available": 1}]

    assert await store.call("GET", f"/api/v1/orders/{order['id']}", 200) == order
    assert await stock_at_locations(store, "TEE-S") == [("WH-1", 3, 2, 1)]
    assert await stock_at_locations(store, "TEE-M") == [("WH-1", 2, 1, 1)]
    assert await timeline_kinds(store, order["id"]) == ["confirmed", "placed"]
    assert await edited_events(database, order["id"]) == []
    assert await reserved_matches_reservations(database, store)


async def test_concurrent_edits_moving_stock_both_ways_never_deadlock_nor_oversell(
    store: Store, database: Database
) -> None:
    await store.receive("TEE-S", "WH-1", 30)
    await store.receive("TEE-M", "WH-1", 30)
    orders = [await store.place(("TEE-S", 2), ("TEE-M", 2)) for _ in range(10)]
    context = (await get_tenant_record(database, store.slug)).context
    start = asyncio.Event()

    async def edit(order: dict[str, Any], *changes: AddLine | SetQuantity) -> str:
        await start.wait()
        try:
            async with database.tenant_session(context) as session:
                await edit_order(context, session, uuid.UUID(order["id"]), EditRequest(changes), actor=SYSTEM)
                # Hold the locks a moment longer, so that the transactions overlap.
                await asyncio.sleep(0.005)
        except InsufficientStockError:
            return "insufficient_stock"
        return "edited"

    # Half give back TEE-S and take more TEE-M, half the other way round: opposite lock needs.
    tasks = [
        asyncio.create_task(
            edit(order, SetQuantity(order["lines"][0]["id"], 1), AddLine("TEE-M", 2))
            if index % 2
            else edit(order, SetQuantity(order["lines"][1]["id"], 1), AddLine("TEE-S", 2))
        )
        for index, order in enumerate(orders)
    ]
    start.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert [repr(outcome) for outcome in outcomes if isinstance(outcome, BaseException)] == []
    assert Counter(outcomes) == {"edited": 10}
    # 20 placed, 5 given back, 10 taken, per SKU.
    assert await stock_at_locations(store, "TEE-S") == [("WH-1", 30, 25, 5)]
    assert await stock_at_locations(store, "TEE-M") == [("WH-1", 30, 25, 5)]

    # 12 edits race for the last 5 units of TEE-S: exactly 5 get one.
    start.clear()
    tasks = [asyncio.create_task(edit(orders[index % 10], AddLine("TEE-S", 1))) for index in range(12)]
    start.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert [repr(outcome) for outcome in outcomes if isinstance(outcome, BaseException)] == []
    assert Counter(outcomes) == {"edited": 5, "insufficient_stock": 7}
    assert await stock_at_locations(store, "TEE-S") == [("WH-1", 30, 30, 0)]
    assert await reserved_matches_reservations(database, store)
