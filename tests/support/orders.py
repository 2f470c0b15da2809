"""A store set up over HTTP for order tests: SKUs, locations, stock, a customer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.http import bearer, sign_up

ADDRESS = {
    "recipient_name": "Ana Lima",
    "line1": "12 Rue des Lilas",
    "city": "Lyon",
    "postal_code": "69001",
    "country_code": "FR",
}


@dataclass
class Store:
    """One signed-up store and the ids of what the test created in it."""

    client: AsyncTestClient[Litestar]
    headers: dict[str, str]
    slug: str
    locations: dict[str, str] = field(default_factory=dict)
    customer_id: str = ""

    async def call(self, method: str, path: str, expected: int, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        response = await self.client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == expected, response.text
        return response.json()

    async def add_skus(self, *codes: str, price: int = 1000, currency: str = "EUR", **extra: Any) -> None:
        variants = [
            {"sku_code": code, "name": f"Item {code}", "price_amount": price, "currency": currency, **extra}
            for code in codes
        ]
        await self.call("POST", "/api/v1/products", 201, json={"name": "Things", "variants": variants})

    async def add_location(self, code: str, priority: int = 100, kind: str = "warehouse") -> str:
        body = await self.call(
            "POST",
            "/api/v1/locations",
            201,
            json={"code": code, "name": f"Location {code}", "kind": kind, "priority": priority},
        )
        self.locations[code] = body["id"]
        return str(body["id"])

    async def receive(self, sku: str, location: str, quantity: int) -> dict[str, Any]:
        body: dict[str, Any] = await self.call(
            "POST",
            "/api/v1/inventory/adjustments",
            201,
            json={
                "sku": sku,
                "location_id": self.locations[location],
                "kind": "receive",
                "quantity": quantity,
                "reason": "opening stock",
            },
        )
        return body

    async def stock(self, sku: str) -> dict[str, Any]:
        body: dict[str, Any] = await self.call("GET", "/api/v1/inventory", 200, params={"sku": sku})
        return body

    async def add_customer(self, email: str = "ana@example.com") -> str:
        body = await self.call(
            "POST", "/api/v1/customers", 201, json={"full_name": "Ana Lima", "email": email}
        )
        self.customer_id = str(body["id"])
        return self.customer_id

    def order_body(self, *lines: tuple[str, int], **extra: Any) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
            "shipping_address": ADDRESS,
            **extra,
        }

    async def place(self, *lines: tuple[str, int], expected: int = 201, **extra: Any) -> dict[str, Any]:
        headers = extra.pop("headers", {})
        body: dict[str, Any] = await self.call(
            "POST", "/api/v1/orders", expected, json=self.order_body(*lines, **extra), headers=headers
        )
        return body


async def open_store(client: AsyncTestClient[Litestar]) -> Store:
    """A new store with a customer; SKUs, locations and stock are up to the test."""
    body = await sign_up(client)
    store = Store(client, bearer(body["token"]["access_token"]), body["tenant"]["slug"])
    await store.add_customer()
    return store


async def two_sku_store(client: AsyncTestClient[Litestar], *, price: int) -> Store:
    """A store with SKUs TEE-S and TEE-M and two empty warehouses, WH-1 tried before WH-2."""
    store = await open_store(client)
    await store.add_skus("TEE-S", "TEE-M", price=price)
    await store.add_location("WH-1", priority=10)
    await store.add_location("WH-2", priority=20)
    return store
