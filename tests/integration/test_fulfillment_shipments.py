"""Fulfillment over HTTP: release per location, split shipments, what may not ship, delivery."""

from __future__ import annotations

import datetime as dt

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from tests.support.fulfillment import (
    assert_stock_invariants,
    buckets,
    by_location,
    line_of,
    release,
    ship,
    split_store,
    stock_at,
    stored_statuses,
)
from tests.support.order_actions import events_of, steps, timeline_of
from tests.support.orders import Store


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    return await split_store(client, price=1500)


async def test_an_order_ships_from_two_locations_in_split_shipments(store: Store, database: Database) -> None:
    order = await store.place(("TEE-S", 3), ("TEE-M", 2))
    tee_s, tee_m = line_of(order, "TEE-S")["id"], line_of(order, "TEE-M")["id"]
    released = (await release(store, order["id"]))["data"]
    places = by_location(released)
    assert sorted(places) == ["WH-1", "WH-2"]
    wh1, wh2 = places["WH-1"], places["WH-2"]
    assert (wh1["status"], wh1["order_number"]) == ("open", order["number"])
    assert [(line["sku"], line["quantity_reserved"], line["quantity_shipped"]) for line in wh1["lines"]] == [
        ("TEE-S", 3, 0)
    ]
    assert [(line["sku"], line["quantity_reserved"]) for line in wh2["lines"]] == [("TEE-M", 2)]

    first = await ship(store, wh1["id"], [(tee_s, 2)], packages=[{"weight_grams": 800}])
    assert (first["status"], first["carrier"], first["service"]) == ("shipped", "DHL", "express")
    assert (first["tracking_number"], first["tracking_url"]) == ("JD0001", "https://track.example/JD0001")
    assert (first["location_code"], first["fulfillment_order_id"]) == ("WH-1", wh1["id"])
    assert [(line["sku"], line["quantity"]) for line in first["lines"]] == [("TEE-S", 2)]
    assert [(p["position"], p["weight_grams"], p["length_mm"]) for p in first["packages"]] == [(1, 800, None)]
    after_first = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert after_first["fulfillment_status"] == "partially_fulfilled"
    assert buckets(after_first, "TEE-S") == (1, 0, 2, 0, 0)
    assert await stock_at(store, "TEE-S") == {"WH-1": (8, 1)}
    wh1_now = await store.call("GET", f"/api/v1/fulfillment-orders/{wh1['id']}", 200)
    assert wh1_now["status"] == "in_progress"
    assert [(line["quantity_reserved"], line["quantity_shipped"]) for line in wh1_now["lines"]] == [(1, 2)]

    await ship(store, wh1["id"], [(tee_s, 1)])
    second_place = await ship(
        store,
        wh2["id"],
        [(tee_m, 2)],
        tracking_number="UPS-9",
        packages=[{"weight_grams": 400, "length_mm": 300, "width_mm": 200, "height_mm": 100}, {}],
    )
    assert [(p["position"], p["height_mm"]) for p in second_place["packages"]] == [(1, 100), (2, None)]

    done = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert done["fulfillment_status"] == "fulfilled"
    assert (buckets(done, "TEE-S"), buckets(done, "TEE-M")) == ((0, 0, 3, 0, 0), (0, 0, 2, 0, 0))
    assert done["reservations"] == []
    assert (await stock_at(store, "TEE-S"), await stock_at(store, "TEE-M")) == (
        {"WH-1": (7, 0)},
        {"WH-2": (8, 0)},
    )
    await assert_stock_invariants(database, store)
    final = by_location(
        (await store.call("GET", f"/api/v1/orders/{order['id']}/fulfillment-orders", 200))["data"]
    )
    assert (final["WH-1"]["status"], final["WH-2"]["status"]) == ("closed", "closed")
    assert final["WH-1"]["closed_at"] is not None

    shipments = (await store.call("GET", f"/api/v1/orders/{order['id']}/shipments", 200))["data"]
    assert [
        (item["location_code"], item["tracking_number"], [line["quantity"] for line in item["lines"]])
        for item in shipments
    ] == [("WH-1", "JD0001", [2]), ("WH-1", "JD0001", [1]), ("WH-2", "UPS-9", [2])]

    entries = await timeline_of(store, order["id"])
    assert steps(entries)[-4:] == [
        ["released_to_fulfillment"],
        ["shipment_created"],
        ["shipment_created"],
        ["shipment_created"],
    ]
    first_entry = entries[-3]["changes"]
    assert first_entry["lines"] == [
        {
            "line_id": tee_s,
            "line_number": 1,
            "sku": "TEE-S",
            "quantity": 2,
            "quantity_shipped": {"old": 0, "new": 2},
        }
    ]
    assert first_entry["fulfillment_status"] == {"old": "unfulfilled", "new": "partially_fulfilled"}
    assert first_entry["status_changes"] == [
        {
            "fulfillment_order_id": wh1["id"],
            "location": "WH-1",
            "status": {"old": "open", "new": "in_progress"},
        }
    ]
    assert entries[-1]["changes"]["fulfillment_status"] == {"old": "partially_fulfilled", "new": "fulfilled"}
    # Placed, released and shipped three times by a person: five touches.
    assert done["touch_count"] == 5
    topics = [topic for topic, _ in await events_of(database, order["id"])]
    assert topics.count("fulfillment_order.created") == 2
    assert topics.count("shipment.created") == 3
    shipped_events = [
        payload for topic, payload in await events_of(database, order["id"]) if topic == "shipment.created"
    ]
    assert shipped_events[0] == {
        "order_id": order["id"],
        "number": order["number"],
        "shipment_id": first["id"],
        "fulfillment_order_id": wh1["id"],
        "location_id": store.locations["WH-1"],
        "carrier": "DHL",
        "tracking_number": "JD0001",
        "tracking_url": "https://track.example/JD0001",
        "lines": [{"line_id": tee_s, "sku": "TEE-S", "quantity": 2}],
        "amount": 3000,
        "currency": "EUR",
    }


