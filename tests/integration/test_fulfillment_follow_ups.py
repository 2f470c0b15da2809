"""Customer follow-ups: where is it (shipments, tracking) per order and per customer; logged contacts."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from tests.support.fulfillment import line_of, release, ship, shipped_order, split_store
from tests.support.order_actions import api_key_headers, events_of, timeline_of


async def test_a_customer_follow_up_shows_every_order_with_its_parcels_and_open_returns(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await split_store(client)
    shipped = await shipped_order(store, ("TEE-S", 1), ("TEE-M", 1))
    waiting = await store.place(("TEE-S", 2))
    [fulfillment_order] = (await release(store, waiting["id"]))["data"]
    await ship(
        store, fulfillment_order["id"], [(line_of(waiting, "TEE-S")["id"], 1)], tracking_number="PART-1"
    )
    open_return = await store.call(
        "POST",
        f"/api/v1/orders/{shipped['id']}/returns",
        201,
        json={
            "lines": [{"line_id": line_of(shipped, "TEE-M")["id"], "quantity": 1, "reason_code": "size_fit"}]
        },
    )
    declined = await store.call(
        "POST",
        f"/api/v1/orders/{shipped['id']}/returns",
        201,
        json={"lines": [{"line_id": line_of(shipped, "TEE-S")["id"], "quantity": 1, "reason_code": "other"}]},
    )
    await store.call("POST", f"/api/v1/returns/{declined['id']}/decline", 200, json={"reason": "too late"})

    view = await store.call("GET", f"/api/v1/customers/{store.customer_id}/follow-ups", 200)
    assert view["customer_id"] == store.customer_id
    assert [(item["number"], item["fulfillment_status"]) for item in view["data"]] == [
        (waiting["number"], "partially_fulfilled"),
        (shipped["number"], "fulfilled"),
    ]
    newest, oldest = view["data"]
    assert [(item["tracking_number"], item["status"]) for item in newest["shipments"]] == [
        ("PART-1", "shipped")
    ]
    assert sorted(item["location_code"] for item in oldest["shipments"]) == ["WH-1", "WH-2"]
    # Only open returns: the declined one is settled.
    assert [item["id"] for item in oldest["returns"]] == [open_return["id"]]
    page = await store.call(
        "GET", f"/api/v1/customers/{store.customer_id}/follow-ups", 200, params={"limit": "1"}
    )
    rest = await store.call(
        "GET",
        f"/api/v1/customers/{store.customer_id}/follow-ups",
        200,
        params={"limit": "1", "cursor": page["next_cursor"]},
    )
    assert [item["order_id"] for item in page["data"] + rest["data"]] == [waiting["id"], shipped["id"]]
    assert rest["next_cursor"] is None

    # An agent answers "where is it?": one timeline entry, one touch; an integration's is not a touch.
    before = (await store.call("GET", f"/api/v1/orders/{waiting['id']}", 200))["touch_count"]
    logged = await store.call(
        "POST",
        f"/api/v1/orders/{waiting['id']}/follow-ups",
        201,
        json={"topic": "where_is_it", "note": "told her PART-1 is on its way"},
    )
    assert [item["tracking_number"] for item in logged["shipments"]] == ["PART-1"]
    headers = await api_key_headers(store)
    await store.call(
        "POST",
        f"/api/v1/orders/{waiting['id']}/follow-ups",
        201,
        json={"topic": "where_is_it", "note": "chatbot answered"},
        headers=headers,
    )
    after = (await store.call("GET", f"/api/v1/orders/{waiting['id']}", 200))["touch_count"]
    assert after == before + 1
    follow_ups = [entry for entry in await timeline_of(store, waiting["id"]) if entry["kind"] == "follow_up"]
    assert [(entry["changes"]["note"], entry["is_touch"]) for entry in follow_ups] == [
        ("told her PART-1 is on its way", True),
        ("chatbot answered", False),
    ]
    topics = [topic for topic, _ in await events_of(database, waiting["id"])]
    assert topics.count("order.followed_up") == 2
    bad = await store.call(
        "POST", f"/api/v1/orders/{waiting['id']}/follow-ups", 422, json={"topic": "gossip", "note": ""}
    )
    assert sorted(error["field"] for error in bad["errors"]) == ["note", "topic"]


async def test_another_stores_follow_ups_are_404(client: AsyncTestClient[Litestar]) -> None:
    store = await split_store(client)
    order = await shipped_order(store, ("TEE-S", 1))
    other = await split_store(client)
    for method, path, body, code in (
        ("GET", f"/api/v1/orders/{order['id']}/shipments", None, "order_not_found"),
        ("GET", f"/api/v1/customers/{store.customer_id}/follow-ups", None, "customer_not_found"),
        (
            "POST",
            f"/api/v1/orders/{order['id']}/follow-ups",
            {"topic": "other", "note": "hi"},
            "order_not_found",
        ),
    ):
        kwargs = {"json": body} if body is not None else {}
        assert (await other.call(method, path, 404, **kwargs))["code"] == code, path
    mine = await other.call("GET", f"/api/v1/customers/{other.customer_id}/follow-ups", 200)
    assert mine["data"] == []
