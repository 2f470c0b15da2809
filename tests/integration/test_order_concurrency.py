"""Never oversell, never deadlock: placement under real concurrency, and 503 `busy` on a lock timeout.

- 200 placements at once for a SKU with 10 units (at one location, then across three):
  every line is 1 unit; even requests have one line, odd ones the SKU on two lines (2
  units, summed). One-unit requests alone outnumber the stock, so the last unit always
  finds a taker: exactly 10 units are placed, every other request is a 409
  `insufficient_stock` naming the SKU, no request gets anything else (a deadlock or a
  lock timeout would be a 503 or a 500), and `reserved` equals both the ledger-backed
  stock and the sum of the live reservations.
- Placements taking two SKUs in opposite line order, and a cancellation or edit giving
  stock back while a placement holds the same rows, never deadlock.
- A request that waits past the lock timeout answers 503 `busy` with Retry-After.

The bursts go over real HTTP to a uvicorn server running the app (tests/support/
concurrency.py): Litestar's AsyncTestClient would answer them one at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from ordersmith.api.problems import EXCEPTION_HANDLERS, sqlstate_of
from ordersmith.app import create_app
from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.plans import Limit
from ordersmith.platform.settings import Settings
from ordersmith.platform.tenancy import TenantRecord, get_tenant_record, resolve_tenant
from ordersmith.tenants.catalog.models import Variant
from ordersmith.tenants.catalog.service import create_product
from ordersmith.tenants.customers.service import create_customer
from ordersmith.tenants.inventory.errors import InsufficientStockError
from ordersmith.tenants.inventory.models import InventoryAdjustment, Location, Reservation, StockLevel
from ordersmith.tenants.inventory.service import adjust_stock, create_location
from ordersmith.tenants.orders.cancellation import CancelRequest, cancel_order
from ordersmith.tenants.orders.edit_requests import EditRequest, SetQuantity
from ordersmith.tenants.orders.edits import edit_order
from ordersmith.tenants.orders.models import OrderLine
from ordersmith.tenants.orders.placement import place_order
from ordersmith.tenants.orders.rules import LineRequest, OrderRequest
from tests.support.concurrency import ConnectionPeak, backend_pid, post_all, serve, wait_until_blocked
from tests.support.entitlements import set_limit
from tests.support.orders import ADDRESS, Store, open_store

STOCK = 10
REQUESTS = 200


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
async def store(client: AsyncTestClient[Litestar], database: Database) -> Store:
    """One store for the whole module (sign-up is rate limited); each test uses its own SKU."""
    store = await open_store(client)
    # 200 requests at once are far over a trial's requests a minute, which is not what this tests.
    tenant = await get_tenant_record(database, store.slug)
    await set_limit(database, tenant.id, Limit.API_REQUESTS_PER_MINUTE, None)
    await store.add_location("ONE", priority=10)
    await store.add_location("A", priority=10)
    await store.add_location("B", priority=20)
    await store.add_location("C", priority=30)
    return store


def burst(store: Store, sku: str) -> list[dict[str, Any]]:
    """200 orders of one unit per line: even ones with one line, odd ones with the SKU on two lines."""
    one_line = store.order_body((sku, 1))
    two_lines = store.order_body((sku, 1), (sku, 1))
    return [one_line if index % 2 == 0 else two_lines for index in range(REQUESTS)]


def demand(body: dict[str, Any]) -> int:
    return sum(int(line["quantity"]) for line in body["lines"])


async def place_all_at_once(
    settings: Settings, database_url: str, store: Store, bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    """Send every order at once to a server of its own, and check they really overlapped."""
    database = Database(settings.database, database_url)
    peak = ConnectionPeak()
    peak.watch(database)
    try:
        async with serve(create_app(settings, database=database)) as base_url:
            responses = await post_all(base_url, "/api/v1/orders", store.headers, bodies)
    finally:
        await database.dispose()
    # The pool holds 10 + 10 connections: a burst that ran one by one would use one or two.
    assert peak.peak >= 10, f"only {peak.peak} connections were in use at once"
    return responses


def check_answers(sku: str, bodies: list[dict[str, Any]], responses: list[httpx.Response]) -> set[str]:
    """Exactly the stock's worth placed, every other answer a 409 naming the SKU; the placed ids."""
    unexpected = [(r.status_code, r.text) for r in responses if r.status_code not in (201, 409)]
    assert unexpected == []
    placed = [(body, r.json()) for body, r in zip(bodies, responses, strict=True) if r.status_code == 201]
    refused = [(body, r.json()) for body, r in zip(bodies, responses, strict=True) if r.status_code == 409]
    # Requests for 1 unit outnumber the stock, so the last unit always finds a taker.
    assert sum(demand(body) for body, _ in placed) == STOCK
    for body, order in placed:
        assert [(line["quantity_allocated"], line["quantity_backordered"]) for line in order["lines"]] == [
            (1, 0)
        ] * demand(body)
        assert sum(held["quantity"] for held in order["reservations"]) == demand(body)
    for body, problem in refused:
        assert problem["code"] == "insufficient_stock"
        available = problem["shortfalls"][0]["available"]
        assert problem["shortfalls"] == [{"sku": sku, "requested": demand(body), "available": available}]
        assert 0 <= available < demand(body)
    return {order["id"] for _, order in placed}


