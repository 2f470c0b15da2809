"""The demo store `ordersmith run` creates on a first start: stocked through the services, once."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.cli import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SLUG, ensure_demo_store
from ordersmith.platform.database import Database
from ordersmith.platform.settings import Settings
from tests.support.http import bearer, sign_in
from tests.support.orders import Store


def _orders(body: dict[str, Any]) -> list[tuple[int, str, str, int, str, int]]:
    return [
        (
            order["number"],
            order["status"],
            order["channel"],
            order["total_amount"],
            order["currency"],
            order["touch_count"],
        )
        for order in body["data"]
    ]


async def _by_location(store: Store, sku: str) -> list[tuple[str, int, int]]:
    stock = await store.stock(sku)
    return [(item["location_code"], item["on_hand"], item["reserved"]) for item in stock["locations"]]


async def test_a_first_start_stocks_the_demo_store_and_a_second_leaves_it_alone(
    client: AsyncTestClient[Litestar], database: Database, settings: Settings
) -> None:
    development = dataclasses.replace(settings, environment="development")
    first = await ensure_demo_store(database, development)
    assert "  It is stocked with 3 products, 2 locations, 2 customers and 3 orders.\n" in first
    second = await ensure_demo_store(database, development)
    assert "stocked" not in second
    assert second.startswith(f"  Demo store: {DEMO_SLUG!r}; sign in with POST /api/v1/auth/token\n")

    token = await sign_in(client, DEMO_EMAIL, DEMO_SLUG, password=DEMO_PASSWORD)
    store = Store(client, bearer(token), DEMO_SLUG)
    assert _orders(await store.call("GET", "/api/v1/orders", 200)) == [
        (3, "confirmed", "phone", 9100, "EUR", 1),
        (2, "confirmed", "web", 12800, "EUR", 0),
        (1, "confirmed", "web", 14200, "EUR", 0),
    ]
    # Eight blue mugs: the six at the warehouse (tried first), then two from the shop.
    assert await _by_location(store, "MUG-CERAMIC-BLUE") == [("WH-LYON", 6, 6), ("SHOP-PARIS", 4, 2)]
    assert await _by_location(store, "SHIRT-LINEN-M") == [("WH-LYON", 20, 2), ("SHOP-PARIS", 5, 0)]
    assert await _by_location(store, "SHIRT-LINEN-L") == [("SHOP-PARIS", 8, 1)]
    customers = await store.call("GET", "/api/v1/customers", 200)
    assert sorted((item["full_name"], item["email"]) for item in customers["data"]) == [
        ("Ana Lima", "ana.lima@example.com"),
        ("Jonas Berg", "jonas.berg@example.com"),
    ]
    products = await store.call("GET", "/api/v1/products", 200)
    assert sorted(variant["sku_code"] for item in products["data"] for variant in item["variants"]) == [
        "MUG-CERAMIC-BLUE",
        "MUG-CERAMIC-SAND",
        "SHIRT-LINEN-L",
        "SHIRT-LINEN-M",
        "SHIRT-LINEN-S",
        "TOTE-CANVAS",
    ]


async def test_outside_development_there_is_no_demo_store(database: Database, settings: Settings) -> None:
    assert await ensure_demo_store(database, settings) == ""