async def test_a_hold_blocks_release_and_releasing_twice_changes_nothing(
    store: Store, database: Database
) -> None:
    order = await store.place(("TEE-S", 1), hold={"type": "fraud_review", "reason": "new customer"})
    hold = order["holds"][0]
    problem = await release(store, order["id"], expected=409)
    assert problem["code"] == "order_on_hold"
    assert problem["holds"] == [{"id": hold["id"], "type": "fraud_review", "reason": "new customer"}]
    assert "fraud_review hold" in problem["detail"]
    assert (await store.call("GET", f"/api/v1/orders/{order['id']}/fulfillment-orders", 200))["data"] == []

    await store.call("POST", f"/api/v1/orders/{order['id']}/holds/{hold['id']}/release", 200)
    first = (await release(store, order["id"]))["data"]
    again = (await release(store, order["id"]))["data"]
    assert again == first
    assert [item["location_code"] for item in first] == ["WH-1"]
    kinds = [entry["kind"] for entry in await timeline_of(store, order["id"])]
    assert kinds.count("released_to_fulfillment") == 1

    # A hold placed after release puts the location's work on hold, and stops shipping.
    await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/hold",
        201,
        json={"type": "address", "reason": "no flat number"},
    )
    held = await store.call("GET", f"/api/v1/fulfillment-orders/{first[0]['id']}", 200)
    assert held["status"] == "on_hold"
    problem = await ship(store, first[0]["id"], [(line_of(order, "TEE-S")["id"], 1)], expected=409)
    assert (problem["code"], problem["holds"][0]["type"]) == ("order_on_hold", "address")
    # Stored with the hold, not only derived on reading, and on the hold's timeline entry.
    assert await stored_statuses(database, store, order["id"]) == ["on_hold"]
    moved = [
        {
            "fulfillment_order_id": first[0]["id"],
            "location": "WH-1",
            "status": {"old": "open", "new": "on_hold"},
        }
    ]
    entries = await timeline_of(store, order["id"])
    assert [
        item["changes"].get("fulfillment_orders") for item in entries if item["kind"] == "hold_placed"
    ] == [
        None,
        moved,
    ]

    # Releasing it opens the fulfillment order again, stored and recorded the same way.
    address_hold = (await store.call("GET", f"/api/v1/orders/{order['id']}", 200))["holds"][1]["id"]
    await store.call("POST", f"/api/v1/orders/{order['id']}/holds/{address_hold}/release", 200)
    assert await stored_statuses(database, store, order["id"]) == ["open"]
    released = [item for item in await timeline_of(store, order["id"]) if item["kind"] == "hold_released"][-1]
    assert released["changes"]["fulfillment_orders"] == [
        {
            "fulfillment_order_id": first[0]["id"],
            "location": "WH-1",
            "status": {"old": "on_hold", "new": "open"},
        }
    ]


