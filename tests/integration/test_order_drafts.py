"""Draft orders: written down holding no stock, replaced whole, then placed like a new order."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from tests.support.order_actions import events_of, timeline_of
from tests.support.order_edits import add, preview, reserved_matches_reservations
from tests.support.orders import Store, open_store, two_sku_store


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    store = await two_sku_store(client, price=1500)
    await store.receive("TEE-S", "WH-1", 2)
    await store.receive("TEE-S", "WH-2", 5)
    await store.receive("TEE-M", "WH-2", 1)
    return store


async def _draft(store: Store, *lines: tuple[str, int]) -> dict[str, Any]:
    body: dict[str, Any] = await store.call(
        "POST", "/api/v1/orders", 201, json=store.order_body(*lines, draft=True)
    )
    return body


def _buckets(order: dict[str, Any]) -> list[tuple[str, int, int, int, int]]:
    """(sku, ordered, pending, allocated, backordered) per line."""
    return [
        (
            line["sku"],
            line["quantity_ordered"],
            line["quantity_pending"],
            line["quantity_allocated"],
            line["quantity_backordered"],
        )
        for line in order["lines"]
    ]


async def _reserved(store: Store, sku: str) -> dict[str, int]:
    return {item["location_code"]: item["reserved"] for item in (await store.stock(sku))["locations"]}


async def test_a_draft_holds_no_stock_until_it_is_placed_like_a_new_order(
    store: Store, database: Database
) -> None:
    draft = await _draft(store, ("TEE-S", 3), ("TEE-M", 1))
    assert (draft["status"], draft["placed_at"], draft["total_amount"], draft["touch_count"]) == (
        "draft",
        None,
        6000,
        1,
    )
    assert _buckets(draft) == [("TEE-S", 3, 3, 0, 0), ("TEE-M", 1, 1, 0, 0)]
    assert draft["reservations"] == []
    assert await _reserved(store, "TEE-S") == {"WH-1": 0, "WH-2": 0}
    # Another order can still have every unit the draft names.
    other = await store.place(("TEE-M", 1))
    assert other["status"] == "confirmed"
    await store.call("POST", f"/api/v1/orders/{other['id']}/cancel", 200, json={"reason": "test"})

    placed = await store.call("POST", f"/api/v1/orders/{draft['id']}/place", 200)
    assert (placed["status"], placed["version"], placed["touch_count"]) == ("confirmed", 2, 2)
    # Placed and confirmed in the same moment, a moment after the draft was written.
    assert placed["placed_at"] == placed["confirmed_at"] > draft["created_at"]
    assert _buckets(placed) == [("TEE-S", 3, 0, 3, 0), ("TEE-M", 1, 0, 1, 0)]
    # One location for the whole order, as placement plans it.
    assert sorted((item["location_code"], item["quantity"]) for item in placed["reservations"]) == [
        ("WH-2", 1),
        ("WH-2", 3),
    ]
    assert await _reserved(store, "TEE-S") == {"WH-1": 0, "WH-2": 3}
    assert await reserved_matches_reservations(database, store)
    kinds = [entry["kind"] for entry in await timeline_of(store, draft["id"])]
    assert kinds == ["drafted", "placed", "confirmed"]
    events = dict(await events_of(database, draft["id"]))
    assert sorted(events) == ["order.confirmed", "order.drafted", "order.placed"]
    assert events["order.placed"]["lines"] == [
        {"sku": "TEE-S", "quantity": 3},
        {"sku": "TEE-M", "quantity": 1},
    ]
    assert events["order.placed"]["total_amount"] == 6000
    # Every order event carries the number, however the order was placed.
    assert {topic: payload["number"] for topic, payload in events.items()} == dict.fromkeys(
        events, draft["number"]
    )

    again = await store.call("POST", f"/api/v1/orders/{draft['id']}/place", 409)
    assert (again["code"], again["current_status"]) == ("invalid_transition", "confirmed")
    replaced = await store.call(
        "PUT", f"/api/v1/orders/{draft['id']}/draft", 409, json=store.order_body(("TEE-S", 1))
    )
    assert replaced["code"] == "order_not_draft"


async def test_a_draft_is_replaced_whole_and_checked_against_its_version(store: Store) -> None:
    draft = await _draft(store, ("TEE-S", 1))
    body = store.order_body(
        ("TEE-M", 1),
        ("TEE-S", 2),
        channel="phone",
        tags=["Gift"],
        external_reference="PO-7",
        expected_version=1,
    )
    replaced = await store.call("PUT", f"/api/v1/orders/{draft['id']}/draft", 200, json=body)
    assert (replaced["version"], replaced["channel"], replaced["total_amount"]) == (2, "phone", 4500)
    assert _buckets(replaced) == [("TEE-M", 1, 1, 0, 0), ("TEE-S", 2, 2, 0, 0)]
    stale = await store.call("PUT", f"/api/v1/orders/{draft['id']}/draft", 409, json=body)
    assert (stale["code"], stale["current_version"]) == ("order_changed", 2)
    wrong = await store.call(
        "PUT", f"/api/v1/orders/{draft['id']}/draft", 422, json=store.order_body(("NOPE", 1))
    )
    assert wrong["errors"] == [{"field": "lines[0].sku", "message": "no SKU 'NOPE' in this store"}]
    [entry] = [entry for entry in await timeline_of(store, draft["id"]) if entry["kind"] == "draft_changed"]
    # What the replacement changed, field by field; the address and customer stayed.
    assert {name: value for name, value in entry["changes"].items() if name != "lines"} == {
        "version": {"old": 1, "new": 2},
        "total_amount": {"old": 1500, "new": 4500},
        "channel": {"old": "api", "new": "phone"},
        "tags": {"old": [], "new": ["Gift"]},
        "external_reference": {"old": None, "new": "PO-7"},
    }
    # Drafts change by replacement; the edit flow is for placed orders.
    edit = await preview(store, draft["id"], add("TEE-S", 1), expected=409)
    assert edit["code"] == "order_not_editable"
    assert "PUT /api/v1/orders/{id}/draft" in edit["detail"]


async def test_placing_a_draft_short_of_stock_changes_nothing(store: Store, database: Database) -> None:
    draft = await _draft(store, ("TEE-S", 3), ("TEE-M", 2))
    short = await store.call("POST", f"/api/v1/orders/{draft['id']}/place", 409)
    assert short["code"] == "insufficient_stock"
    assert short["shortfalls"] == [{"sku": "TEE-M", "requested": 2, "available": 1}]
    after = await store.call("GET", f"/api/v1/orders/{draft['id']}", 200)
    assert (after["status"], _buckets(after)) == ("draft", _buckets(draft))
    assert await _reserved(store, "TEE-M") == {"WH-2": 0}
    assert [topic for topic, _ in await events_of(database, draft["id"])] == ["order.drafted"]


async def test_a_draft_is_placed_by_its_skus_even_after_their_codes_changed(store: Store) -> None:
    draft = await _draft(store, ("TEE-S", 3))
    # TEE-S is renamed, and its old code goes to a new SKU with no stock: the draft keeps
    # the SKU it was written with, under whatever code that SKU has now.
    tee_s = (await store.stock("TEE-S"))["variant_id"]
    await store.call("PATCH", f"/api/v1/variants/{tee_s}", 200, json={"sku_code": "TEE-S-OLD"})
    await store.add_skus("TEE-S")
    placed = await store.call("POST", f"/api/v1/orders/{draft['id']}/place", 200)
    assert (placed["status"], _buckets(placed)) == ("confirmed", [("TEE-S", 3, 0, 3, 0)])
    assert await _reserved(store, "TEE-S-OLD") == {"WH-1": 0, "WH-2": 3}
    assert await _reserved(store, "TEE-S") == {}


async def test_a_draft_of_a_product_switched_off_is_not_placed(store: Store) -> None:
    draft = await _draft(store, ("TEE-M", 1))
    product_id = (
        await store.call("GET", f"/api/v1/variants/{(await store.stock('TEE-M'))['variant_id']}", 200)
    )["product_id"]
    await store.call("PATCH", f"/api/v1/products/{product_id}", 200, json={"is_active": False})
    problem = await store.call("POST", f"/api/v1/orders/{draft['id']}/place", 422)
    assert problem["errors"] == [{"field": "lines[0].sku", "message": "TEE-M is no longer for sale"}]
    problem = await store.place(("TEE-M", 1), expected=422)
    assert problem["errors"] == [{"field": "lines[0].sku", "message": "TEE-M is not for sale (inactive)"}]
    assert await _reserved(store, "TEE-M") == {"WH-2": 0}


async def test_a_held_draft_is_placed_but_not_confirmed_and_a_cancelled_one_releases_nothing(
    store: Store,
) -> None:
    held = await _draft(store, ("TEE-S", 1))
    await store.call(
        "POST", f"/api/v1/orders/{held['id']}/hold", 201, json={"type": "manual", "reason": "call back first"}
    )
    placed = await store.call("POST", f"/api/v1/orders/{held['id']}/place", 200)
    assert (placed["status"], placed["open_hold_count"]) == ("placed", 1)

    dropped = await _draft(store, ("TEE-S", 2))
    cancelled = await store.call(
        "POST", f"/api/v1/orders/{dropped['id']}/cancel", 200, json={"reason": "customer changed their mind"}
    )
    assert cancelled["status"] == "cancelled"
    assert [(line["quantity_pending"], line["quantity_cancelled"]) for line in cancelled["lines"]] == [(0, 2)]
    assert await _reserved(store, "TEE-S") == {"WH-1": 1, "WH-2": 0}


async def test_another_store_cannot_replace_or_place_a_draft(
    store: Store, client: AsyncTestClient[Litestar]
) -> None:
    draft = await _draft(store, ("TEE-S", 1))
    other = await open_store(client)
    path = f"/api/v1/orders/{draft['id']}"
    assert (await other.call("POST", f"{path}/place", 404))["code"] == "order_not_found"
    refused = await other.call("PUT", f"{path}/draft", 404, json=other.order_body(("TEE-S", 1)))
    assert refused["code"] == "order_not_found"
    assert (await store.call("GET", path, 200))["status"] == "draft"
