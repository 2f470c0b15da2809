"""The store's review rule: orders over an amount are placed on hold for review, not confirmed."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from tests.support.order_actions import api_key_headers, events_of, steps, timeline_of, user_id
from tests.support.order_edits import commit, preview, set_quantity
from tests.support.orders import Store, open_store, two_sku_store

REASON = "the total 3000 is over the store's review threshold of 2500 (EUR minor units)"
FIRST_ORDER = "it is the customer's first order, and the store reviews first orders"


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    store = await two_sku_store(client, price=1000)
    await store.receive("TEE-S", "WH-1", 20)
    return store


async def _set_threshold(store: Store, amount: int | None) -> dict[str, Any]:
    body: dict[str, Any] = await store.call(
        "PATCH", "/api/v1/store", 200, json={"review_orders_over_amount": amount}
    )
    return body


def _hold_of(hold: dict[str, Any]) -> tuple[Any, ...]:
    return (hold["type"], hold["reason"], hold["placed_by_type"], hold["placed_by_id"])


def _held_by_the_rule(order: dict[str, Any]) -> tuple[Any, ...]:
    [hold] = order["holds"]
    return (
        order["status"],
        order["open_hold_count"],
        hold["type"],
        hold["reason"],
        hold["release_role"],
        hold["placed_by_type"],
        hold["placed_by_id"],
    )


RULE_HOLD = ("placed", 1, "fraud_review", REASON, "agent", "system", "review_orders_over_amount")


async def test_an_order_over_the_threshold_is_held_for_review_until_released(store: Store) -> None:
    assert (await _set_threshold(store, 2500))["review_orders_over_amount"] == 2500
    under = await store.place(("TEE-S", 2))
    assert (under["status"], under["holds"]) == ("confirmed", [])

    over = await store.place(("TEE-S", 3))
    assert _held_by_the_rule(over) == RULE_HOLD
    # Held, not refused: its stock is reserved like any placed order's.
    assert (await store.stock("TEE-S"))["reserved"] == 5
    entries = await timeline_of(store, over["id"])
    assert steps(entries) == [["hold_placed", "placed"]]
    [placed_hold] = [entry for entry in entries if entry["kind"] == "hold_placed"]
    assert placed_hold["changes"] == {
        "hold_id": over["holds"][0]["id"],
        "type": "fraud_review",
        "reason": REASON,
        "release_role": "agent",
        "open_hold_count": {"old": 0, "new": 1},
        "rules": ["review_orders_over_amount"],
    }
    # The rule placed it, not the person who placed the order: no touch of theirs.
    assert (placed_hold["actor_type"], placed_hold["actor_id"], placed_hold["is_touch"]) == (
        "system",
        "review_orders_over_amount",
        False,
    )
    assert (await store.call("GET", f"/api/v1/orders/{over['id']}", 200))["touch_count"] == 1
    assert (await store.call("GET", f"/api/v1/orders/{over['id']}", 200))["holds"][0]["reason"] == REASON

    released = await store.call("POST", f"/api/v1/orders/{over['id']}/release", 200)
    assert (released["status"], released["open_hold_count"]) == ("confirmed", 0)


async def test_the_rule_compares_only_orders_in_the_stores_currency(store: Store) -> None:
    await store.add_skus("USD-CAP", price=9000, currency="USD")
    await store.receive("USD-CAP", "WH-1", 5)
    await _set_threshold(store, 2500)
    in_dollars = await store.place(("USD-CAP", 1), currency="USD")
    assert (in_dollars["status"], in_dollars["holds"]) == ("confirmed", [])


async def test_an_order_with_a_hold_of_its_own_gets_the_review_hold_beside_it(
    store: Store, database: Database
) -> None:
    await _set_threshold(store, 2500)
    order = await store.place(("TEE-S", 3), hold={"type": "address", "reason": "no house number"})
    me = await user_id(store)
    assert (order["status"], order["open_hold_count"]) == ("placed", 2)
    assert [_hold_of(hold) for hold in order["holds"]] == [
        ("address", "no house number", "user", me),
        ("fraud_review", REASON, "system", "review_orders_over_amount"),
    ]
    # The response was built in hand: it is what was stored.
    assert (await store.call("GET", f"/api/v1/orders/{order['id']}", 200))["holds"] == order["holds"]
    address, review = (hold["id"] for hold in order["holds"])
    held = [entry for entry in await timeline_of(store, order["id"]) if entry["kind"] == "hold_placed"]
    assert [(entry["actor_type"], entry["changes"]) for entry in held] == [
        (
            "user",
            {
                "hold_id": address,
                "type": "address",
                "reason": "no house number",
                "release_role": "agent",
                "open_hold_count": {"old": 0, "new": 1},
            },
        ),
        (
            "system",
            {
                "hold_id": review,
                "type": "fraud_review",
                "reason": REASON,
                "release_role": "agent",
                "open_hold_count": {"old": 1, "new": 2},
                "rules": ["review_orders_over_amount"],
            },
        ),
    ]
    events = await events_of(database, order["id"])
    assert [(topic, payload.get("hold_id")) for topic, payload in events] == [
        ("order.placed", None),
        ("order.hold_placed", address),
        ("order.hold_placed", review),
    ]
    assert events[2][1] == {
        "order_id": order["id"],
        "number": order["number"],
        "hold_id": review,
        "type": "fraud_review",
        "reason": REASON,
        "release_role": "agent",
    }

    # Releasing its own hold leaves the order waiting for the review; releasing that confirms it.
    released = await store.call("POST", f"/api/v1/orders/{order['id']}/holds/{address}/release", 200)
    assert (released["order"]["status"], released["order"]["open_hold_count"]) == ("placed", 1)
    reviewed = await store.call("POST", f"/api/v1/orders/{order['id']}/holds/{review}/release", 200)
    assert (reviewed["order"]["status"], reviewed["order"]["open_hold_count"]) == ("confirmed", 0)


async def test_an_order_over_the_threshold_placed_with_its_own_hold_still_gets_the_fraud_review(
    store: Store,
) -> None:
    """The reviewer's case: an integration releasing its own hold must not confirm an unreviewed order."""
    await _set_threshold(store, 5000)
    key = await api_key_headers(store)
    order = await store.place(
        ("TEE-S", 9), headers=key, hold={"type": "customer_request", "reason": "gift wrap?"}
    )
    [own] = [hold for hold in order["holds"] if hold["type"] == "customer_request"]
    released = await store.call(
        "POST", f"/api/v1/orders/{order['id']}/holds/{own['id']}/release", 200, headers=key
    )
    assert released["order"]["status"] == "placed"
    assert [h["type"] for h in released["order"]["holds"] if h["released_at"] is None] == ["fraud_review"]