async def stock_rows(database: Database, tenant: TenantContext, sku: str) -> dict[str, tuple[int, ...]]:
    """Per location: on_hand, ledger sum, reserved, live reservations' sum."""
    ledger = (
        select(func.coalesce(func.sum(InventoryAdjustment.quantity), 0))
        .where(
            InventoryAdjustment.variant_id == StockLevel.variant_id,
            InventoryAdjustment.location_id == StockLevel.location_id,
        )
        .scalar_subquery()
    )
    held = (
        select(func.coalesce(func.sum(Reservation.quantity), 0))
        .where(
            Reservation.variant_id == StockLevel.variant_id,
            Reservation.location_id == StockLevel.location_id,
        )
        .scalar_subquery()
    )
    async with database.tenant_session(tenant) as session:
        rows = await session.execute(
            select(Location.code, StockLevel.on_hand, ledger, StockLevel.reserved, held)
            .join(Location, Location.id == StockLevel.location_id)
            .join(Variant, Variant.id == StockLevel.variant_id)
            .where(Variant.sku_code == sku)
        )
        return {code: tuple(figures) for code, *figures in rows}


async def orders_holding(database: Database, tenant: TenantContext, sku: str) -> set[str]:
    async with database.tenant_session(tenant) as session:
        ids = await session.scalars(select(OrderLine.order_id).where(OrderLine.sku_code == sku).distinct())
        return {str(order_id) for order_id in ids}


async def test_200_concurrent_orders_for_10_units_at_one_location_place_exactly_10(
    store: Store, settings: Settings, database_url: str, database: Database
) -> None:
    """Half the requests carry the SKU on two lines of one unit each (2 units summed), half on one."""
    await store.add_skus("SOLO")
    await store.receive("SOLO", "ONE", STOCK)
    bodies = burst(store, "SOLO")

    responses = await place_all_at_once(settings, database_url, store, bodies)

    placed = check_answers("SOLO", bodies, responses)
    tenant = await resolve_tenant(database, store.slug)
    assert await stock_rows(database, tenant, "SOLO") == {"ONE": (STOCK, STOCK, STOCK, STOCK)}
    assert await orders_holding(database, tenant, "SOLO") == placed
    stock = await store.stock("SOLO")
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (STOCK, STOCK, 0)


async def test_200_concurrent_orders_for_10_units_across_three_locations_place_exactly_10(
    store: Store, settings: Settings, database_url: str, database: Database
) -> None:
    """The same burst with the stock at three locations (3 + 3 + 4): two-unit orders may split."""
    await store.add_skus("TRIO")
    for location, quantity in (("A", 3), ("B", 3), ("C", 4)):
        await store.receive("TRIO", location, quantity)
    bodies = burst(store, "TRIO")

    responses = await place_all_at_once(settings, database_url, store, bodies)

    placed = check_answers("TRIO", bodies, responses)
    tenant = await resolve_tenant(database, store.slug)
    assert await stock_rows(database, tenant, "TRIO") == {
        "A": (3, 3, 3, 3),
        "B": (3, 3, 3, 3),
        "C": (4, 4, 4, 4),
    }
    assert await orders_holding(database, tenant, "TRIO") == placed
    stock = await store.stock("TRIO")
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (STOCK, STOCK, 0)


