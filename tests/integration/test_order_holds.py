"""Holds over HTTP: a hold stops confirmation, its release confirms, and only the right role releases."""

from __future__ import annotations

import uuid

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from ordersmith.tenants.orders.holds import may_release, release_standing
from tests.support.fulfillment import pay_manually, shipped_order, split_store
from tests.support.members import add_member
from tests.support.order_actions import api_key_headers, entry, events_of, steps, timeline_of, user_id
from tests.support.orders import Store, open_store


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    store = await open_store(client)
    await store.add_skus("TEE-S", price=1999)
    await store.add_location("WH-1", priority=10)
    await store.receive("TEE-S", "WH-1", 20)
    return store


def hold_path(order: dict[str, object]) -> str:
    return f"/api/v1/orders/{order['id']}/hold"


def release_path(order: dict[str, object], hold_id: object) -> str:
    return f"/api/v1/orders/{order['id']}/holds/{hold_id}/release"


async def test_a_hold_stops_confirmation_and_releasing_the_last_one_confirms(
    store: Store, database: Database
) -> None:
    owner = await user_id(store)
    order = await store.place(("TEE-S", 1), hold={"type": "fraud_review", "reason": "new customer"})
    assert (order["status"], order["open_hold_count"], order["version"]) == ("placed", 1, 1)
    first = order["holds"][0]["id"]

    placed = await store.call(
        "POST",
        hold_path(order),
        201,
        json={"type": "address", "reason": " street number missing ", "release_role": "manager"},
    )
    hold = placed["hold"]
    assert (hold["type"], hold["reason"], hold["release_role"]) == (
        "address",
        "street number missing",
        "manager",
    )
    assert (hold["placed_by_type"], hold["placed_by_id"], hold["released_at"]) == ("user", owner, None)
    after_hold = placed["order"]
    assert (after_hold["status"], after_hold["open_hold_count"], after_hold["version"]) == ("placed", 2, 2)
    assert [item["id"] for item in after_hold["holds"]] == [first, hold["id"]]

    released = await store.call("POST", release_path(order, first), 200, json={"note": "called the customer"})
    assert released["hold"]["release_note"] == "called the customer"
    assert (released["hold"]["released_by_type"], released["hold"]["released_by_id"]) == ("user", owner)
    assert released["hold"]["released_at"] is not None
    still = released["order"]
    assert (still["status"], still["open_hold_count"], still["confirmed_at"]) == ("placed", 1, None)

    confirmed = (await store.call("POST", release_path(order, hold["id"]), 200))["order"]
    assert (confirmed["status"], confirmed["open_hold_count"], confirmed["version"]) == ("confirmed", 0, 4)
    assert confirmed["confirmed_at"] is not None
    assert confirmed["holds"][1]["release_note"] is None
    # Placed by a person, then three changes by a person: four touches.
    assert confirmed["touch_count"] == 4
    assert await store.call("GET", f"/api/v1/orders/{order['id']}", 200) == confirmed
    listed = await store.call("GET", "/api/v1/orders", 200, params={"has_open_hold": "true"})
    assert listed["data"] == []

    entries = await timeline_of(store, order["id"])
    assert steps(entries) == [
        ["hold_placed", "placed"],
        ["hold_placed"],
        ["hold_released"],
        ["confirmed", "hold_released"],
    ]
    assert [(item["actor_type"], item["actor_id"], item["is_touch"]) for item in entries[2:]] == [
        ("user", owner, True)
    ] * 4
    assert entries[2]["changes"] == {
        "hold_id": hold["id"],
        "type": "address",
        "reason": "street number missing",
        "release_role": "manager",
        "open_hold_count": {"old": 1, "new": 2},
    }
    assert entries[3]["changes"] == {
        "hold_id": first,
        "type": "fraud_review",
        "note": "called the customer",
        "open_hold_count": {"old": 2, "new": 1},
    }
    assert entry(entries[4:], "hold_released")["changes"]["open_hold_count"] == {"old": 1, "new": 0}
    assert entry(entries[4:], "confirmed")["changes"] == {"status": {"old": "placed", "new": "confirmed"}}

    events = await events_of(database, order["id"])
    assert [topic for topic, _ in events] == [
        "order.placed",
        "order.hold_placed",
        "order.hold_placed",
        "order.hold_released",
        "order.hold_released",
        "order.confirmed",
    ]
    # The hold given with the order is announced like one placed later.
    assert events[1][1] == {
        "order_id": order["id"],
        "number": order["number"],
        "hold_id": first,
        "type": "fraud_review",
        "reason": "new customer",
        "release_role": "agent",
    }
    assert events[2][1] == {
        "order_id": order["id"],
        "number": order["number"],
        "hold_id": hold["id"],
        "type": "address",
        "reason": "street number missing",
        "release_role": "manager",
    }
    assert events[5][1] == {"order_id": order["id"], "number": order["number"]}