async def test_a_fraud_review_of_its_own_is_the_review_the_rules_ask_for(store: Store) -> None:
    await _set_threshold(store, 2500)
    await store.call("PATCH", "/api/v1/store", 200, json={"review_first_orders": True})
    await store.add_customer("bo@example.com")
    hold = {"type": "fraud_review", "reason": "checked by our own screening", "release_role": "manager"}
    order = await store.place(("TEE-S", 3), hold=hold)
    assert (order["status"], order["open_hold_count"]) == ("placed", 1)
    assert [_hold_of(hold) for hold in order["holds"]] == [
        ("fraud_review", "checked by our own screening", "user", await user_id(store))
    ]


async def test_a_first_order_with_a_hold_of_its_own_gets_the_review_hold_beside_it(store: Store) -> None:
    await store.call("PATCH", "/api/v1/store", 200, json={"review_first_orders": True})
    await store.add_customer("bo@example.com")
    key = await api_key_headers(store)
    order = await store.place(("TEE-S", 1), headers=key, hold={"type": "payment", "reason": "bank transfer"})
    assert [(hold["type"], hold["reason"], hold["placed_by_type"]) for hold in order["holds"]] == [
        ("payment", "bank transfer", "api_key"),
        ("fraud_review", FIRST_ORDER, "system"),
    ]
    assert order["holds"][1]["placed_by_id"] == "review_first_orders"
    assert (order["status"], order["open_hold_count"]) == ("placed", 2)