async def _shop(database: Database, tenant: TenantContext) -> uuid.UUID:
    """Two SKUs with 15 units at each of two locations; returns a customer's id."""
    async with database.tenant_session(tenant) as session:
        await create_product(
            tenant,
            session,
            {"name": "Pair"},
            [
                {"sku_code": code, "name": code, "price_amount": 500, "currency": "EUR"}
                for code in ("LEFT", "RIGHT")
            ],
        )
        for code, priority in (("L1", 10), ("L2", 20)):
            location = await create_location(
                tenant, session, {"code": code, "name": code, "kind": "warehouse", "priority": priority}
            )
            for sku in ("LEFT", "RIGHT"):
                await adjust_stock(
                    tenant,
                    session,
                    sku=sku,
                    location_id=location.id,
                    kind="receive",
                    quantity=15,
                    reason="opening stock",
                    actor=SYSTEM,
                )
        customer = await create_customer(tenant, session, {"full_name": "Ana Lima"}, author=SYSTEM)
        return customer.customer.id


async def test_orders_locking_two_skus_in_opposite_line_order_never_deadlock(
    database: Database, tenant: TenantRecord
) -> None:
    context = tenant.context
    customer_id = await _shop(database, context)
    start = asyncio.Event()

    async def place(first: str, second: str) -> str:
        await start.wait()
        request = OrderRequest(customer_id, [LineRequest(first, 1), LineRequest(second, 1)], ADDRESS)
        try:
            async with database.tenant_session(context) as session:
                await place_order(context, session, request, actor=SYSTEM)
                # Keep the stock locks a moment longer, so that the transactions overlap.
                await asyncio.sleep(0.005)
        except InsufficientStockError:
            return "insufficient_stock"
        return "placed"

    tasks = [
        asyncio.create_task(place("LEFT", "RIGHT") if index % 2 else place("RIGHT", "LEFT"))
        for index in range(80)
    ]
    start.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)

    assert [repr(outcome) for outcome in outcomes if isinstance(outcome, BaseException)] == []
    assert Counter(outcomes) == {"placed": 30, "insufficient_stock": 50}
    async with database.tenant_session(context) as session:
        rows = await session.execute(
            select(Variant.sku_code, func.sum(StockLevel.reserved))
            .join(Variant, Variant.id == StockLevel.variant_id)
            .group_by(Variant.sku_code)
        )
        assert dict(rows.all()) == {"LEFT": 30, "RIGHT": 30}
        held = await session.execute(
            select(Variant.sku_code, func.sum(Reservation.quantity))
            .join(Variant, Variant.id == Reservation.variant_id)
            .group_by(Variant.sku_code)
        )
        assert dict(held.all()) == {"LEFT": 30, "RIGHT": 30}


@pytest.mark.parametrize(("action", "reserved_after"), [("cancel", 1), ("edit", 2)])
async def test_giving_stock_back_while_a_placement_takes_the_same_skus_does_not_deadlock(
    database: Database, tenant: TenantRecord, action: str, reserved_after: int
) -> None:
    """An order lists its SKUs against lock order; a placement holds the first SKU's rows.

    Cancelling the order (or editing both lines down) releases the lines one by one: unless
    it locks their stock rows up front in lock order, it holds the second SKU's rows while
    waiting for the first, and the placement waits for the second: a deadlock.
    """
    context = tenant.context
    customer_id = await _shop(database, context)
    async with database.tenant_session(context) as session:
        rows = await session.execute(select(Variant.id, Variant.sku_code).order_by(Variant.id))
        first, second = (code for _, code in rows)  # in stock-lock order
        placed = await place_order(
            context,
            session,
            OrderRequest(customer_id, [LineRequest(second, 2), LineRequest(first, 2)], ADDRESS),
            actor=SYSTEM,
        )
    order_id = placed.order.id
    shrink = EditRequest([SetQuantity(str(line.id), 1) for line in placed.lines])

    async with database.tenant_session(context) as placing:
        placing_pid = await backend_pid(placing)
        # The placement has locked the first SKU's stock rows (it locks in that order).
        await placing.execute(
            select(StockLevel.on_hand)
            .join(Variant, Variant.id == StockLevel.variant_id)
            .where(Variant.sku_code == first)
            .with_for_update()
        )
        giving_back_pid = asyncio.get_running_loop().create_future()

        async def give_back() -> None:
            async with database.tenant_session(context) as session:
                giving_back_pid.set_result(await backend_pid(session))
                if action == "cancel":
                    await cancel_order(
                        context, session, order_id, CancelRequest("changed mind"), actor=SYSTEM
                    )
                else:
                    await edit_order(context, session, order_id, shrink, actor=SYSTEM)

        giving_back = asyncio.create_task(give_back())
        await wait_until_blocked(database, await giving_back_pid, by=placing_pid)
        # The placement goes on to the second SKU's rows, which nobody may hold while waiting.
        request = OrderRequest(customer_id, [LineRequest(first, 1), LineRequest(second, 1)], ADDRESS)
        await place_order(context, placing, request, actor=SYSTEM)
    await giving_back

    async with database.tenant_session(context) as session:
        reserved = await session.execute(
            select(Variant.sku_code, func.sum(StockLevel.reserved))
            .join(Variant, Variant.id == StockLevel.variant_id)
            .group_by(Variant.sku_code)
        )
        assert dict(reserved.all()) == {first: reserved_after, second: reserved_after}


