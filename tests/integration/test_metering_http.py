"""Usage, the invoice preview, invoices and the portal over HTTP; each store sees only its own."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.app import create_app
from ordersmith.billing.ledger import close_month
from ordersmith.billing.metering import hour_of, month_of, record_usage
from ordersmith.billing.reporting import report_usage
from ordersmith.billing.request_metering import RequestBatch, hour_number, write_batch
from ordersmith.billing.seats import record_active_seats
from ordersmith.billing.subscriptions import change_plan
from ordersmith.platform.billing_models import BillingAccount
from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.plans import Meter
from ordersmith.platform.settings import Settings
from ordersmith.platform.tenancy import get_tenant_record
from tests.support.billing import flush_requests, forget_stripe_catalog, meter_orders, stripe_settings
from tests.support.fake_stripe import FakeStripe, serve_fake_stripe
from tests.support.fake_stripe.billing import metered_usage
from tests.support.members import add_member
from tests.support.orders import Store, open_store


async def _store_with_orders(client: AsyncTestClient[Litestar], database: Database, orders: int) -> Store:
    store = await open_store(client)
    await store.add_skus("MUG")
    await store.add_location("WH-1")
    await store.receive("MUG", "WH-1", 10)
    for _ in range(orders):
        await store.place(("MUG", 1))
    tenant = await get_tenant_record(database, store.slug)
    assert await meter_orders(database, tenant.id) == orders
    return store


async def test_each_store_sees_its_own_usage_of_the_period_per_hour(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    shop_a = await _store_with_orders(client, database, 2)
    shop_b = await _store_with_orders(client, database, 0)
    now = dt.datetime.now(dt.UTC)
    start, end = month_of(now)

    usage_a = await shop_a.call("GET", "/api/v1/billing/usage", 200)
    usage_b = await shop_b.call("GET", "/api/v1/billing/usage", 200)

    assert usage_a["plan"] == "trial"
    assert (usage_a["period_start"], usage_a["period_end"]) == (
        start.isoformat().replace("+00:00", "Z"),
        end.isoformat().replace("+00:00", "Z"),
    )
    assert usage_a["meters"][0] == {
        "meter": "orders",
        "quantity": 2,
        "included": 100,
        "aggregation": "sum",
        "is_billed": True,
    }
    # The store's requests are metered too (API requests, per hour); orders are what this test placed.
    order_hours = [hour for hour in usage_a["hours"] if hour["meter"] == "orders"]
    assert [(hour["meter"], hour["quantity"]) for hour in order_hours] == [("orders", 2)]
    assert dt.datetime.fromisoformat(order_hours[0]["hour"]) == hour_of(now)
    assert usage_b["meters"][0] == {
        "meter": "orders",
        "quantity": 0,
        "included": 100,
        "aggregation": "sum",
        "is_billed": True,
    }
    assert [hour for hour in usage_b["hours"] if hour["meter"] == "orders"] == []

    last_year = await shop_a.call("GET", "/api/v1/billing/usage", 200, params={"month": f"{now.year - 1}-01"})
    assert last_year["meters"][0]["quantity"] == 0
    refused = await shop_a.call("GET", "/api/v1/billing/usage", 422, params={"month": "January"})
    assert refused["errors"] == [{"field": "month", "message": "must be a month as YYYY-MM"}]


async def test_the_invoice_preview_rates_the_period_on_the_current_plan(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await _store_with_orders(client, database, 2)
    tenant = await get_tenant_record(database, store.slug)
    trial = await store.call("GET", "/api/v1/billing/invoice-preview", 200)
    assert (trial["plan"], trial["currency"], trial["total_amount"]) == ("trial", "usd", 0)

    await change_plan(database, tenant.id, "starter", actor=SYSTEM)
    async with database.platform_session() as session:
        for _ in range(600):
            await record_usage(
                session,
                usage_id=uuid.uuid4(),
                tenant_id=tenant.id,
                meter=Meter.ORDERS,
                occurred_at=dt.datetime.now(dt.UTC),
                source="test",
                subject_id=None,
            )
    # Requests and seats of the period are measured, and priced nowhere.
    flush_requests(client)
    await record_active_seats(database)
    usage = await store.call("GET", "/api/v1/billing/usage", 200)
    measured = {meter["meter"]: meter["quantity"] for meter in usage["meters"]}
    assert (measured["orders"], measured["seats"]) == (602, 1)
    assert measured["api_requests"] > 0
    preview = await store.call("GET", "/api/v1/billing/invoice-preview", 200)

    # 602 orders on Starter: $29.00, 500 included, 102 over at 8¢.
    assert preview["total_amount"] == 2_900 + 102 * 8
    assert [
        (line["kind"], line["quantity"], line["unit_amount"], line["amount"]) for line in preview["lines"]
    ] == [
        ("base", 1, 2_900, 2_900),
        ("included", 500, 0, 0),
        ("overage", 102, 8, 816),
    ]


async def test_usage_sums_orders_and_requests_and_shows_the_peak_of_seats(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await open_store(client)
    tenant = await get_tenant_record(database, store.slug)
    first = await add_member(client, database, store.headers, "agent")
    ten = dt.datetime(2026, 10, 5, 10, tzinfo=dt.UTC)
    eleven, noon = ten + dt.timedelta(hours=1), ten + dt.timedelta(hours=2)
    async with database.platform_session() as session:
        for minute in (5, 50):
            await record_usage(
                session,
                usage_id=uuid.uuid4(),
                tenant_id=tenant.id,
                meter=Meter.ORDERS,
                occurred_at=ten + dt.timedelta(minutes=minute),
                source="test",
                subject_id=None,
            )
        hour = hour_number(ten.timestamp())
        await write_batch(
            session, RequestBatch(uuid.uuid4(), 1, {(tenant.id, hour): 40, (tenant.id, hour + 1): 2})
        )
    # Two seats at 10:xx, three at 11:xx, two again at 12:xx: the month's seats are its peak, 3.
    await record_active_seats(database, now=ten + dt.timedelta(minutes=20))
    await add_member(client, database, store.headers, "viewer")
    await record_active_seats(database, now=eleven + dt.timedelta(minutes=10))
    await store.call("PATCH", f"/api/v1/users/{first.user_id}", 200, json={"status": "deactivated"})
    await record_active_seats(database, now=noon + dt.timedelta(minutes=10))
    other = await open_store(client)

    usage = await store.call("GET", "/api/v1/billing/usage", 200, params={"month": "2026-10"})

    assert usage["meters"] == [
        {"meter": "orders", "quantity": 2, "included": 100, "aggregation": "sum", "is_billed": True},
        {"meter": "api_requests", "quantity": 42, "included": 0, "aggregation": "sum", "is_billed": False},
        {"meter": "seats", "quantity": 3, "included": 0, "aggregation": "maximum", "is_billed": False},
    ]
    assert [
        (dt.datetime.fromisoformat(hour["hour"]), hour["meter"], hour["quantity"]) for hour in usage["hours"]
    ] == [
        (ten, "api_requests", 40),
        (ten, "orders", 2),
        (ten, "seats", 2),
        (eleven, "api_requests", 2),
        (eleven, "seats", 3),
        (noon, "seats", 2),
    ]
    theirs = await other.call("GET", "/api/v1/billing/usage", 200, params={"month": "2026-10"})
    assert [meter["quantity"] for meter in theirs["meters"]] == [0, 0, 0]
    assert theirs["hours"] == []


async def test_owners_and_admins_see_billing_and_managers_do_not(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await open_store(client)
    admin = await add_member(client, database, store.headers, "admin")
    manager = await add_member(client, database, store.headers, "manager")
    for path in ("/api/v1/billing/usage", "/api/v1/billing/invoice-preview", "/api/v1/billing/invoices"):
        assert (await client.get(path, headers=admin.headers)).status_code == 200
        response = await client.get(path, headers=manager.headers)
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    # Opening the payment portal is billing.manage: owners only.
    response = await client.post("/api/v1/billing/portal-sessions", headers=admin.headers)
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")


async def test_offline_invoices_are_listed_and_another_store_gets_404_for_them(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    shop_a = await _store_with_orders(client, database, 3)
    shop_b = await open_store(client)
    tenant_a = await get_tenant_record(database, shop_a.slug)
    await change_plan(database, tenant_a.id, "starter", actor=SYSTEM)
    this_month, _ = month_of(dt.datetime.now(dt.UTC))
    async with database.platform_session() as session:
        assert await close_month(session, tenant_a.id, "starter", month_start=this_month)
    async with database.platform_session() as session:
        # Closing the same month again adds nothing.
        assert not await close_month(session, tenant_a.id, "starter", month_start=this_month)

    listed = await shop_a.call("GET", "/api/v1/billing/invoices", 200)
    assert len(listed["data"]) == 1
    invoice = listed["data"][0]
    assert (invoice["source"], invoice["plan"], invoice["status"], invoice["total_amount"]) == (
        "local",
        "starter",
        "open",
        2_900,
    )
    assert [line["kind"] for line in invoice["lines"]] == ["base", "included"]
    assert await shop_a.call("GET", f"/api/v1/billing/invoices/{invoice['id']}", 200) == invoice

    assert (await shop_b.call("GET", "/api/v1/billing/invoices", 200))["data"] == []
    missing = await shop_b.call("GET", f"/api/v1/billing/invoices/{invoice['id']}", 404)
    assert missing["code"] == "invoice_not_found"
    await shop_b.call("GET", "/api/v1/billing/invoices/not-an-id", 404)


async def test_offline_there_is_no_portal_and_the_answer_points_at_the_invoices(
    client: AsyncTestClient[Litestar],
) -> None:
    store = await open_store(client)
    refused = await store.call("POST", "/api/v1/billing/portal-sessions", 409, json={})
    assert refused["code"] == "billing_offline"
    assert "GET /api/v1/billing/invoices" in refused["detail"]


@pytest.fixture
async def online_client(
    settings: Settings, database: Database
) -> AsyncIterator[tuple[AsyncTestClient[Litestar], FakeStripe]]:
    await forget_stripe_catalog(database)
    with serve_fake_stripe() as fake:
        app = create_app(dataclasses.replace(settings, billing=stripe_settings(fake)))
        async with AsyncTestClient(app) as client:
            yield client, fake


async def test_the_portal_link_comes_from_stripe_and_a_retry_gets_the_same_link(
    online_client: tuple[AsyncTestClient[Litestar], FakeStripe],
) -> None:
    client, fake = online_client
    stripe_base = fake.base_url
    store = await open_store(client)
    headers = {"Idempotency-Key": "portal-1"}
    first = await store.call("POST", "/api/v1/billing/portal-sessions", 201, json={}, headers=headers)
    again = await store.call("POST", "/api/v1/billing/portal-sessions", 201, json={}, headers=headers)
    assert first["url"].startswith(f"{stripe_base}/p/session/bps_")
    assert again == first


async def _orders_at(database: Database, tenant_id: uuid.UUID, moment: dt.datetime, count: int) -> None:
    async with database.platform_session() as session:
        for _ in range(count):
            await record_usage(
                session,
                usage_id=uuid.uuid4(),
                tenant_id=tenant_id,
                meter=Meter.ORDERS,
                occurred_at=moment,
                source="test",
                subject_id=None,
            )


async def test_with_stripe_the_preview_prices_what_stripe_bills_over_the_subscriptions_period(
    online_client: tuple[AsyncTestClient[Litestar], FakeStripe], database: Database
) -> None:
    client, fake = online_client
    store = await open_store(client)
    tenant = await get_tenant_record(database, store.slug)
    # 600 orders during the trial; then the owner chooses Starter (500 included) and places 10.
    await _orders_at(database, tenant.id, hour_of(dt.datetime.now(dt.UTC)) - dt.timedelta(hours=2), 600)
    await store.call("POST", "/api/v1/billing/plan", 200, json={"plan": "starter"})
    subscribed = dt.datetime.now(dt.UTC)
    await _orders_at(database, tenant.id, subscribed, 10)
    # Their hour closes and the hourly job reports it to Stripe.
    await report_usage(database, now=hour_of(subscribed) + dt.timedelta(hours=1, minutes=1))
    async with database.platform_session() as session:
        account = await session.get(BillingAccount, tenant.id)
    assert account is not None
    item = fake.objects["subscription"][account.stripe_subscription_id or ""]["items"]["data"][0]

    preview = await store.call("GET", "/api/v1/billing/invoice-preview", 200)

    assert metered_usage(fake, account.stripe_customer_id or "", "ordersmith_orders") == 10
    assert [
        (line["kind"], line["quantity"], line["unit_amount"], line["amount"]) for line in preview["lines"]
    ] == [("base", 1, 2_900, 2_900), ("included", 10, 0, 0)]
    assert (
        preview["total_amount"],
        dt.datetime.fromisoformat(preview["period_start"]),
        dt.datetime.fromisoformat(preview["period_end"]),
    ) == (
        2_900,
        dt.datetime.fromtimestamp(item["current_period_start"], dt.UTC),
        dt.datetime.fromtimestamp(item["current_period_end"], dt.UTC),
    )
    fake.unreachable = True
    unreachable = await store.call("GET", "/api/v1/billing/invoice-preview", 503)
    assert unreachable["code"] == "billing_provider_unavailable"
