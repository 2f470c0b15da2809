"""Customers for tests: a store's owner, a customer made over HTTP, the customer events written."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.models import OutboxEvent
from tests.support.http import bearer, sign_up

ADDRESS = {
    "label": "Home",
    "recipient_name": "Ana Lima",
    "line1": "12 Rue des Lilas",
    "city": "Lyon",
    "postal_code": "69001",
    "country_code": "FR",
}


async def owner(client: AsyncTestClient[Litestar]) -> tuple[dict[str, str], str]:
    """Headers of a new store's owner, and the owner's user id."""
    body = await sign_up(client)
    return bearer(body["token"]["access_token"]), body["user_id"]


async def create_customer(
    client: AsyncTestClient[Litestar], headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await client.post("/api/v1/customers", json=body, headers=headers)
    assert response.status_code == 201, response.text
    customer: dict[str, Any] = response.json()
    return customer


async def customer_events(database: Database, customer_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The customer.* events about one customer (or merging into it), oldest first."""
    async with database.platform_session() as session:
        rows = await session.execute(
            select(OutboxEvent.topic, OutboxEvent.payload)
            .where(
                OutboxEvent.topic.startswith("customer."),
                (OutboxEvent.payload["customer_id"].astext == customer_id)
                | (OutboxEvent.payload["survivor_id"].astext == customer_id),
            )
            .order_by(OutboxEvent.created_at, OutboxEvent.id)
        )
    return [(row.topic, row.payload) for row in rows]