async def test_no_threshold_holds_nothing_and_a_bad_one_is_422(store: Store) -> None:
    await _set_threshold(store, 2500)
    # A change of another field leaves the threshold as it is.
    kept = await store.call("PATCH", "/api/v1/store", 200, json={"timezone": "Europe/Paris"})
    assert kept["review_orders_over_amount"] == 2500
    for bad in (0, -5, 2**53 + 1):
        problem = await store.call("PATCH", "/api/v1/store", 422, json={"review_orders_over_amount": bad})
        assert problem["errors"] == [
            {
                "field": "review_orders_over_amount",
                "message": "must be a whole amount in minor units from 1 to 9007199254740992, "
                "or null to hold no order for review",
            }
        ]
    assert (await _set_threshold(store, None))["review_orders_over_amount"] is None
    order = await store.place(("TEE-S", 3))
    assert (order["status"], order["holds"]) == ("confirmed", [])


async def test_a_draft_over_the_threshold_is_held_when_it_is_placed(store: Store) -> None:
    await _set_threshold(store, 2500)
    draft = await store.call("POST", "/api/v1/orders", 201, json=store.order_body(("TEE-S", 3), draft=True))
    assert draft["holds"] == []
    placed = await store.call("POST", f"/api/v1/orders/{draft['id']}/place", 200)
    assert _held_by_the_rule(placed) == RULE_HOLD
    entries = await timeline_of(store, draft["id"])
    # Written in one transaction: their order within it is not asserted (see `steps`).
    assert sorted((entry["kind"], entry["actor_type"]) for entry in entries)[-3:] == [
        ("drafted", "user"),
        ("hold_placed", "system"),
        ("placed", "user"),
    ]


async def test_a_draft_held_before_it_is_placed_is_still_reviewed(store: Store) -> None:
    await _set_threshold(store, 2500)
    held_drafts = []
    for hold in (
        {"type": "address", "reason": "no house number"},
        {"type": "fraud_review", "reason": "checked by our own screening"},
    ):
        draft = await store.call(
            "POST", "/api/v1/orders", 201, json=store.order_body(("TEE-S", 3), draft=True)
        )
        await store.call("POST", f"/api/v1/orders/{draft['id']}/hold", 201, json=hold)
        held_drafts.append(draft["id"])
    own, reviewed = [await store.call("POST", f"/api/v1/orders/{draft}/place", 200) for draft in held_drafts]
    # Its own hold does not stand in for the review...
    assert (own["status"], own["open_hold_count"]) == ("placed", 2)
    assert [(hold["type"], hold["placed_by_type"], hold["reason"]) for hold in own["holds"]] == [
        ("address", "user", "no house number"),
        ("fraud_review", "system", REASON),
    ]
    entry = [item for item in await timeline_of(store, own["id"]) if item["kind"] == "hold_placed"][-1]
    assert (entry["changes"]["open_hold_count"], entry["changes"]["rules"]) == (
        {"old": 1, "new": 2},
        ["review_orders_over_amount"],
    )
    # ...but a fraud review already open is the review the rules ask for.
    assert (reviewed["status"], reviewed["open_hold_count"]) == ("placed", 1)
    assert [(hold["type"], hold["placed_by_type"]) for hold in reviewed["holds"]] == [
        ("fraud_review", "user")
    ]


async def test_the_rule_holds_an_order_whose_skus_have_no_stock_rows(
    client: AsyncTestClient[Litestar],
) -> None:
    """No locked stock row comes back, so the rule is read on its own."""
    store = await open_store(client)
    await store.add_skus("PRE-ORDER", price=3000, allow_backorder=True)
    await _set_threshold(store, 2500)
    order = await store.place(("PRE-ORDER", 1))
    assert _held_by_the_rule(order) == RULE_HOLD
    assert order["lines"][0]["quantity_backordered"] == 1