async def test_a_shipment_never_exceeds_what_the_location_holds(store: Store, database: Database) -> None:
    order = await store.place(("TEE-S", 2), ("TEE-M", 1))
    tee_s, tee_m = line_of(order, "TEE-S")["id"], line_of(order, "TEE-M")["id"]
    places = by_location((await release(store, order["id"]))["data"])
    before = (await stock_at(store, "TEE-S"), await stock_at(store, "TEE-M"))

    # One line named in two spellings is one line named twice, however few units each asks.
    twice = await ship(store, places["WH-1"]["id"], [(tee_s, 1), (tee_s.upper(), 1)], expected=422)
    assert twice["errors"] == [
        {"field": "lines[1].line_id", "message": "this line is named twice; name it once"}
    ]
    too_many = await ship(store, places["WH-1"]["id"], [(tee_s, 3)], expected=409)
    assert too_many["code"] == "quantity_exceeds_reserved"
    assert too_many["lines"] == [
        {
            "line_id": tee_s,
            "line_number": 1,
            "sku": "TEE-S",
            "requested": 3,
            "reserved": 2,
            "location": "WH-1",
            "quantity_cancelled": 0,
            "quantity_shipped": 0,
        }
    ]
    elsewhere = await ship(store, places["WH-1"]["id"], [(tee_s, 1), (tee_m, 1)], expected=409)
    assert elsewhere["code"] == "not_reserved"
    assert [(item["sku"], item["reserved"]) for item in elsewhere["lines"]] == [("TEE-M", 0)]

    # A cancelled line holds nothing anywhere: its units cannot ship, and WH-2, left with
    # nothing to ship, is cancelled.
    await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/cancel",
        200,
        json={"reason": "customer changed mind", "lines": [{"line_id": tee_m, "quantity": 1}]},
    )
    cancelled = await ship(store, places["WH-2"]["id"], [(tee_m, 1)], expected=409)
    assert cancelled["code"] == "fulfillment_order_closed"
    at_wh2 = await store.call("GET", f"/api/v1/fulfillment-orders/{places['WH-2']['id']}", 200)
    # Stored as cancelled by the cancellation itself, with its time, not on some later change.
    assert (at_wh2["status"], at_wh2["cancelled_at"] is not None) == ("cancelled", True)
    cut = [entry for entry in await timeline_of(store, order["id"]) if entry["kind"] == "lines_cancelled"]
    assert cut[-1]["changes"]["fulfillment_orders"] == [
        {
            "fulfillment_order_id": places["WH-2"]["id"],
            "location": "WH-2",
            "status": {"old": "open", "new": "cancelled"},
        }
    ]
    # The cancellation of one unit of TEE-S after release leaves one to ship: two is too many.
    await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/cancel",
        200,
        json={"reason": "one is enough", "lines": [{"line_id": tee_s, "quantity": 1}]},
    )
    raced = await ship(store, places["WH-1"]["id"], [(tee_s, 2)], expected=409)
    assert (raced["code"], raced["lines"][0]["reserved"]) == ("quantity_exceeds_reserved", 1)

    unknown = await ship(store, places["WH-1"]["id"], [("nope", 1)], expected=422)
    assert [error["field"] for error in unknown["errors"]] == ["lines[0].line_id"]
    bad = await ship(
        store, places["WH-1"]["id"], [(tee_s, 0)], expected=422, carrier=" ", tracking_url="ftp://x"
    )
    assert sorted(error["field"] for error in bad["errors"]) == [
        "carrier",
        "lines[0].quantity",
        "tracking_url",
    ]

    after = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (buckets(after, "TEE-S"), after["fulfillment_status"]) == ((1, 0, 0, 1, 0), "unfulfilled")
    assert (await stock_at(store, "TEE-S"))["WH-1"] == (before[0]["WH-1"][0], 1)
    assert (await store.call("GET", f"/api/v1/orders/{order['id']}/shipments", 200))["data"] == []
    await assert_stock_invariants(database, store)


async def test_only_a_confirmed_order_is_released(store: Store) -> None:
    order = await store.place(("TEE-S", 1))
    await store.call("POST", f"/api/v1/orders/{order['id']}/cancel", 200, json={"reason": "test"})
    problem = await release(store, order["id"], expected=409)
    assert (problem["code"], problem["current_status"]) == ("order_not_releasable", "cancelled")


