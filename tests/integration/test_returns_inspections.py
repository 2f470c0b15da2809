"""Units received for inspection are decided later: restocked through the ledger, or written off."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from tests.support.fulfillment import (
    assert_stock_invariants,
    buckets,
    line_of,
    shipped_order,
    split_store,
    stock_at,
)
from tests.support.order_actions import events_of, timeline_of


def decision(line_id: str, disposition: str, quantity: int, location_id: str | None = None) -> dict[str, Any]:
    item = {"return_line_id": line_id, "disposition": disposition, "quantity": quantity}
    return item | ({"location_id": location_id} if location_id else {})


async def test_units_held_for_inspection_are_restocked_or_written_off_once(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await split_store(client, price=1500)
    order = await shipped_order(store, ("TEE-S", 3))
    body = {"lines": [{"line_id": line_of(order, "TEE-S")["id"], "quantity": 3, "reason_code": "defective"}]}
    created = await store.call("POST", f"/api/v1/orders/{order['id']}/returns", 201, json=body)
    path = f"/api/v1/returns/{created['id']}"
    [line] = created["lines"]
    wh1, wh2 = store.locations["WH-1"], store.locations["WH-2"]
    nothing_held = await store.call(
        "POST", f"{path}/inspections", 409, json={"decisions": [decision(line["id"], "damaged", 1)]}
    )
    await store.call("POST", f"{path}/approve", 200)
    await store.call(
        "POST",
        f"{path}/receive",
        200,
        json={"dispositions": [decision(line["id"], "restock", 1, wh2), decision(line["id"], "inspect", 2)]},
    )
    await store.call("POST", f"{path}/close", 200)

    bad = await store.call(
        "POST",
        f"{path}/inspections",
        422,
        json={"decisions": [decision(line["id"], "missing", 1), decision(line["id"], "restock", 1)]},
    )
    no_id = await store.call(
        "POST", f"{path}/inspections", 422, json={"decisions": [decision(line["id"], "restock", 1, "WH-1")]}
    )
    stranger = str(uuid.uuid4())
    unknown = await store.call(
        "POST",
        f"{path}/inspections",
        422,
        json={
            "decisions": [decision(line["id"], "damaged", 1), decision(line["id"], "restock", 1, stranger)]
        },
    )
    too_many = await store.call(
        "POST",
        f"{path}/inspections",
        409,
        json={"decisions": [decision(line["id"], "restock", 2, wh1), decision(line["id"], "damaged", 1)]},
    )
    decided = await store.call(
        "POST",
        f"{path}/inspections",
        201,
        json={"decisions": [decision(line["id"], "restock", 1, wh1), decision(line["id"], "damaged", 1)]},
    )
    again = await store.call(
        "POST", f"{path}/inspections", 409, json={"decisions": [decision(line["id"], "damaged", 1)]}
    )

    assert (nothing_held["code"], nothing_held["lines"][0]["under_inspection"]) == (
        "quantity_not_under_inspection",
        0,
    )
    assert bad["errors"] == [
        {"field": "decisions[0].disposition", "message": "must be one of restock, damaged"},
        {"field": "decisions[1].location_id", "message": "restocked units go to a location: give its id"},
    ]
    assert no_id["errors"] == [
        {
            "field": "decisions[0].location_id",
            "message": "is not a location id; use an id from GET /api/v1/locations",
        }
    ]
    assert unknown["errors"] == [
        {"field": "decisions[1].location_id", "message": f"no such location in this store: {stranger}"}
    ]
    assert (too_many["code"], too_many["detail"]) == (
        "quantity_not_under_inspection",
        "return line 1 (TEE-S): 3 decided, 2 under inspection; only units received with disposition inspect "
        "and not decided yet can be restocked or written off",
    )
    assert again["lines"][0] | {"return_line_id": None} == {
        "return_line_id": None,
        "sku": "TEE-S",
        "decided": 1,
        "under_inspection": 0,
    }
    assert (decided["status"], decided["lines"][0]["dispositions"]) == (
        "closed",
        {"restock": 2, "damaged": 1},
    )
    assert [(item["disposition"], item["quantity"]) for item in decided["dispositions"]] == [
        ("restock", 1),
        ("inspect", 2),
        ("restock", 1),
        ("damaged", 1),
    ]
    # Shipped from WH-1 (10 - 3): one unit back on WH-2's shelf at receipt, one on WH-1's now.
    assert await stock_at(store, "TEE-S") == {"WH-1": (8, 0), "WH-2": (1, 0)}
    await assert_stock_invariants(database, store)
    # All three were counted returned at receipt; deciding them does not count them again.
    after = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert buckets(after, "TEE-S") == (0, 0, 3, 0, 3)
    [entry] = [item for item in await timeline_of(store, order["id"]) if item["kind"] == "return_inspected"]
    assert entry["changes"]["decisions"] == [
        {"line_number": 1, "sku": "TEE-S", "disposition": "restock", "quantity": 1, "location": "WH-1"},
        {"line_number": 1, "sku": "TEE-S", "disposition": "damaged", "quantity": 1, "location": None},
    ]
    topics = [topic for topic, _ in await events_of(database, order["id"])]
    assert topics.count("return.inspected") == 1
