"""Editing orders after placement: preview equals commit, stock moves with the edit, shipped units stay."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from ordersmith.platform.database import Database
from ordersmith.platform.tenancy import get_tenant_record
from ordersmith.tenants.orders.models import Order
from tests.support.order_edits import (
    add,
    commit,
    edited_events,
    held,
    line_buckets,
    preview,
    remove,
    reserved_matches_reservations,
    set_price,
    set_quantity,
    ship,
    stock_at_locations,
    timeline_kinds,
    with_ids_of,
)
from tests.support.orders import ADDRESS, Store, open_store, two_sku_store
from tests.support.payments import pay

# The shipping address as an order stores it: every field, unset ones null.
STORED_ADDRESS = {"line2": None, "region": None, "label": None, **ADDRESS}
NEW_ADDRESS = {
    "recipient_name": "Ana Lima",
    "line1": "3 Quai Saint-Antoine",
    "city": "Lyon",
    "postal_code": "69002",
    "country_code": "FR",
    "line2": "3e étage",
    "region": None,
    "label": "work",
}


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    return await two_sku_store(client, price=1999)


async def test_a_preview_shows_exactly_what_the_commit_does_and_changes_nothing(
    store: Store, database: Database
) -> None:
    await store.add_skus("MUG", price=800)
    await store.receive("TEE-S", "WH-1", 3)
    await store.receive("TEE-S", "WH-2", 4)
    await store.receive("TEE-M", "WH-1", 5)
    await store.receive("MUG", "WH-2", 10)
    order = await store.place(("TEE-S", 2), ("TEE-M", 1))
    # Paid in full in cash (version 2): what the edit weighs the new total against.
    await pay(store, order["id"], provider="manual", method="cash")
    order = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    tee, medium = (line["id"] for line in order["lines"])
    skus = ("TEE-S", "TEE-M", "MUG")
    stock_before = [await stock_at_locations(store, sku) for sku in skus]
    changes = (set_quantity(tee, 5), set_price(tee, 1500), remove(medium), add("MUG", 2))

    shown = await preview(store, order["id"], *changes, shipping_address=NEW_ADDRESS)

    parcel = "WH-2 (priority 20) is the first location with all the units asked for, so they ship together"
    added_id = shown["order"]["lines"][2]["id"]
    assert shown["edit"] == {
        "base_version": 2,
        "version": 3,
        "currency": "EUR",
        "old_subtotal_amount": 5997,
        "new_subtotal_amount": 9100,
        "old_total_amount": 5997,
        "new_total_amount": 9100,
        "difference_amount": 3103,
        "settled_amount": 5997,
        "settled_basis": "payments",
        "balance_due_amount": 3103,
        "refund_owed_amount": 0,
        "shipping_address_changed": True,
        "lines": [
            {
                "line_id": tee,
                "line_number": 1,
                "sku": "TEE-S",
                "action": "changed",
                "old_quantity": 2,
                "new_quantity": 5,
                "old_unit_price_amount": 1999,
                "new_unit_price_amount": 1500,
            },
            {
                "line_id": medium,
                "line_number": 2,
                "sku": "TEE-M",
                "action": "removed",
                "old_quantity": 1,
                "new_quantity": 0,
                "old_unit_price_amount": 1999,
                "new_unit_price_amount": 1999,
            },
            {
                "line_id": added_id,
                "line_number": 3,
                "sku": "MUG",
                "action": "added",
                "old_quantity": None,
                "new_quantity": 2,
                "old_unit_price_amount": None,
                "new_unit_price_amount": 800,
            },
        ],
        "stock": [
            {
                "sku": "TEE-S",
                "variant_id": order["lines"][0]["variant_id"],
                "reserved": 3,
                "released": 0,
                "backordered_change": 0,
                "locations": [
                    {
                        "location_id": store.locations["WH-2"],
                        "location_code": "WH-2",
                        "reserved": 3,
                        "released": 0,
                        "reason": parcel,
                    }
                ],
            },
            {
                "sku": "TEE-M",
                "variant_id": order["lines"][1]["variant_id"],
                "reserved": 0,
                "released": 1,
                "backordered_change": 0,
                "locations": [
                    {
                        "location_id": store.locations["WH-1"],
                        "location_code": "WH-1",
                        "reserved": 0,
                        "released": 1,
                        "reason": None,
                    }
                ],
            },
            {
                "sku": "MUG",
                "variant_id": shown["order"]["lines"][2]["variant_id"],
                "reserved": 2,
                "released": 0,
                "backordered_change": 0,
                "locations": [
                    {
                        "location_id": store.locations["WH-2"],
                        "location_code": "WH-2",
                        "reserved": 2,
                        "released": 0,
                        "reason": parcel,
                    }
                ],
            },
        ],
    }
    would_be = shown["order"]
    assert (would_be["subtotal_amount"], would_be["total_amount"], would_be["version"]) == (9100, 9100, 3)
    assert would_be["shipping_address"] == NEW_ADDRESS
    assert line_buckets(would_be) == [
        ("TEE-S", 5, 0, 5, 0, 0),
        ("TEE-M", 1, 1, 0, 0, 0),
        ("MUG", 2, 0, 2, 0, 0),
    ]
    assert [line["unit_price_amount"] for line in would_be["lines"]] == [1500, 1999, 800]
    assert held(would_be) == [(1, "WH-1", 2), (1, "WH-2", 3), (3, "WH-2", 2)]

    # The preview changed nothing: not the order, its timeline, the stock or the outbox.
    assert await store.call("GET", f"/api/v1/orders/{order['id']}", 200) == order
    assert await timeline_kinds(store, order["id"]) == ["confirmed", "payment_captured", "placed"]
    assert [await stock_at_locations(store, sku) for sku in skus] == stock_before
    assert await edited_events(database, order["id"]) == []

    done = await commit(
        store,
        order["id"],
        *changes,
        shipping_address=NEW_ADDRESS,
        expected_version=shown["edit"]["base_version"],
    )

    expected = with_ids_of(shown, done)
    del expected["order"]["updated_at"], done["order"]["updated_at"]
    assert done == expected
    # Paying in person and editing: two touches after the placement by a person.
    assert done["order"]["touch_count"] == 3
    now = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    del now["updated_at"]
    assert now == done["order"]
    # The stock moved exactly as the preview said, location by location.
    assert await stock_at_locations(store, "TEE-S") == [("WH-1", 3, 2, 1), ("WH-2", 4, 3, 1)]
    assert await stock_at_locations(store, "TEE-M") == [("WH-1", 5, 0, 5)]
    assert await stock_at_locations(store, "MUG") == [("WH-2", 10, 2, 8)]
    assert await reserved_matches_reservations(database, store)

    timeline = await store.call("GET", f"/api/v1/orders/{order['id']}/timeline", 200)
    edited = timeline["data"][-1]
    assert sorted(entry["kind"] for entry in timeline["data"][:2]) == ["confirmed", "placed"]
    assert edited["kind"] == "edited"
    assert (edited["actor_type"], edited["is_touch"]) == ("user", True)
    added_id = done["order"]["lines"][2]["id"]
    assert edited["changes"] == {
        "lines": [
            {
                "line_id": tee,
                "line_number": 1,
                "sku": "TEE-S",
                "action": "changed",
                "quantity": {"old": 2, "new": 5},
                "unit_price_amount": {"old": 1999, "new": 1500},
            },
            {
                "line_id": medium,
                "line_number": 2,
                "sku": "TEE-M",
                "action": "removed",
                "quantity": {"old": 1, "new": 0},
                "unit_price_amount": {"old": 1999, "new": 1999},
            },
            {
                "line_id": added_id,
                "line_number": 3,
                "sku": "MUG",
                "action": "added",
                "quantity": {"old": None, "new": 2},
                "unit_price_amount": {"old": None, "new": 800},
            },
        ],
        "stock": [
            {
                "sku": "TEE-S",
                "reserved": 3,
                "released": 0,
                "backordered_change": 0,
                "locations": [{"location": "WH-2", "reserved": 3, "released": 0, "reason": parcel}],
            },
            {
                "sku": "TEE-M",
                "reserved": 0,
                "released": 1,
                "backordered_change": 0,
                "locations": [{"location": "WH-1", "reserved": 0, "released": 1, "reason": None}],
            },
            {
                "sku": "MUG",
                "reserved": 2,
                "released": 0,
                "backordered_change": 0,
                "locations": [{"location": "WH-2", "reserved": 2, "released": 0, "reason": parcel}],
            },
        ],
        "version": {"old": 2, "new": 3},
        "subtotal_amount": {"old": 5997, "new": 9100},
        "total_amount": {"old": 5997, "new": 9100},
        "shipping_address": {"old": STORED_ADDRESS, "new": NEW_ADDRESS},
        # Paid in full before; the edit raised the total, so part of it is now due.
        "payment_status": {"old": "paid", "new": "partially_paid"},
    }
    assert await edited_events(database, order["id"]) == [
        {
            "order_id": order["id"],
            "number": order["number"],
            "version": 3,
            "currency": "EUR",
            "old_total_amount": 5997,
            "total_amount": 9100,
            "shipping_address_changed": True,
            "lines": [
                {
                    "line_id": tee,
                    "sku": "TEE-S",
                    "action": "changed",
                    "quantity": 5,
                    "unit_price_amount": 1500,
                },
                {
                    "line_id": medium,
                    "sku": "TEE-M",
                    "action": "removed",
                    "quantity": 0,
                    "unit_price_amount": 1999,
                },
                {
                    "line_id": added_id,
                    "sku": "MUG",
                    "action": "added",
                    "quantity": 2,
                    "unit_price_amount": 800,
                },
            ],
        }
    ]


async def test_a_lower_total_is_a_refund_owed(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(("TEE-S", 3))
    await pay(store, order["id"], provider="manual", method="cash")
    shown = await preview(store, order["id"], set_quantity(order["lines"][0]["id"], 1))
    edit = shown["edit"]
    assert (edit["difference_amount"], edit["balance_due_amount"], edit["refund_owed_amount"]) == (
        -3998,
        0,
        3998,
    )


async def test_shipped_units_cannot_be_edited(store: Store, database: Database) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    await store.receive("TEE-M", "WH-1", 5)
    order = await store.place(("TEE-S", 3), ("TEE-M", 2))
    tee, medium = (line["id"] for line in order["lines"])
    await ship(database, store, tee, 2)
    await ship(database, store, medium, 2)
    shipped = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)

    refusals = [
        (set_quantity(tee, 1), "line 1 has 2 units shipped; its quantity cannot go below 2"),
        (
            remove(tee),
            "line 1 has 2 units shipped, so it cannot be removed; set its quantity to 2 to drop the rest",
        ),
        (set_price(tee, 1000), "line 1 has 2 units shipped at its price; the price cannot change"),
        (set_quantity(medium, 3), "line 2 has shipped all its 2 units; it cannot change any more"),
        (remove(medium), "line 2 has shipped all its 2 units; it cannot change any more"),
    ]
    for change, detail in refusals:
        problem = await commit(store, order["id"], add("TEE-M", 1), change, expected=409)
        line = tee if change.get("line_id") == tee else medium
        assert (problem["code"], problem["detail"]) == ("line_shipped", detail)
        assert (problem["field"], problem["line_id"], problem["quantity_shipped"]) == ("changes[1]", line, 2)
    assert await store.call("GET", f"/api/v1/orders/{order['id']}", 200) == shipped

    # Down to what shipped is allowed: the unshipped unit is released, the line is done.
    done = await commit(store, order["id"], set_quantity(tee, 2))
    assert line_buckets(done["order"]) == [("TEE-S", 2, 0, 0, 0, 2), ("TEE-M", 2, 0, 0, 0, 2)]
    assert done["order"]["fulfillment_status"] == "fulfilled"
    assert await stock_at_locations(store, "TEE-S") == [("WH-1", 3, 0, 3)]
    timeline = await store.call("GET", f"/api/v1/orders/{order['id']}/timeline", 200)
    assert timeline["data"][-1]["changes"]["fulfillment_status"] == {
        "old": "partially_fulfilled",
        "new": "fulfilled",
    }


async def test_a_stale_expected_version_is_409_order_changed(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(("TEE-S", 1))
    line = order["lines"][0]["id"]
    shown = await preview(store, order["id"], set_quantity(line, 2))
    await commit(store, order["id"], set_quantity(line, 3))

    for attempt in (preview, commit):
        problem = await attempt(
            store,
            order["id"],
            set_quantity(line, 2),
            expected=409,
            expected_version=shown["edit"]["base_version"],
        )
        assert (problem["code"], problem["current_version"], problem["expected_version"]) == (
            "order_changed",
            2,
            1,
        )
    assert (await store.stock("TEE-S"))["reserved"] == 3


async def test_an_idempotency_key_applies_an_edit_once(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    await store.receive("TEE-M", "WH-1", 5)
    order = await store.place(("TEE-S", 1))
    line = order["lines"][0]["id"]
    key = {"Idempotency-Key": str(uuid.uuid4())}

    first = await commit(store, order["id"], add("TEE-M", 1), set_quantity(line, 2), headers=key)
    response = await store.client.post(
        f"/api/v1/orders/{order['id']}/edits",
        json={"changes": [add("TEE-M", 1), set_quantity(line, 2)]},
        headers={**store.headers, **key},
    )

    assert (response.status_code, response.json()) == (200, first)
    assert response.headers["Idempotent-Replayed"] == "true"
    assert (await store.stock("TEE-S"))["reserved"] == 2
    assert (await store.call("GET", f"/api/v1/orders/{order['id']}", 200))["version"] == 2
    problem = await commit(store, order["id"], set_quantity(line, 3), headers=key, expected=409)
    assert problem["code"] == "idempotency_key_reused"


async def test_only_placed_or_confirmed_orders_can_be_edited(store: Store, database: Database) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    held = await store.place(("TEE-S", 1), hold={"type": "fraud_review", "reason": "new customer"})
    edited = await commit(store, held["id"], set_quantity(held["lines"][0]["id"], 2))
    assert (edited["order"]["status"], edited["order"]["total_amount"]) == ("placed", 3998)

    done = await store.place(("TEE-S", 1))
    tenant = await get_tenant_record(database, store.slug)
    async with database.tenant_session(tenant.context) as session:
        await session.execute(
            update(Order).where(Order.id == uuid.UUID(done["id"])).values(status="completed")
        )
    for attempt in (preview, commit):
        problem = await attempt(store, done["id"], set_quantity(done["lines"][0]["id"], 2), expected=409)
        assert (problem["code"], problem["current_status"], problem["editable_statuses"]) == (
            "order_not_editable",
            "completed",
            ["confirmed", "placed"],
        )
        assert (
            problem["detail"]
            == "an order that is completed cannot be edited; only confirmed or placed orders can"
        )


async def test_bad_edits_are_422_naming_the_field(store: Store) -> None:
    await store.add_skus("USD-CAP", currency="USD")
    await store.receive("TEE-S", "WH-1", 5)
    await store.receive("USD-CAP", "WH-1", 5)
    order = await store.place(("TEE-S", 1))
    line = order["lines"][0]["id"]
    unknown = str(uuid.uuid4())

    async def fields(*changes: dict[str, Any], **body: Any) -> list[tuple[str, str]]:
        problem = await commit(store, order["id"], *changes, expected=422, **body)
        assert problem["code"] == "validation_failed"
        return [(error["field"], error["message"]) for error in problem["errors"]]

    assert await fields(set_quantity(line, 0), add("TEE-M", -1), set_price(line, 2**53 + 1)) == [
        ("changes[0].quantity", "must be a whole number from 1 to 100000"),
        ("changes[1].quantity", "must be a whole number from 1 to 100000"),
        ("changes[2].unit_price_amount", "must be from 0 to 9007199254740992 minor units"),
    ]
    overflow = "the amount would exceed 9007199254740992 minor units; split the order"
    assert await fields(
        set_quantity(unknown, 2),
        set_quantity("line-1", 2),
        add("NOPE", 1),
        add("USD-CAP", 1),
        set_price(line, 2**52),
        set_quantity(line, 3),
    ) == [
        ("changes[0].line_id", f"no line '{unknown}' on this order; see the order's lines"),
        ("changes[1].line_id", "no line 'line-1' on this order; see the order's lines"),
        ("changes[5].quantity", overflow),
        ("changes[2].sku", "no SKU 'NOPE' in this store"),
        ("changes[3].sku", "USD-CAP is priced in USD but the order is in EUR; give unit_price_amount in EUR"),
        ("changes", overflow),
    ]
    assert await fields(set_quantity(line, 2), remove(line)) == [
        ("changes[1].line_id", "line 1 is already changed by changes[0]; give one change per line and field")
    ]
    assert await fields(set_quantity(line, 1)) == [("changes", "this edit changes nothing on the order")]
    # An address is stored trimmed: padding it is no change.
    assert await fields(shipping_address={**ADDRESS, "city": " Lyon "}) == [
        ("changes", "this edit changes nothing on the order")
    ]
    assert await fields() == [("changes", "give at least one change or a shipping_address")]
    assert await fields(shipping_address={**ADDRESS, "country_code": "France"}) == [
        ("shipping_address.country_code", "must be an ISO 3166 country code such as FR or US")
    ]
    assert await fields(remove(line)) == [
        (
            "changes",
            "an edit cannot remove every line; to drop them all, cancel the order with a reason "
            "(POST /api/v1/orders/{id}/cancel)",
        )
    ]
    # A price in the order's currency makes a foreign-priced SKU welcome.
    done = await commit(store, order["id"], add("USD-CAP", 1, unit_price_amount=1200))
    assert done["order"]["total_amount"] == 1999 + 1200
    problem = await commit(store, order["id"], {"op": "rename", "line_id": line}, expected=422)
    assert problem["code"] == "validation_failed"


async def test_a_cancelled_line_cannot_be_edited(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    await store.receive("TEE-M", "WH-1", 5)
    placed = await store.place(("TEE-S", 1), ("TEE-M", 1))
    medium = placed["lines"][1]["id"]
    await commit(store, placed["id"], remove(medium))
    problem = await commit(store, placed["id"], set_quantity(medium, 2), expected=422)
    assert problem["errors"] == [
        {"field": "changes[0].line_id", "message": "line 2 is cancelled; add the SKU as a new line instead"}
    ]


async def test_another_stores_order_is_404_on_both_edit_routes(
    client: AsyncTestClient[Litestar], store: Store
) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(("TEE-S", 1))
    other = await open_store(client)
    change = set_quantity(order["lines"][0]["id"], 2)
    for attempt in (preview, commit):
        assert (await attempt(other, order["id"], change, expected=404))["code"] == "order_not_found"
        assert (await attempt(other, "not-an-id", change, expected=404))["code"] == "order_not_found"
    assert (await store.stock("TEE-S"))["reserved"] == 1