async def test_delivery_is_recorded_once(store: Store, database: Database) -> None:
    order = await store.place(("TEE-S", 1))
    [fulfillment_order] = (await release(store, order["id"]))["data"]
    shipment = await ship(
        store,
        fulfillment_order["id"],
        [(line_of(order, "TEE-S")["id"], 1)],
        shipped_at="2026-11-27T09:00:00Z",
    )
    path = f"/api/v1/shipments/{shipment['id']}/delivered"
    for bad, message in (
        ("2026-11-28T10:00:00", "must carry a time zone, such as 2026-11-27T00:00:00Z"),
        (
            "0001-01-01T00:00:00+01:00",
            "must lie between 0001-02-01 and 9999-12-30, such as 2026-11-27T00:00:00Z",
        ),
    ):
        problem = await store.call("POST", path, 422, json={"delivered_at": bad})
        assert problem["errors"] == [{"field": "delivered_at", "message": message}]
    shipped_at = dt.datetime.fromisoformat(shipment["shipped_at"])
    before = (shipped_at - dt.timedelta(seconds=1)).isoformat()
    problem = await store.call("POST", path, 422, json={"delivered_at": before})
    assert problem["errors"] == [
        {
            "field": "delivered_at",
            "message": f"must not be earlier than the shipment's shipped_at ({shipped_at.isoformat()}); "
            "give the time the carrier delivered it",
        }
    ]
    when = "2026-11-28T10:00:00Z"
    delivered = await store.call("POST", path, 200, json={"delivered_at": when})
    assert (delivered["status"], delivered["delivered_at"]) == ("delivered", "2026-11-28T10:00:00Z")
    assert await store.call("POST", path, 200) == delivered
    other_date = await store.call("POST", path, 409, json={"delivered_at": "2026-11-29T10:00:00Z"})
    assert other_date["code"] == "shipment_already_delivered"
    assert await store.call("GET", f"/api/v1/shipments/{shipment['id']}", 200) == delivered
    kinds = [entry["kind"] for entry in await timeline_of(store, order["id"])]
    assert kinds.count("shipment_delivered") == 1
    topics = [topic for topic, _ in await events_of(database, order["id"])]
    assert topics.count("shipment.delivered") == 1


async def test_a_shipment_or_delivery_dated_in_the_future_is_refused(store: Store) -> None:
    order = await store.place(("TEE-S", 2))
    [fulfillment_order] = (await release(store, order["id"]))["data"]
    line = line_of(order, "TEE-S")["id"]
    now = dt.datetime.now(dt.UTC)
    next_year = (now + dt.timedelta(days=365)).isoformat()
    problem = await ship(store, fulfillment_order["id"], [(line, 1)], expected=422, shipped_at=next_year)
    assert problem["errors"] == [
        {
            "field": "shipped_at",
            "message": "must not be later than now (up to 5 minutes ahead is allowed for clock "
            "differences); give the time the units left, or leave it out to mean now",
        }
    ]
    # A minute ahead is a clock difference, not a date in the future: it ships.
    ahead = now + dt.timedelta(minutes=1)
    shipment = await ship(store, fulfillment_order["id"], [(line, 1)], shipped_at=ahead.isoformat())
    assert dt.datetime.fromisoformat(shipment["shipped_at"]) == ahead
    path = f"/api/v1/shipments/{shipment['id']}/delivered"
    problem = await store.call("POST", path, 422, json={"delivered_at": next_year})
    assert problem["errors"] == [
        {
            "field": "delivered_at",
            "message": "must not be later than now (up to 5 minutes ahead is allowed for clock "
            "differences); give the time the carrier delivered it, or leave it out to mean now",
        }
    ]
    # Undated, the delivery is dated now, but never before the shipment left: here, when it left.
    delivered = await store.call("POST", path, 200)
    assert (delivered["status"], delivered["delivered_at"]) == ("delivered", shipment["shipped_at"])