async def test_a_placement_waiting_past_the_lock_timeout_is_503_busy_and_writes_nothing(
    store: Store, settings: Settings, database: Database
) -> None:
    await store.add_skus("HELD")
    await store.receive("HELD", "ONE", 5)
    tenant = await resolve_tenant(database, store.slug)
    impatient = dataclasses.replace(
        settings, database=dataclasses.replace(settings.database, lock_timeout_ms=300)
    )
    async with AsyncTestClient(create_app(impatient)) as client:
        hurried = Store(client, store.headers, store.slug, store.locations, store.customer_id)
        async with database.tenant_session(tenant) as session:
            # Another transaction holds the SKU's stock row, as a long placement would.
            await session.execute(
                select(StockLevel.on_hand)
                .join(Variant, Variant.id == StockLevel.variant_id)
                .where(Variant.sku_code == "HELD")
                .with_for_update()
            )
            started = time.monotonic()
            response = await client.post(
                "/api/v1/orders", json=hurried.order_body(("HELD", 1)), headers=store.headers
            )
            waited = time.monotonic() - started

        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert {key: problem[key] for key in ("type", "title", "status", "code")} == {
            "type": "urn:ordersmith:problem:busy",
            "title": "Busy",
            "status": 503,
            "code": "busy",
        }
        assert 0.3 <= waited < 5
        assert await orders_holding(database, tenant, "HELD") == set()

        # Once the lock is gone the same request goes through, and only it holds stock.
        order = await hurried.place(("HELD", 1))
    assert await orders_holding(database, tenant, "HELD") == {order["id"]}
    assert await stock_rows(database, tenant, "HELD") == {"ONE": (5, 5, 1, 1)}


async def _raised_by_postgres(database: Database, condition: str) -> DBAPIError:
    """A real error from PostgreSQL with this condition, as the driver wraps it."""
    with pytest.raises(DBAPIError) as caught:
        async with database.platform_session() as session:
            await session.execute(
                text(f"DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{condition}'; END $$")
            )
    return caught.value


@pytest.mark.parametrize(
    ("condition", "sqlstate", "status", "code"),
    [
        ("lock_not_available", "55P03", 503, "busy"),
        ("serialization_failure", "40001", 503, "busy"),
        ("deadlock_detected", "40P01", 503, "busy"),
        ("division_by_zero", "22012", 500, "internal_error"),
        ("unique_violation", "23505", 500, "internal_error"),
    ],
)
async def test_database_errors_map_to_busy_only_when_a_retry_can_succeed(
    database: Database, condition: str, sqlstate: str, status: int, code: str
) -> None:
    error = await _raised_by_postgres(database, condition)
    assert sqlstate_of(error) == sqlstate

    @get("/fails", sync_to_thread=False)
    def fails() -> None:
        raise error

    async with AsyncTestClient(Litestar([fails], exception_handlers=EXCEPTION_HANDLERS)) as client:
        response = await client.get("/fails")
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.headers.get("retry-after") == ("1" if status == 503 else None)
