"""The touchless-order KPI: exact numbers from orders worked by integrations and by people."""

from __future__ import annotations

import datetime as dt
import importlib.util
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from ordersmith.platform.database import Database
from ordersmith.tenants.schema import TENANT_MIGRATIONS
from tests.support.members import add_member
from tests.support.order_actions import api_key_headers, ship, tenant_context
from tests.support.orders import Store, open_store

REPORT = "/api/v1/reports/orders/touches"


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    store = await open_store(client)
    await store.add_skus("TEE-S", price=1000)
    await store.add_location("WH-1", priority=10)
    await store.receive("TEE-S", "WH-1", 50)
    return store


async def finish(
    store: Store, database: Database, order: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    """Ship everything (simulated) and complete the order as `headers`."""
    await ship(database, store, order["lines"][0]["id"], order["lines"][0]["quantity_allocated"])
    completed: dict[str, Any] = await store.call(
        "POST", f"/api/v1/orders/{order['id']}/complete", 200, headers=headers
    )
    return completed


async def test_the_touchless_rate_counts_completed_orders_nobody_touched(
    client: AsyncTestClient[Litestar], store: Store, database: Database
) -> None:
    key = await api_key_headers(store)
    empty = await store.call("GET", REPORT, 200)
    assert {name: empty[name] for name in list(empty)[2:]} == {
        "orders_placed": 0,
        "orders_completed": 0,
        "orders_completed_touchless": 0,
        "touchless_rate": None,
        "average_touches": None,
    }

    # By an integration from start to finish: touchless.
    touchless = await finish(store, database, await store.place(("TEE-S", 1), headers=key), key)
    # Placed by a person: one touch.
    by_hand = await finish(store, database, await store.place(("TEE-S", 1)), key)
    # Placed by an integration, then put on hold by a person: one touch.
    held = await store.place(("TEE-S", 1), headers=key)
    hold = await store.call(
        "POST", f"/api/v1/orders/{held['id']}/hold", 201, json={"type": "manual", "reason": "?"}
    )
    await store.call(
        "POST", f"/api/v1/orders/{held['id']}/holds/{hold['hold']['id']}/release", 200, headers=key
    )
    held = await finish(store, database, held, key)
    # Still open: placed by an integration (0), and one a person placed then cancelled (2).
    await store.place(("TEE-S", 1), headers=key)
    cancelled = await store.place(("TEE-S", 1))
    await store.call("POST", f"/api/v1/orders/{cancelled['id']}/cancel", 200, json={"reason": "duplicate"})
    assert [order["touch_count"] for order in (touchless, by_hand, held)] == [0, 1, 1]

    report = await store.call("GET", REPORT, 200)
    assert {name: report[name] for name in list(report)[2:]} == {
        "orders_placed": 5,
        "orders_completed": 3,
        "orders_completed_touchless": 1,
        "touchless_rate": 0.3333,
        "average_touches": 0.8,
    }
    created_before = dt.datetime.fromisoformat(report["created_before"])
    created_after = dt.datetime.fromisoformat(report["created_after"])
    assert created_before - created_after == dt.timedelta(days=30)
    assert abs(created_before - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)

    # Archiving a completed order keeps it completed, and touchless: a person filing it
    # away touches it after it completed, which is not held against it. A viewer reads it too.
    archived = await store.call("POST", f"/api/v1/orders/{touchless['id']}/archive", 200)
    assert (archived["status"], archived["touch_count"]) == ("archived", 1)
    viewer = await add_member(client, database, store.headers, "viewer")
    again = await store.call("GET", REPORT, 200, headers=viewer.headers)
    assert (again["orders_completed"], again["orders_completed_touchless"]) == (3, 1)

    # A period that ends before the first order counts nothing.
    first = dt.datetime.fromisoformat(touchless["created_at"])
    params = {
        "created_before": first.isoformat(),
        "created_after": (first - dt.timedelta(days=1)).isoformat(),
    }
    before = await store.call("GET", REPORT, 200, params=params)
    assert (before["orders_placed"], before["touchless_rate"], before["average_touches"]) == (0, None, None)
    # The first order alone: [created_at, created_at + 1µs).
    params = {
        "created_after": first.isoformat(),
        "created_before": (first + dt.timedelta(microseconds=1)).isoformat(),
    }
    alone = await store.call("GET", REPORT, 200, params=params)
    assert (
        alone["orders_placed"],
        alone["orders_completed"],
        alone["touchless_rate"],
        alone["average_touches"],
    ) == (
        1,
        1,
        1.0,
        # Its one touch is the archiving, after it completed untouched.
        1.0,
    )

    other = await open_store(client)
    assert (await other.call("GET", REPORT, 200))["orders_placed"] == 0


async def test_a_bad_period_is_422_and_the_report_needs_reports_read(store: Store) -> None:
    problem = await store.call(
        "GET",
        REPORT,
        422,
        params={"created_after": "2026-11-02T00:00:00Z", "created_before": "2026-11-01T00:00:00Z"},
    )
    assert problem["errors"] == [{"field": "created_after", "message": "must be earlier than created_before"}]
    problem = await store.call("GET", REPORT, 422, params={"created_after": "2026-11-01T00:00:00"})
    assert problem["errors"] == [
        {"field": "created_after", "message": "must carry a time zone, such as 2026-11-27T00:00:00Z"}
    ]
    # The earliest end a report takes still has its 30 days before it; "since 1900" is fine.
    earliest = await store.call("GET", REPORT, 200, params={"created_before": "0001-02-01T00:00:00Z"})
    assert (earliest["created_after"], earliest["orders_placed"]) == ("0001-01-02T00:00:00Z", 0)
    assert (await store.call("GET", REPORT, 200, params={"created_after": "1900-01-01T00:00:00Z"}))[
        "orders_placed"
    ] == 0
    # Thirty days before the first week of year 1 would not even be a Python date.
    problem = await store.call("GET", REPORT, 422, params={"created_before": "0001-01-05T00:00:00Z"})
    assert problem["errors"] == [
        {
            "field": "created_before",
            "message": "must lie between 0001-02-01 and 9999-12-30, such as 2026-11-27T00:00:00Z",
        }
    ]
    writer = await api_key_headers(store, ["orders.read", "orders.write"])
    problem = await store.call("GET", REPORT, 403, headers=writer)
    assert problem["code"] == "permission_denied"


async def test_the_report_period_is_answered_in_utc(store: Store) -> None:
    params = {"created_after": "2026-11-01T00:00:00+02:00", "created_before": "2026-11-02T00:00:00+02:00"}
    report = await store.call("GET", REPORT, 200, params=params)
    assert (report["created_after"], report["created_before"]) == (
        "2026-10-31T22:00:00Z",
        "2026-11-01T22:00:00Z",
    )
    # A period given from one end only is answered in UTC as well.
    report = await store.call("GET", REPORT, 200, params={"created_before": "2026-11-02T00:00:00-05:00"})
    assert (report["created_after"], report["created_before"]) == (
        "2026-10-03T05:00:00Z",
        "2026-11-02T05:00:00Z",
    )


async def test_a_created_after_in_the_future_needs_a_created_before(store: Store) -> None:
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    problem = await store.call("GET", REPORT, 422, params={"created_after": tomorrow.isoformat()})
    assert problem["errors"] == [
        {
            "field": "created_after",
            "message": "must be earlier than created_before, which is now when not given; "
            "give created_before as well for a period that ends later",
        }
    ]
    # With its end given, a period ahead is a period like any other, as in the order list's filters.
    params = {
        "created_after": tomorrow.isoformat(),
        "created_before": (tomorrow + dt.timedelta(days=1)).isoformat(),
    }
    ahead = await store.call("GET", REPORT, 200, params=params)
    assert (ahead["orders_placed"], ahead["touchless_rate"], ahead["average_touches"]) == (0, None, None)


async def test_migration_0013_fills_in_the_touches_orders_completed_with(
    store: Store, database: Database
) -> None:
    key = await api_key_headers(store)
    touchless = await finish(store, database, await store.place(("TEE-S", 1), headers=key), key)
    by_hand = await finish(store, database, await store.place(("TEE-S", 1)), store.headers)
    # Touched after it completed: not one of the touches it completed with.
    await store.call("POST", f"/api/v1/orders/{touchless['id']}/archive", 200)
    path = TENANT_MIGRATIONS.script_location / "versions" / "0013_touches_at_completion.py"
    spec = importlib.util.spec_from_file_location("touches_at_completion", path)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    schema = (await tenant_context(database, store)).schema_name

    async def touches(connection: Any) -> dict[uuid.UUID, tuple[int, int | None]]:
        rows = await connection.execute(text("SELECT id, touch_count, touches_at_completion FROM orders"))
        return {row.id: (row.touch_count, row.touches_at_completion) for row in rows}

    async with database.owner.connect() as connection:
        # The orders as they stood before the migration, filled in again; rolled back.
        await connection.begin()
        try:
            await connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
            live = await touches(connection)
            await connection.execute(
                text("ALTER TABLE orders DROP CONSTRAINT ck_orders_touches_at_completion_when_completed")
            )
            # completed_at is the app's clock, the timeline the database's: an hour apart
            # here, and the fill-in must not care.
            await connection.execute(
                text(
                    "UPDATE orders SET touches_at_completion = NULL,"
                    " completed_at = completed_at - interval '1 hour'"
                )
            )
            await connection.execute(text(migration.FILL_IN))
            filled = await touches(connection)
        finally:
            await connection.rollback()
    # by_hand: placed (a touch) and completed by the owner (a second), in two requests.
    assert live == {uuid.UUID(touchless["id"]): (1, 0), uuid.UUID(by_hand["id"]): (2, 2)}
    assert filled == live