async def test_an_edit_that_takes_an_order_over_the_threshold_holds_it_for_review(store: Store) -> None:
    await _set_threshold(store, 2500)
    order = await store.place(("TEE-S", 2))
    assert (order["status"], order["holds"]) == ("confirmed", [])
    line = order["lines"][0]["id"]

    shown = await preview(store, order["id"], set_quantity(line, 3))
    # The preview says what committing does: the rule's hold comes with the edit.
    assert [(hold["type"], hold["placed_by_type"]) for hold in shown["order"]["holds"]] == [
        ("fraud_review", "system")
    ]
    done = await commit(store, order["id"], set_quantity(line, 3))
    # Confirmed before, it stays confirmed; the open hold keeps it from fulfillment.
    assert _held_by_the_rule(done["order"]) == ("confirmed", *RULE_HOLD[1:])
    entries = await timeline_of(store, order["id"])
    assert [(item["kind"], item["actor_type"]) for item in entries[-2:]] == [
        ("edited", "user"),
        ("hold_placed", "system"),
    ]
    # Named like a rule's hold placed with a new order.
    assert entries[-1]["changes"]["rules"] == ["review_orders_over_amount"]

    # Growing again while the review is open adds no second hold.
    grown = await commit(store, order["id"], set_quantity(line, 4))
    assert grown["order"]["open_hold_count"] == 1
    await store.call("POST", f"/api/v1/orders/{order['id']}/release", 200)
    # Reviewed and released: growing further is not a new crossing, and shrinking never holds.
    again = await commit(store, order["id"], set_quantity(line, 5))
    assert (again["order"]["status"], again["order"]["open_hold_count"]) == ("confirmed", 0)
    shrunk = await commit(store, order["id"], set_quantity(line, 3))
    assert (shrunk["order"]["status"], shrunk["order"]["open_hold_count"]) == ("confirmed", 0)


async def test_a_customers_first_order_is_held_when_the_store_reviews_first_orders(store: Store) -> None:
    assert (await store.call("GET", "/api/v1/store", 200))["review_first_orders"] is False
    # Off (the default): a first order is confirmed.
    first = await store.place(("TEE-S", 1))
    assert (first["status"], first["holds"]) == ("confirmed", [])
    turned_on = await store.call("PATCH", "/api/v1/store", 200, json={"review_first_orders": True})
    assert turned_on["review_first_orders"] is True
    # Ana has had an order placed: hers are not first orders.
    again = await store.place(("TEE-S", 1))
    assert (again["status"], again["holds"]) == ("confirmed", [])

    # Bo's first order is held, by the rule, not by whoever placed it.
    await store.add_customer("bo@example.com")
    held = await store.place(("TEE-S", 1))
    [hold] = held["holds"]
    assert (held["status"], hold["type"], hold["reason"], hold["placed_by_type"], hold["placed_by_id"]) == (
        "placed",
        "fraud_review",
        FIRST_ORDER,
        "system",
        "review_first_orders",
    )
    # Over the threshold as well: one hold naming both rules.
    await _set_threshold(store, 2500)
    cy = await store.add_customer("cy@example.com")
    both = await store.place(("TEE-S", 3))
    [hold] = both["holds"]
    assert (hold["reason"], hold["placed_by_id"]) == (
        f"{REASON}; {FIRST_ORDER}",
        "review_orders_over_amount+review_first_orders",
    )
    # Cy merged into a new customer brings his order along: Dee's order is not a first.
    dee = await store.add_customer("dee@example.com")
    await store.call("POST", f"/api/v1/customers/{dee}/merge", 200, json={"duplicate_id": cy})
    merged = await store.place(("TEE-S", 1))
    assert (merged["status"], merged["holds"]) == ("confirmed", [])
    # A draft is held as it is placed, and does not count as an earlier order of its own.
    await store.add_customer("eve@example.com")
    draft = await store.call("POST", "/api/v1/orders", 201, json=store.order_body(("TEE-S", 1), draft=True))
    placed = await store.call("POST", f"/api/v1/orders/{draft['id']}/place", 200)
    assert [(item["reason"], item["placed_by_id"]) for item in placed["holds"]] == [
        (FIRST_ORDER, "review_first_orders")
    ]
    problem = await store.call("PATCH", "/api/v1/store", 422, json={"review_first_orders": "yes"})
    assert problem["errors"][0]["field"] == "review_first_orders"