async def test_a_hold_on_a_confirmed_order_keeps_it_confirmed(store: Store, database: Database) -> None:
    order = await store.place(("TEE-S", 1))
    placed = await store.call(
        "POST", hold_path(order), 201, json={"type": "payment", "reason": "card declined"}
    )
    assert (placed["order"]["status"], placed["order"]["open_hold_count"]) == ("confirmed", 1)
    listed = await store.call("GET", "/api/v1/orders", 200, params={"has_open_hold": "true"})
    assert [item["id"] for item in listed["data"]] == [order["id"]]

    released = (await store.call("POST", release_path(order, placed["hold"]["id"]), 200))["order"]
    assert (released["status"], released["open_hold_count"]) == ("confirmed", 0)
    assert released["confirmed_at"] == order["confirmed_at"]
    topics = [topic for topic, _ in await events_of(database, order["id"])]
    assert topics.count("order.confirmed") == 1


async def test_releasing_needs_the_holds_release_role_or_above(
    client: AsyncTestClient[Litestar], store: Store, database: Database
) -> None:
    agent = await add_member(client, database, store.headers, "agent")
    manager = await add_member(client, database, store.headers, "manager")
    key = await api_key_headers(store)
    order = await store.place(
        ("TEE-S", 1), hold={"type": "fraud_review", "reason": "odd", "release_role": "manager"}
    )
    hold_id = order["holds"][0]["id"]

    for headers, standing in ((agent.headers, "agent"), (key, "agent")):
        problem = await store.call("POST", release_path(order, hold_id), 403, headers=headers)
        assert (problem["code"], problem["release_role"], problem["standing"]) == (
            "hold_release_forbidden",
            "manager",
            standing,
        )
        assert problem["detail"] == (
            "this fraud_review hold may be released by a manager or above; "
            f"your standing is {standing}; ask someone with that role"
        )
    unchanged = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (unchanged["status"], unchanged["open_hold_count"], unchanged["version"]) == ("placed", 1, 1)

    released = await store.call("POST", release_path(order, hold_id), 200, headers=manager.headers)
    assert (released["hold"]["released_by_type"], released["hold"]["released_by_id"]) == (
        "user",
        manager.user_id,
    )
    assert released["order"]["status"] == "confirmed"

    # An agent-level hold: an agent and an API key may both release one.
    second = await store.call("POST", hold_path(order), 201, json={"type": "stock", "reason": "recount"})
    await store.call("POST", release_path(order, second["hold"]["id"]), 200, headers=key)
    third = await store.call("POST", hold_path(order), 201, json={"type": "manual", "reason": "check"})
    await store.call("POST", release_path(order, third["hold"]["id"]), 200, headers=agent.headers)


async def test_releasing_an_order_releases_all_its_open_holds_or_none(
    client: AsyncTestClient[Litestar], store: Store, database: Database
) -> None:
    agent = await add_member(client, database, store.headers, "agent")
    order = await store.place(("TEE-S", 1), hold={"type": "address", "reason": "no house number"})
    manual = await store.call(
        "POST",
        hold_path(order),
        201,
        json={"type": "fraud_review", "reason": "odd", "release_role": "manager"},
    )
    path = f"/api/v1/orders/{order['id']}/release"

    problem = await store.call("POST", path, 403, headers=agent.headers)
    assert (problem["code"], problem["standing"]) == ("hold_release_forbidden", "agent")
    assert problem["holds"] == [
        {"id": manual["hold"]["id"], "type": "fraud_review", "release_role": "manager"}
    ]
    assert problem["detail"] == (
        "1 of the 2 open holds need a higher role than your standing (agent); nothing was released. "
        "Ask someone with that role, or release the others one by one "
        "(POST /api/v1/orders/{id}/holds/{hold_id}/release)"
    )
    unchanged = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (unchanged["status"], unchanged["open_hold_count"], unchanged["version"]) == ("placed", 2, 2)

    released = await store.call("POST", path, 200, json={"note": "all checked"})
    assert (released["status"], released["open_hold_count"], released["version"]) == ("confirmed", 0, 3)
    assert [(hold["type"], hold["release_note"]) for hold in released["holds"]] == [
        ("address", "all checked"),
        ("fraud_review", "all checked"),
    ]
    assert steps(await timeline_of(store, order["id"]))[-1] == ["confirmed", "hold_released", "hold_released"]
    problem = await store.call("POST", path, 409)
    assert (problem["code"], problem["detail"]) == (
        "no_open_hold",
        "this order has no open hold; nothing to release",
    )


async def test_an_api_key_holds_and_releases_without_touching_the_order(store: Store) -> None:
    key = await api_key_headers(store)
    order = await store.place(
        ("TEE-S", 1), hold={"type": "payment", "reason": "awaiting capture"}, headers=key
    )
    assert order["touch_count"] == 0
    released = await store.call("POST", release_path(order, order["holds"][0]["id"]), 200, headers=key)
    assert (released["order"]["status"], released["order"]["touch_count"]) == ("confirmed", 0)
    entries = await timeline_of(store, order["id"])
    assert {(item["actor_type"], item["is_touch"]) for item in entries} == {("api_key", False)}


