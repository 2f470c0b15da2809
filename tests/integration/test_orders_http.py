"""Placing and reading orders over HTTP: reservation, splitting, refusals, idempotency."""

from __future__ import annotations

import uuid

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.models import OutboxEvent
from ordersmith.platform.pagination import cursor_error, encode_cursor
from tests.support.order_actions import ship
from tests.support.orders import ADDRESS, Store, open_store, two_sku_store
from tests.support.payments import pay


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    return await two_sku_store(client, price=1999)


async def test_an_order_reserves_its_stock_and_is_confirmed(store: Store, database: Database) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    await store.receive("TEE-M", "WH-1", 5)
    order = await store.place(("TEE-S", 2), ("TEE-M", 1), channel="web", external_reference="W-1001")

    assert order["status"] == "confirmed"
    assert order["number"] == 1
    assert (order["subtotal_amount"], order["total_amount"], order["currency"]) == (5997, 5997, "EUR")
    assert (order["payment_status"], order["fulfillment_status"]) == ("unpaid", "unfulfilled")
    assert (order["channel"], order["external_reference"], order["touch_count"]) == ("web", "W-1001", 1)
    assert [
        (line["sku"], line["quantity_ordered"], line["quantity_allocated"]) for line in order["lines"]
    ] == [
        ("TEE-S", 2, 2),
        ("TEE-M", 1, 1),
    ]
    reason = "WH-1 (priority 10) is the first location with all the units asked for, so they ship together"
    assert [(held["location_code"], held["quantity"], held["reason"]) for held in order["reservations"]] == [
        ("WH-1", 2, reason),
        ("WH-1", 1, reason),
    ]
    stock = await store.stock("TEE-S")
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (5, 2, 3)

    timeline = await store.call("GET", f"/api/v1/orders/{order['id']}/timeline", 200)
    assert [entry["kind"] for entry in timeline["data"]] == ["placed", "confirmed"]
    assert timeline["data"][1]["changes"] == {"status": {"old": "placed", "new": "confirmed"}}
    assert all(entry["actor_type"] == "user" and entry["is_touch"] for entry in timeline["data"])

    async with database.platform_session() as session:
        topics = list(
            await session.scalars(
                select(OutboxEvent.topic)
                .where(OutboxEvent.payload["order_id"].astext == order["id"])
                .order_by(OutboxEvent.created_at, OutboxEvent.topic)
            )
        )
    assert sorted(topics) == ["order.confirmed", "order.placed"]
    assert await store.call("GET", f"/api/v1/orders/{order['id']}", 200) == order


async def test_two_lines_of_one_sku_count_together_and_split_across_locations(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 3)
    await store.receive("TEE-S", "WH-2", 4)
    order = await store.place(("TEE-S", 2), ("TEE-S", 3))

    held = [(r["line_id"], r["location_code"], r["quantity"]) for r in order["reservations"]]
    first, second = (line["id"] for line in order["lines"])
    assert held == [(first, "WH-1", 2), (second, "WH-1", 1), (second, "WH-2", 2)]
    assert (
        order["reservations"][2]["reason"] == "no location has all 5; WH-2 (priority 20) gives the 2 it has"
    )
    stock = await store.stock("TEE-S")
    assert [(loc["location_code"], loc["reserved"], loc["available"]) for loc in stock["locations"]] == [
        ("WH-1", 3, 0),
        ("WH-2", 2, 2),
    ]


async def test_short_stock_is_409_naming_each_sku_and_nothing_is_written(
    store: Store, database: Database
) -> None:
    await store.receive("TEE-S", "WH-1", 1)
    await store.receive("TEE-M", "WH-2", 2)
    problem = await store.place(("TEE-S", 2), ("TEE-M", 3), expected=409)

    assert problem["code"] == "insufficient_stock"
    assert sorted(problem["shortfalls"], key=lambda item: item["sku"]) == [
        {"sku": "TEE-M", "requested": 3, "available": 2},
        {"sku": "TEE-S", "requested": 2, "available": 1},
    ]
    assert (await store.stock("TEE-S"))["reserved"] == 0
    assert (await store.call("GET", "/api/v1/orders", 200))["data"] == []


async def test_backorders_only_where_the_sku_allows_them(store: Store) -> None:
    await store.add_skus("MUG", price=800, allow_backorder=True)
    await store.receive("MUG", "WH-2", 2)
    order = await store.place(("MUG", 5))

    line = order["lines"][0]
    assert (line["quantity_allocated"], line["quantity_backordered"]) == (2, 3)
    stock = await store.stock("MUG")
    assert (stock["reserved"], stock["available"], stock["backordered"]) == (2, 0, 3)
    # A second order waits too; cancelling one unit of the first frees one backordered unit.
    await store.place(("MUG", 4))
    assert (await store.stock("MUG"))["backordered"] == 7
    await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/cancel",
        200,
        json={"reason": "smaller order", "lines": [{"line_id": line["id"], "quantity": 1}]},
    )
    assert (await store.stock("MUG"))["backordered"] == 6
    assert (await store.stock("TEE-S"))["backordered"] == 0


