"""Locations and stock over HTTP: the adjustment ledger, counts, safety stock, refusals."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ordersmith.platform.database import Database
from tests.support.order_actions import tenant_context
from tests.support.orders import Store, open_store, two_sku_store

LYON_SHOP = {
    "line1": "12 Rue des Lilas",
    "line2": "Back door",
    "city": "Lyon",
    "region": "Rhône",
    "postal_code": "69001",
    "country_code": "FR",
}


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    return await two_sku_store(client, price=500)


async def adjust(store: Store, expected: int, **body: object) -> dict[str, object]:
    result: dict[str, object] = await store.call("POST", "/api/v1/inventory/adjustments", expected, json=body)
    return result


async def _no_such_location_for_stock(store: Store, location_id: str) -> None:
    """An adjustment and a safety stock naming `location_id` both answer 404 location_not_found."""
    problem = await adjust(
        store, 404, sku="TEE-S", location_id=location_id, kind="receive", quantity=1, reason="PO 1"
    )
    assert problem["code"] == "location_not_found"
    problem = await store.call(
        "PUT",
        "/api/v1/inventory/safety-stock",
        404,
        json={"sku": "TEE-S", "location_id": location_id, "safety_stock": 1},
    )
    assert problem["code"] == "location_not_found"


async def test_on_hand_follows_the_ledger_and_a_count_records_the_difference(store: Store) -> None:
    wh1 = store.locations["WH-1"]
    await adjust(store, 201, sku="TEE-S", location_id=wh1, kind="receive", quantity=12, reason="PO 77")
    damaged = await adjust(
        store, 201, sku="tee-s", location_id=wh1, kind="damage", quantity=-2, reason="torn"
    )
    counted = await adjust(
        store, 201, sku="TEE-S", location_id=wh1, kind="count", quantity=7, reason="cycle count"
    )

    assert (damaged["quantity"], damaged["on_hand_after"]) == (-2, 10)
    assert (counted["kind"], counted["quantity"], counted["on_hand_after"]) == ("count", -3, 7)
    ledger = await store.call("GET", "/api/v1/inventory/adjustments", 200, params={"sku": "TEE-S"})
    assert [(row["kind"], row["quantity"], row["reason"]) for row in ledger["data"]] == [
        ("count", -3, "cycle count"),
        ("damage", -2, "torn"),
        ("receive", 12, "PO 77"),
    ]
    assert {row["actor_type"] for row in ledger["data"]} == {"user"}
    stock = await store.stock("TEE-S")
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (7, 0, 7)
    assert [(loc["location_code"], loc["on_hand"]) for loc in stock["locations"]] == [("WH-1", 7)]


@pytest.mark.parametrize(
    ("statement", "as_owner"),
    [
        ("UPDATE inventory_adjustments SET quantity = quantity + 1", False),
        ("DELETE FROM inventory_adjustments", False),
        # The store's role may not truncate at all; the schema's owner is stopped by the trigger.
        ("TRUNCATE inventory_adjustments", True),
    ],
)
async def test_the_ledger_refuses_changing_or_removing_its_rows(
    store: Store, database: Database, statement: str, as_owner: bool
) -> None:
    await store.receive("TEE-S", "WH-1", 4)
    tenant = await tenant_context(database, store)

    async def change_the_ledger() -> None:
        if as_owner:
            async with database.owner_connection() as connection:
                await connection.execute(text(f"SET LOCAL search_path TO {tenant.schema_name}"))
                await connection.execute(text(statement))
        else:
            async with database.tenant_session(tenant) as session:
                await session.execute(text(statement))

    with pytest.raises(DBAPIError, match="the stock ledger is append-only: record a correction instead"):
        await change_the_ledger()
    ledger = await store.call("GET", "/api/v1/inventory/adjustments", 200, params={"sku": "TEE-S"})
    assert [(row["kind"], row["quantity"], row["on_hand_after"]) for row in ledger["data"]] == [
        ("receive", 4, 4)
    ]


async def test_stock_never_goes_below_zero_and_bad_adjustments_say_why(store: Store) -> None:
    wh1 = store.locations["WH-1"]
    await store.receive("TEE-S", "WH-1", 3)
    problem = await adjust(
        store, 409, sku="TEE-S", location_id=wh1, kind="correction", quantity=-4, reason="x"
    )
    assert problem["code"] == "stock_would_go_negative"
    assert (await store.stock("TEE-S"))["on_hand"] == 3

    problem = await adjust(store, 422, sku="TEE-S", location_id=wh1, kind="damage", quantity=2, reason="")
    assert problem["errors"] == [
        {"field": "quantity", "message": "damage removes stock: give a negative quantity, such as -2"},
        {
            "field": "reason",
            "message": "say why: a damage needs a reason, such as what happened ('dropped by the forklift')",
        },
    ]
    # Every kind a person records needs a reason, receipts and counts too.
    for kind, quantity, hint in (
        ("receive", 2, "the purchase order or transfer it came with ('PO 1042')"),
        ("count", 3, "which count it was ('cycle count, aisle 4')"),
    ):
        problem = await adjust(
            store, 422, sku="TEE-S", location_id=wh1, kind=kind, quantity=quantity, reason=" "
        )
        assert problem["errors"] == [
            {"field": "reason", "message": f"say why: a {kind} needs a reason, such as {hint}"}
        ]
    assert (await store.stock("TEE-S"))["on_hand"] == 3
    # Left out, the reason is named as a missing field.
    problem = await adjust(store, 422, sku="TEE-S", location_id=wh1, kind="receive", quantity=1)
    assert problem["errors"] == [{"field": "reason", "message": "is required"}]
    await adjust(store, 201, sku="TEE-S", location_id=wh1, kind="receive", quantity=10**9, reason="PO 8")
    await adjust(store, 201, sku="TEE-S", location_id=wh1, kind="receive", quantity=10**9 - 3, reason="PO 9")
    problem = await adjust(
        store, 422, sku="TEE-S", location_id=wh1, kind="receive", quantity=1, reason="PO 10"
    )
    assert problem["errors"] == [
        {
            "field": "quantity",
            "message": "TEE-S has 2000000000 on hand at this location; 1 more would pass the most a "
            "location can hold (2,000,000,000). Check the quantity, or count the stock.",
        }
    ]
    assert (await store.stock("TEE-S"))["on_hand"] == 2 * 10**9
    ledger = await store.call("GET", "/api/v1/inventory/adjustments", 200, params={"sku": "TEE-S"})
    assert [row["on_hand_after"] for row in ledger["data"]] == [2 * 10**9, 10**9 + 3, 3]
    # The advice can be followed: a count states any figure a location may hold, and no more.
    counted = await adjust(
        store, 201, sku="TEE-S", location_id=wh1, kind="count", quantity=2 * 10**9 - 1, reason="cycle count"
    )
    assert (counted["quantity"], counted["on_hand_after"]) == (-1, 2 * 10**9 - 1)
    problem = await adjust(
        store, 422, sku="TEE-S", location_id=wh1, kind="count", quantity=2 * 10**9 + 1, reason="cycle count"
    )
    assert problem["errors"] == [
        {"field": "quantity", "message": "must be a whole number of units up to 2000000000"}
    ]
    await adjust(store, 201, sku="TEE-S", location_id=wh1, kind="count", quantity=2 * 10**9, reason="recount")
    problem = await adjust(
        store, 422, sku="TEE-S", location_id=wh1, kind="shipment", quantity=-1, reason="sent"
    )
    assert problem["errors"] == [
        {"field": "kind", "message": "must be one of receive, count, damage, correction"}
    ]


async def test_locations_are_listed_in_reservation_order_and_codes_are_unique(store: Store) -> None:
    await store.add_location("SHOP-1", priority=5, kind="store")
    listed = await store.call("GET", "/api/v1/locations", 200)
    assert [loc["code"] for loc in listed["data"]] == ["SHOP-1", "WH-1", "WH-2"]

    problem = await store.call(
        "POST", "/api/v1/locations", 409, json={"code": "wh-1", "name": "Again", "kind": "warehouse"}
    )
    assert problem["code"] == "location_code_taken"
    changed = await store.call(
        "PATCH", f"/api/v1/locations/{store.locations['WH-2']}", 200, json={"priority": 1, "is_active": False}
    )
    assert (changed["priority"], changed["is_active"]) == (1, False)


async def test_locations_of_equal_priority_are_listed_shown_and_reserved_from_by_code(
    client: AsyncTestClient[Litestar],
) -> None:
    store = await open_store(client)
    await store.add_skus("TEE-S")
    # WH-B is the older: listed by age (or by id), it came first while orders took WH-A's stock.
    await store.add_location("WH-B", priority=10)
    await store.add_location("WH-A", priority=10)
    await store.add_location("SHOP", priority=5, kind="store")
    await store.receive("TEE-S", "WH-B", 5)
    await store.receive("TEE-S", "WH-A", 5)

    listed = await store.call("GET", "/api/v1/locations", 200)
    assert [loc["code"] for loc in listed["data"]] == ["SHOP", "WH-A", "WH-B"]
    order = await store.place(("TEE-S", 7))
    assert [(held["location_code"], held["quantity"], held["reason"]) for held in order["reservations"]] == [
        ("WH-A", 5, "no location has all 7; WH-A (priority 10) gives the 5 it has"),
        ("WH-B", 2, "no location has all 7; WH-B (priority 10) gives the 2 it has"),
    ]
    stock = await store.stock("TEE-S")
    assert [(loc["location_code"], loc["reserved"], loc["available"]) for loc in stock["locations"]] == [
        ("WH-A", 5, 0),
        ("WH-B", 2, 3),
    ]


async def test_a_sku_or_product_not_for_sale_promises_none_but_shows_its_stock(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    await store.receive("TEE-S", "WH-2", 3)
    await store.place(("TEE-S", 1))
    await store.call(
        "PUT",
        "/api/v1/inventory/safety-stock",
        200,
        json={"sku": "TEE-S", "location_id": store.locations["WH-1"], "safety_stock": 1},
    )
    await store.call("PATCH", f"/api/v1/locations/{store.locations['WH-2']}", 200, json={"is_active": False})

    def figures(stock: dict[str, object]) -> tuple[object, ...]:
        locations = stock["locations"]
        assert isinstance(locations, list)
        return (
            stock["is_sellable"],
            stock["on_hand"],
            stock["reserved"],
            stock["available"],
            [
                (
                    loc["location_code"],
                    loc["location_active"],
                    loc["on_hand"],
                    loc["reserved"],
                    loc["safety_stock"],
                    loc["available"],
                )
                for loc in locations
            ],
        )

    # An inactive location promises nothing, in its own row as in the total.
    assert figures(await store.stock("TEE-S")) == (
        True,
        8,
        1,
        3,
        [("WH-1", True, 5, 1, 1, 3), ("WH-2", False, 3, 0, 0, 0)],
    )

    sku = (await store.call("GET", "/api/v1/skus", 200, params={"query": "TEE-S"}))["data"][0]["variant"]
    await store.call("PATCH", f"/api/v1/variants/{sku['id']}", 200, json={"is_active": False})
    not_for_sale = (False, 8, 1, 0, [("WH-1", True, 5, 1, 1, 0), ("WH-2", False, 3, 0, 0, 0)])
    assert figures(await store.stock("TEE-S")) == not_for_sale
    problem = await store.place(("TEE-S", 1), expected=422)
    assert problem["errors"] == [{"field": "lines[0].sku", "message": "TEE-S is not for sale (inactive)"}]

    # The SKU back on sale but its product switched off: still nothing to promise.
    await store.call("PATCH", f"/api/v1/variants/{sku['id']}", 200, json={"is_active": True})
    await store.call("PATCH", f"/api/v1/products/{sku['product_id']}", 200, json={"is_active": False})
    assert figures(await store.stock("TEE-S")) == not_for_sale
    problem = await store.place(("TEE-S", 1), expected=422)
    assert problem["errors"] == [{"field": "lines[0].sku", "message": "TEE-S is not for sale (inactive)"}]

    await store.call("PATCH", f"/api/v1/products/{sku['product_id']}", 200, json={"is_active": True})
    assert (await store.stock("TEE-S"))["available"] == 3


async def test_an_inactive_location_keeps_its_stock_but_promises_none(store: Store) -> None:
    await store.receive("TEE-S", "WH-2", 4)
    await store.call("PATCH", f"/api/v1/locations/{store.locations['WH-2']}", 200, json={"is_active": False})
    stock = await store.stock("TEE-S")
    assert (stock["on_hand"], stock["available"]) == (4, 0)
    problem = await store.place(("TEE-S", 1), expected=409)
    assert problem["shortfalls"] == [{"sku": "TEE-S", "requested": 1, "available": 0}]


async def test_another_stores_locations_and_skus_are_404(
    client: AsyncTestClient[Litestar], store: Store
) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    other = await open_store(client)
    location = store.locations["WH-1"]
    assert (await other.call("GET", f"/api/v1/locations/{location}", 404))["code"] == "location_not_found"
    assert (await other.call("PATCH", f"/api/v1/locations/{location}", 404, json={"name": "Mine"}))[
        "code"
    ] == "location_not_found"
    assert (await other.call("GET", "/api/v1/locations", 200))["data"] == []
    for path in ("/api/v1/inventory", "/api/v1/inventory/adjustments"):
        assert (await other.call("GET", path, 404, params={"sku": "TEE-S"}))["code"] == "sku_not_found"
    await other.add_skus("TEE-S")
    await _no_such_location_for_stock(other, location)
    assert (await store.stock("TEE-S"))["on_hand"] == 5


async def test_a_location_name_is_trimmed_and_its_address_is_a_postal_address(store: Store) -> None:
    name = " " + "N" * 200 + " "
    created = await store.call(
        "POST",
        "/api/v1/locations",
        201,
        json={
            "code": "SHOP-1",
            "name": name,
            "kind": "store",
            "address": {"city": " Lyon ", "country_code": "FR"},
        },
    )
    assert (created["name"], created["address"]) == ("N" * 200, {"city": "Lyon", "country_code": "FR"})

    problem = await store.call(
        "POST",
        "/api/v1/locations",
        422,
        json={
            "code": "SHOP-2",
            "name": "N" * 201,
            "kind": "store",
            "address": {
                "line1": " ",
                "city": "C" * 101,
                "postal_code": "6" * 21,
                "country_code": "fr",
                "street": "Rue des Lilas",
            },
        },
    )
    assert (problem["code"], problem["errors"]) == (
        "validation_failed",
        [
            {"field": "name", "message": "must be 1 to 200 characters"},
            {"field": "address.line1", "message": "must be 1 to 300 characters"},
            {"field": "address.city", "message": "must be 1 to 100 characters"},
            {"field": "address.postal_code", "message": "must be 1 to 20 characters"},
            {"field": "address.country_code", "message": "must be an ISO 3166 country code such as FR or US"},
            {
                "field": "address.street",
                "message": (
                    "is not an address field; use line1, line2, city, region, postal_code, country_code"
                ),
            },
        ],
    )

    shop = f"/api/v1/locations/{created['id']}"
    problem = await store.call("PATCH", shop, 422, json={"address": {"line2": "L" * 301}})
    assert problem["errors"] == [{"field": "address.line2", "message": "must be 1 to 300 characters"}]
    changed = await store.call(
        "PATCH",
        shop,
        200,
        json={
            "name": " Lyon shop ",
            "address": LYON_SHOP,
        },
    )
    assert (changed["name"], changed["address"]) == (
        "Lyon shop",
        LYON_SHOP,
    )
    assert await store.call("GET", shop, 200) == changed


async def test_an_oversized_location_body_is_413(store: Store) -> None:
    body = {"code": "BIG", "name": "Big", "kind": "warehouse", "address": {"line1": "x" * 70_000}}
    problem = await store.call("POST", "/api/v1/locations", 413, json=body)
    assert (problem["code"], problem["detail"]) == (
        "payload_too_large",
        "the body is larger than this route takes: at most 65,536 bytes (64 KB); send a smaller one",
    )
    location = store.locations["WH-1"]
    problem = await store.call(
        "PATCH", f"/api/v1/locations/{location}", 413, json={"address": body["address"]}
    )
    assert problem["code"] == "payload_too_large"
    assert [loc["code"] for loc in (await store.call("GET", "/api/v1/locations", 200))["data"]] == [
        "WH-1",
        "WH-2",
    ]


async def test_a_malformed_location_id_in_a_body_is_a_field_error_reported_with_the_others(
    store: Store,
) -> None:
    wrong_id = "a-location"
    problem = await adjust(
        store, 422, sku="TEE-S", location_id=wrong_id, kind="correction", quantity=0, reason="recount"
    )
    assert (problem["code"], problem["errors"]) == (
        "validation_failed",
        [
            {"field": "location_id", "message": "must be a location id from GET /api/v1/locations"},
            {"field": "quantity", "message": "a correction changes stock: give a non-zero quantity"},
        ],
    )
    problem = await store.call(
        "PUT",
        "/api/v1/inventory/safety-stock",
        422,
        json={"sku": "TEE-S", "location_id": wrong_id, "safety_stock": -1},
    )
    assert (problem["code"], problem["errors"]) == (
        "validation_failed",
        [
            {"field": "location_id", "message": "must be a location id from GET /api/v1/locations"},
            {"field": "safety_stock", "message": "must be a whole number from 0 to 1000000000"},
        ],
    )

    # A well-formed id of no location is still not found, in a body as in a path.
    no_location = "0190f0a0-0000-7000-8000-000000000000"
    await _no_such_location_for_stock(store, no_location)
    assert (await store.call("GET", f"/api/v1/locations/{wrong_id}", 404))["code"] == "location_not_found"
    ledger = await store.call("GET", "/api/v1/inventory/adjustments", 200, params={"sku": "TEE-S"})
    assert ledger["data"] == []


async def test_much_reserved_and_safety_stock_on_little_on_hand_is_short_not_an_overflow(
    store: Store, database: Database
) -> None:
    order = await store.call("POST", "/api/v1/orders", 201, json=store.order_body(("TEE-S", 1), draft=True))
    wh1 = store.locations["WH-1"]
    await store.call(
        "PUT",
        "/api/v1/inventory/safety-stock",
        200,
        json={"sku": "TEE-S", "location_id": wh1, "safety_stock": 10**9},
    )
    # Reserving 2*10^9 units through orders takes 80 orders of 250 lines; the total is set
    # directly instead (no reservation rows back it: this store's ledger is not checked).
    tenant = await tenant_context(database, store)
    async with database.tenant_session(tenant) as session:
        await session.execute(text("UPDATE stock_levels SET reserved = 2000000000"))

    # 0 - 2*10^9 - 10^9 is below -2^31: in integer arithmetic the placement was a 500,
    # placing the draft and placing a new order alike.
    for problem in (
        await store.call("POST", f"/api/v1/orders/{order['id']}/place", 409),
        await store.place(("TEE-S", 1), expected=409),
    ):
        assert (problem["code"], problem["shortfalls"]) == (
            "insufficient_stock",
            [{"sku": "TEE-S", "requested": 1, "available": 0}],
        )
    stock = await store.stock("TEE-S")
    assert [
        (item["location_code"], item["on_hand"], item["reserved"], item["safety_stock"], item["available"])
        for item in stock["locations"]
    ] == [("WH-1", 0, 2 * 10**9, 10**9, 0)]