async def test_a_released_hold_cannot_be_released_again_and_unknown_holds_are_404(store: Store) -> None:
    order = await store.place(("TEE-S", 1), hold={"type": "manual", "reason": "check"})
    hold_id = order["holds"][0]["id"]
    await store.call("POST", release_path(order, hold_id), 200)
    problem = await store.call("POST", release_path(order, hold_id), 409)
    assert problem["code"] == "hold_already_released"

    for missing in (str(uuid.uuid4()), "not-an-id"):
        problem = await store.call("POST", release_path(order, missing), 404)
        assert problem["code"] == "hold_not_found"
    # A hold of another order of the same store is not this order's hold.
    other = await store.place(("TEE-S", 1), hold={"type": "manual", "reason": "check"})
    problem = await store.call("POST", release_path(order, other["holds"][0]["id"]), 404)
    assert problem["code"] == "hold_not_found"


async def test_closed_orders_take_no_holds(store: Store) -> None:
    order = await store.place(("TEE-S", 1))
    await store.call("POST", f"/api/v1/orders/{order['id']}/cancel", 200, json={"reason": "changed mind"})
    problem = await store.call("POST", hold_path(order), 409, json={"type": "manual", "reason": "late"})
    assert (problem["code"], problem["current_status"]) == ("order_not_open", "cancelled")
    assert problem["detail"] == (
        "an order that is cancelled cannot be put on hold; only draft, placed or confirmed orders can"
    )


async def test_a_bad_hold_is_422_naming_the_fields(store: Store) -> None:
    order = await store.place(("TEE-S", 1))
    problem = await store.call(
        "POST", hold_path(order), 422, json={"type": "vip", "reason": " ", "release_role": "boss"}
    )
    assert [error["field"] for error in problem["errors"]] == ["type", "reason", "release_role"]
    problem = await store.call("POST", release_path(order, uuid.uuid4()), 422, json={"note": "x" * 1001})
    assert problem["errors"] == [{"field": "note", "message": "must be at most 1000 characters"}]


async def test_placing_a_hold_honours_the_idempotency_key(store: Store) -> None:
    order = await store.place(("TEE-S", 1))
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"type": "manual", "reason": "check the address"}
    first = await store.call("POST", hold_path(order), 201, json=body, headers=key)
    again = await store.client.post(hold_path(order), json=body, headers={**store.headers, **key})
    assert (again.status_code, again.json(), again.headers["Idempotent-Replayed"]) == (201, first, "true")
    read = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (read["open_hold_count"], len(read["holds"])) == (1, 1)


async def test_another_stores_order_is_404_on_hold_and_release(
    client: AsyncTestClient[Litestar], store: Store
) -> None:
    order = await store.place(("TEE-S", 1), hold={"type": "manual", "reason": "check"})
    other = await open_store(client)
    problem = await other.call("POST", hold_path(order), 404, json={"type": "manual", "reason": "mine?"})
    assert problem["code"] == "order_not_found"
    problem = await other.call("POST", release_path(order, order["holds"][0]["id"]), 404)
    assert problem["code"] == "order_not_found"
    problem = await other.call("POST", f"/api/v1/orders/{order['id']}/release", 404)
    assert problem["code"] == "order_not_found"
    unchanged = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (unchanged["open_hold_count"], unchanged["version"]) == (1, 1)


def test_who_may_release_what() -> None:
    assert release_standing("user", "owner") == "owner"
    assert release_standing("user", "agent") == "agent"
    assert release_standing("user", "viewer") is None
    assert release_standing("api_key", None) == "agent"
    assert release_standing("staff", "support") is None
    assert release_standing("system", None) is None
    roles = ("agent", "manager", "admin", "owner")
    allowed = {(standing, role) for standing in roles for role in roles if may_release(standing, role)}
    assert allowed == {
        ("agent", "agent"),
        ("manager", "agent"),
        ("manager", "manager"),
        ("admin", "agent"),
        ("admin", "manager"),
        ("admin", "admin"),
        ("owner", "agent"),
        ("owner", "manager"),
        ("owner", "admin"),
        ("owner", "owner"),
    }
    assert not any(may_release(None, role) for role in roles)


async def test_releasing_the_last_hold_of_a_shipped_and_paid_order_completes_it(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    shop = await split_store(client)
    order = await shipped_order(shop, ("TEE-S", 1))
    hold = await shop.call(
        "POST", hold_path(order), 201, json={"type": "manual", "reason": "check the invoice"}
    )
    await pay_manually(database, shop, order["id"], order["total_amount"])
    # Shipped and paid, but held: it waits for the hold.
    held = await shop.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (held["status"], held["payment_status"], held["fulfillment_status"]) == (
        "confirmed",
        "paid",
        "fulfilled",
    )

    await shop.call("POST", release_path(order, hold["hold"]["id"]), 200)
    done = await shop.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (done["status"], done["open_hold_count"]) == ("completed", 0)