async def test_safety_stock_is_never_promised(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    await store.call(
        "PUT",
        "/api/v1/inventory/safety-stock",
        200,
        json={"sku": "TEE-S", "location_id": store.locations["WH-1"], "safety_stock": 4},
    )
    problem = await store.place(("TEE-S", 2), expected=409)
    assert problem["shortfalls"] == [{"sku": "TEE-S", "requested": 2, "available": 1}]


async def test_same_idempotency_key_and_body_gives_one_order_and_the_same_response(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await store.place(("TEE-S", 1), headers=key)
    response = await store.client.post(
        "/api/v1/orders", json=store.order_body(("TEE-S", 1)), headers={**store.headers, **key}
    )
    assert (response.status_code, response.json()) == (201, first)
    assert response.headers["Idempotent-Replayed"] == "true"
    assert (await store.stock("TEE-S"))["reserved"] == 1
    assert [order["id"] for order in (await store.call("GET", "/api/v1/orders", 200))["data"]] == [
        first["id"]
    ]

    problem = await store.place(("TEE-S", 2), headers=key, expected=409)
    assert problem["code"] == "idempotency_key_reused"


async def test_a_refused_order_does_not_use_up_its_idempotency_key(store: Store) -> None:
    key = {"Idempotency-Key": "retry-after-receiving"}
    assert (await store.place(("TEE-S", 1), headers=key, expected=409))["code"] == "insufficient_stock"
    await store.receive("TEE-S", "WH-1", 1)
    assert (await store.place(("TEE-S", 1), headers=key))["status"] == "confirmed"


async def test_bad_lines_are_422_naming_the_field(store: Store) -> None:
    await store.add_skus("USD-CAP", currency="USD")
    await store.receive("TEE-S", "WH-1", 5)
    problem = await store.place(("NOPE", 1), ("TEE-S", 0), ("USD-CAP", 1), expected=422)
    assert problem["errors"] == [
        {"field": "lines[1].quantity", "message": "must be a whole number from 1 to 100000"},
    ]
    problem = await store.place(("TEE-S", 1), ("NOPE", 1), ("USD-CAP", 1), expected=422)
    assert problem["errors"] == [
        {"field": "lines[1].sku", "message": "no SKU 'NOPE' in this store"},
        {
            "field": "lines[2].sku",
            "message": "USD-CAP is priced in USD but the order is in EUR; give unit_price_amount in EUR",
        },
    ]
    await store.add_skus("OLD-HAT", is_active=False)
    problem = await store.place(("TEE-S", -2), ("OLD-HAT", 1), expected=422)
    assert problem["errors"] == [
        {"field": "lines[0].quantity", "message": "must be a whole number from 1 to 100000"},
    ]
    problem = await store.place(("TEE-S", 1), ("OLD-HAT", 1), expected=422)
    assert problem["errors"] == [{"field": "lines[1].sku", "message": "OLD-HAT is not for sale (inactive)"}]
    assert (await store.stock("TEE-S"))["reserved"] == 0


async def test_a_code_with_a_trailing_newline_is_422_not_stored(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    problem = await store.place(("TEE-S", 1), channel="web\n", currency="EUR\n", expected=422)
    assert [error["field"] for error in problem["errors"]] == ["channel", "currency"]
    assert (await store.call("GET", "/api/v1/orders", 200))["data"] == []


async def test_price_overflow_and_unknown_customer_are_422(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    body = store.order_body(("TEE-S", 3))
    body["lines"][0]["unit_price_amount"] = 2**53
    body["customer_id"] = str(uuid.uuid4())
    problem = await store.call("POST", "/api/v1/orders", 422, json=body)
    assert problem["errors"] == [
        {"field": "customer_id", "message": "no such customer in this store; create it first"},
        {
            "field": "lines[0].unit_price_amount",
            "message": "the amount would exceed 9007199254740992 minor units; split the order",
        },
        {
            "field": "lines",
            "message": "the amount would exceed 9007199254740992 minor units; split the order",
        },
    ]


async def test_a_shipping_address_is_stored_trimmed_as_a_customers_is(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 1)
    padded = {**ADDRESS, "line1": "  12 Rue des Lilas", "city": " Lyon ", "postal_code": "69001 "}
    order = await store.place(("TEE-S", 1), shipping_address=padded)
    stored = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (
        stored["shipping_address"]["line1"],
        stored["shipping_address"]["city"],
        stored["shipping_address"]["postal_code"],
    ) == ("12 Rue des Lilas", "Lyon", "69001")


async def test_an_oversized_body_is_413(store: Store) -> None:
    body = store.order_body(("TEE-S", 1), external_reference="x" * 300_000)
    problem = await store.call("POST", "/api/v1/orders", 413, json=body)
    assert (problem["code"], problem["detail"]) == (
        "payload_too_large",
        "the body is larger than this route takes: at most 262,144 bytes (256 KB); send a smaller one",
    )


async def test_an_order_with_a_hold_is_placed_but_not_confirmed(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(
        ("TEE-S", 1), hold={"type": "fraud_review", "reason": "new customer, big basket"}
    )
    assert (order["status"], order["open_hold_count"]) == ("placed", 1)
    assert [(hold["type"], hold["release_role"]) for hold in order["holds"]] == [("fraud_review", "agent")]
    listed = await store.call("GET", "/api/v1/orders", 200, params={"has_open_hold": "true"})
    assert [item["id"] for item in listed["data"]] == [order["id"]]


@pytest.mark.parametrize(("tag", "typed"), [("İzmir", "İZMİR"), ("ΑΘΗΝΑΣ", "Αθηνασ")])
async def test_a_tag_is_found_as_written_whatever_its_letters(store: Store, tag: str, typed: str) -> None:
    """Tags fold case as PostgreSQL folds them: Python's lower() differs for İ and a final Σ."""
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(("TEE-S", 1), tags=[tag])
    for wanted in (tag, typed):
        found = await store.call("GET", "/api/v1/orders", 200, params={"tag": wanted})
        assert [item["id"] for item in found["data"]] == [order["id"]]


async def test_orders_list_by_filters_newest_first(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 10)
    await store.receive("TEE-M", "WH-1", 10)
    web = await store.place(("TEE-S", 1), channel="web", tags=["Vip"])
    phone = await store.place(("TEE-M", 1), channel="phone", external_reference="AMZ-113-77")
    both = await store.place(("TEE-S", 1), ("TEE-M", 1), channel="web")

    async def ids(**params: str) -> list[str]:
        body = await store.call("GET", "/api/v1/orders", 200, params=params)
        return [item["id"] for item in body["data"]]

    assert await ids() == [both["id"], phone["id"], web["id"]]
    assert await ids(channel="web") == [both["id"], web["id"]]
    assert await ids(sku="tee-m") == [both["id"], phone["id"]]
    assert await ids(sku="TEE-S", channel="web", tag="vip") == [web["id"]]
    # Channels are kept lower-case, so the filter ignores case too.
    assert await ids(channel="WEB") == [both["id"], web["id"]]
    # Tags match ignoring case, and are shown as they were typed.
    assert await ids(tag=" VIP ") == [web["id"]]
    assert web["tags"] == ["Vip"]
    assert await ids(customer_id=store.customer_id, status="confirmed") == [
        both["id"],
        phone["id"],
        web["id"],
    ]
    assert await ids(status="cancelled") == []
    # A filter naming something the store does not have matches nothing, like any other filter.
    assert await ids(customer_id="01a22721-0b3e-75a7-85d1-1374c0632752") == []
    assert await ids(sku="NO-SUCH-SKU") == []
    assert await ids(external_reference="AMZ-113-77") == [phone["id"]]
    assert await ids(external_reference="amz-113-77") == []
    assert await ids(tag="gift") == []
    page = await store.call("GET", "/api/v1/orders", 200, params={"limit": "2"})
    rest = await store.call(
        "GET", "/api/v1/orders", 200, params={"limit": "2", "cursor": page["next_cursor"]}
    )
    assert [item["id"] for item in page["data"] + rest["data"]] == [both["id"], phone["id"], web["id"]]
    problem = await store.call("GET", "/api/v1/orders", 422, params={"status": "shipped"})
    assert problem["errors"] == [
        {
            "field": "status",
            "message": "'shipped' is not a status; "
            "use draft, placed, confirmed, completed, cancelled, archived",
        }
    ]
    # An empty filter would match nothing: it is an error, not an empty list.
    problem = await store.call("GET", "/api/v1/orders", 422, params={"sku": "", "tag": " ", "channel": ""})
    assert problem["errors"] == [
        {"field": name, "message": "must not be empty; leave it out to match any"}
        for name in ("sku", "tag", "channel")
    ]
    problem = await store.call("GET", "/api/v1/orders", 422, params={"external_reference": "x" * 201})
    assert problem["errors"] == [{"field": "external_reference", "message": "must be 1 to 200 characters"}]


async def test_orders_list_by_state_dates_holds_and_a_merged_customers_history(
    store: Store, database: Database
) -> None:
    await store.receive("TEE-S", "WH-1", 10)
    ana = store.customer_id
    paid = await store.place(("TEE-S", 1))
    await pay(store, paid["id"], provider="manual", method="cash")
    bo = await store.add_customer("bo@example.com")
    held = await store.place(("TEE-S", 1), hold={"type": "address", "reason": "no house number"})
    cy = await store.add_customer("cy@example.com")
    shipped = await store.place(("TEE-S", 2))
    await ship(database, store, shipped["lines"][0]["id"], 1)
    dropped = await store.place(("TEE-S", 1))
    await store.call("POST", f"/api/v1/orders/{dropped['id']}/cancel", 200, json={"reason": "changed mind"})
    # Bo turns out to be Ana: Ana's history now holds Bo's orders, whichever id is asked for.
    await store.call("POST", f"/api/v1/customers/{ana}/merge", 200, json={"duplicate_id": bo})

    async def ids(**params: str | list[str]) -> list[str]:
        body = await store.call("GET", "/api/v1/orders", 200, params=params)
        return [item["id"] for item in body["data"]]

    assert await ids(customer_id=ana) == [held["id"], paid["id"]]
    assert await ids(customer_id=bo) == [held["id"], paid["id"]]
    assert await ids(customer_id=cy) == [dropped["id"], shipped["id"]]
    assert await ids(status=["placed", "cancelled"]) == [dropped["id"], held["id"]]
    assert await ids(payment_status="paid") == [paid["id"]]
    assert await ids(fulfillment_status="partially_fulfilled") == [shipped["id"]]
    assert await ids(has_open_hold="true") == [held["id"]]
    assert await ids(has_open_hold="false") == [dropped["id"], shipped["id"], paid["id"]]
    assert await ids(created_after=held["created_at"]) == [dropped["id"], shipped["id"], held["id"]]
    assert await ids(created_before=held["created_at"]) == [paid["id"]]
    window = {"created_after": held["created_at"], "created_before": dropped["created_at"]}
    assert await ids(**window) == [shipped["id"], held["id"]]
    problem = await store.call("GET", "/api/v1/orders", 422, params={"payment_status": "settled"})
    assert [error["field"] for error in problem["errors"]] == ["payment_status"]


async def test_times_the_database_cannot_hold_and_reversed_windows_are_422(store: Store) -> None:
    out_of_range = "must lie between 0001-02-01 and 9999-12-30, such as 2026-11-27T00:00:00Z"
    for params, errors in (
        (
            {"created_after": "0001-01-01T00:00:00+01:00"},
            [{"field": "created_after", "message": out_of_range}],
        ),
        (
            {"created_before": "9999-12-31T23:59:59-05:00"},
            [{"field": "created_before", "message": out_of_range}],
        ),
        (
            {"created_after": "2026-12-01T00:00:00Z", "created_before": "2026-11-01T00:00:00Z"},
            [{"field": "created_after", "message": "must be earlier than created_before"}],
        ),
    ):
        problem = await store.call("GET", "/api/v1/orders", 422, params=params)
        assert (problem["code"], problem["errors"]) == ("validation_failed", errors)
    # A cursor whose time PostgreSQL cannot take is one this list never returned.
    for moment in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"):
        cursor = encode_cursor(moment, "01a22721-0b3e-75a7-85d1-1374c0632752")
        problem = await store.call("GET", "/api/v1/orders", 422, params={"cursor": cursor})
        assert problem["errors"] == [{"field": "cursor", "message": cursor_error().message}]


async def test_another_stores_order_is_404_on_every_route(
    client: AsyncTestClient[Litestar], store: Store
) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(("TEE-S", 1))
    other = await open_store(client)
    for path in (f"/api/v1/orders/{order['id']}", f"/api/v1/orders/{order['id']}/timeline"):
        assert (await other.call("GET", path, 404))["code"] == "order_not_found"
    assert (await other.call("GET", "/api/v1/orders", 200))["data"] == []
    # Another store's customer is one this store does not have: no orders, as for any unknown id.
    listed = await other.call("GET", "/api/v1/orders", 200, params={"customer_id": store.customer_id})
    assert (listed["data"], listed["next_cursor"]) == ([], None)
    # The other store cannot order this store's customer or SKUs either.
    other.customer_id = store.customer_id
    problem = await other.place(("TEE-S", 1), expected=422)
    assert [error["field"] for error in problem["errors"]] == ["customer_id", "lines[0].sku"]