async def test_another_stores_fulfillment_is_404_on_every_route(
    client: AsyncTestClient[Litestar], store: Store
) -> None:
    order = await store.place(("TEE-S", 1))
    [fulfillment_order] = (await release(store, order["id"]))["data"]
    line = line_of(order, "TEE-S")["id"]
    shipment = await ship(store, fulfillment_order["id"], [(line, 1)])
    other = await split_store(client)
    ship_body = {"carrier": "DHL", "lines": [{"line_id": line, "quantity": 1}]}
    for method, path, body, code in (
        ("POST", f"/api/v1/orders/{order['id']}/fulfillment-orders", None, "order_not_found"),
        ("GET", f"/api/v1/orders/{order['id']}/fulfillment-orders", None, "order_not_found"),
        ("GET", f"/api/v1/fulfillment-orders/{fulfillment_order['id']}", None, "fulfillment_order_not_found"),
        (
            "POST",
            f"/api/v1/fulfillment-orders/{fulfillment_order['id']}/shipments",
            ship_body,
            "fulfillment_order_not_found",
        ),
        (
            "POST",
            f"/api/v1/fulfillment-orders/{fulfillment_order['id']}/reject",
            {"line_id": line, "quantity": 1, "reason": "damaged"},
            "fulfillment_order_not_found",
        ),
        ("GET", f"/api/v1/shipments/{shipment['id']}", None, "shipment_not_found"),
        ("POST", f"/api/v1/shipments/{shipment['id']}/delivered", None, "shipment_not_found"),
        ("GET", f"/api/v1/orders/{order['id']}/shipments", None, "order_not_found"),
        ("GET", "/api/v1/fulfillment-orders/not-an-id", None, "fulfillment_order_not_found"),
    ):
        kwargs = {"json": body} if body is not None else {}
        assert (await other.call(method, path, 404, **kwargs))["code"] == code, path
    assert (await other.call("GET", "/api/v1/fulfillment-orders", 200))["data"] == []
    listed = await store.call(
        "GET", "/api/v1/fulfillment-orders", 200, params={"location_id": store.locations["WH-1"]}
    )
    assert [item["id"] for item in listed["data"]] == [fulfillment_order["id"]]
    # A location's open work: the queue filtered by status, on the index built for it.
    queue = {"location_id": store.locations["WH-1"]}
    closed = await store.call("GET", "/api/v1/fulfillment-orders", 200, params={**queue, "status": "closed"})
    open_work = await store.call("GET", "/api/v1/fulfillment-orders", 200, params={**queue, "status": "open"})
    assert ([item["id"] for item in closed["data"]], open_work["data"]) == ([fulfillment_order["id"]], [])
    wrong = await store.call("GET", "/api/v1/fulfillment-orders", 422, params={**queue, "status": "shipped"})
    assert wrong["errors"] == [
        {"field": "status", "message": "must be one of open, in_progress, on_hold, closed, cancelled"}
    ]


async def test_stock_an_edit_reserves_on_a_released_order_goes_to_its_locations_at_once(
    store: Store, database: Database
) -> None:
    order = await store.place(("TEE-S", 1))
    [wh1] = (await release(store, order["id"]))["data"]
    # TEE-S is only at WH-1, where a fulfillment order is live; TEE-M only at WH-2, where none is.
    edited = await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/edits",
        200,
        json={
            "changes": [
                {"op": "add", "sku": "TEE-S", "quantity": 1},
                {"op": "add", "sku": "TEE-M", "quantity": 2},
            ]
        },
    )
    listed = by_location(
        (await store.call("GET", f"/api/v1/orders/{order['id']}/fulfillment-orders", 200))["data"]
    )
    assert listed["WH-1"]["id"] == wh1["id"]
    assert [(line["sku"], line["quantity_reserved"]) for line in listed["WH-1"]["lines"]] == [
        ("TEE-S", 1),
        ("TEE-S", 1),
    ]
    assert (
        listed["WH-2"]["status"],
        [(line["sku"], line["quantity_reserved"]) for line in listed["WH-2"]["lines"]],
    ) == (
        "open",
        [("TEE-M", 2)],
    )
    [entry] = [item for item in await timeline_of(store, order["id"]) if item["kind"] == "edited"]
    assert entry["changes"]["fulfillment_orders"] == [
        {
            "fulfillment_order_id": wh1["id"],
            "location": "WH-1",
            "is_new": False,
            "lines": [{"line_number": 2, "sku": "TEE-S", "quantity": 1}],
        },
        {
            "fulfillment_order_id": listed["WH-2"]["id"],
            "location": "WH-2",
            "is_new": True,
            "lines": [{"line_number": 3, "sku": "TEE-M", "quantity": 2}],
        },
    ]
    created = [
        payload
        for topic, payload in await events_of(database, order["id"])
        if topic == "fulfillment_order.created"
    ]
    assert [(payload["location"], payload["lines"]) for payload in created] == [
        ("WH-1", [{"line_id": order["lines"][0]["id"], "sku": "TEE-S", "quantity": 1}]),
        ("WH-2", [{"line_id": edited["order"]["lines"][2]["id"], "sku": "TEE-M", "quantity": 2}]),
    ]
    # Nothing is left for a second release to add.
    again = by_location((await release(store, order["id"]))["data"])
    assert {code: len(item["lines"]) for code, item in again.items()} == {"WH-1": 2, "WH-2": 1}
    released = [
        entry for entry in await timeline_of(store, order["id"]) if entry["kind"] == "released_to_fulfillment"
    ]
    assert len(released) == 1
