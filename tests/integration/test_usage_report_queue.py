"""The usage report queue: reports Stripe refuses for good end `failed`, and never hold back newer ones."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from ordersmith.billing.gateway import current_settings
from ordersmith.billing.metering import hour_of
from ordersmith.billing.reporting import meter_identifier, queue_closed_hours, send_queued
from ordersmith.billing.subscriptions import change_plan
from ordersmith.platform.billing_models import BillingAccount, MeterReport, UsageHour
from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.tenancy import TenantRecord
from tests.support.billing import billing_with, forget_stripe_catalog, stripe_settings
from tests.support.fake_stripe import SECRET_KEY, FakeStripe, serve_fake_stripe
from tests.support.fake_stripe.billing import metered_usage
from tests.support.fake_stripe.server import decode_form

EVENT_NAME = "ordersmith_orders"
# Stripe's documented rule: a meter event's timestamp must lie within the past 35 days.
STRIPE_WINDOW_SECONDS = 35 * 86_400


@pytest.fixture
async def fake(database: Database) -> AsyncIterator[FakeStripe]:
    await forget_stripe_catalog(database)
    with serve_fake_stripe() as fake, billing_with(stripe_settings(fake)):
        answer = fake.handle

        # Only here: the other tests stamp usage at fixed dates that will age past the window.
        def within_stripe_window(
            method: str, path: str, headers: dict[str, str], body: bytes, query: str
        ) -> tuple[int, dict[str, Any]]:
            if method == "POST" and path == "/v1/billing/meter_events":
                stamp = int(decode_form(body.decode()).get("timestamp", time.time()))
                if stamp < time.time() - STRIPE_WINDOW_SECONDS:
                    message = "Timestamp must be within the past 35 days."
                    return 400, {"error": {"type": "invalid_request_error", "message": message}}
            return answer(method, path, headers, body, query)

        fake.handle = within_stripe_window  # type: ignore[method-assign]
        yield fake


async def _subscribed_with_hours(
    database: Database, tenant: TenantRecord, since: dt.datetime, hours: dict[dt.datetime, int]
) -> str:
    """Subscribe the store, metered from `since`, with these hour totals; its Stripe customer."""
    # The queue is every store's: what earlier tests left in it goes first, so this test starts empty.
    await queue_closed_hours(database, now=dt.datetime.now(dt.UTC))
    while await send_queued(database, current_settings()) or await _queued(database):
        pass
    await change_plan(database, tenant.id, "growth", actor=SYSTEM)
    async with database.platform_session() as session:
        account = await session.get(BillingAccount, tenant.id)
        assert account is not None
        account.metered_since = since
        for hour, quantity in hours.items():
            session.add(UsageHour(tenant_id=tenant.id, meter="orders", hour=hour, quantity=quantity))
    return account.stripe_customer_id or ""


async def _queued(database: Database) -> int:
    async with database.platform_session() as session:
        rows = await session.scalars(select(MeterReport.id).where(MeterReport.status == "queued"))
        return len(rows.all())


async def _reports(database: Database, tenant: TenantRecord) -> list[tuple[dt.datetime, str, int]]:
    async with database.platform_session() as session:
        rows = await session.scalars(
            select(MeterReport).where(MeterReport.tenant_id == tenant.id).order_by(MeterReport.hour)
        )
        return [(row.hour, row.status, row.attempts) for row in rows]


def _sent_hours(fake: FakeStripe) -> list[int]:
    return [
        int(request.params["timestamp"]) for request in fake.requests_to("POST", "/v1/billing/meter_events")
    ]


async def test_a_report_stripe_refuses_for_good_fails_once_and_newer_hours_still_go(
    fake: FakeStripe, database: Database, tenant: TenantRecord, caplog: pytest.LogCaptureFixture
) -> None:
    now = dt.datetime.now(dt.UTC)
    old = hour_of(now) - dt.timedelta(days=60)
    recent = hour_of(now) - dt.timedelta(hours=2)
    # Four hours too old for Stripe (never sent while our key was refused, say), one recent.
    old_hours = [old + dt.timedelta(hours=index) for index in range(4)]
    customer = await _subscribed_with_hours(
        database, tenant, old, {**{hour: 1 for hour in old_hours}, recent: 7}
    )
    settings = current_settings()

    # Hourly runs of three reports each.
    await queue_closed_hours(database, now=now)
    assert await send_queued(database, settings, batch_size=3) == 0
    assert await send_queued(database, settings, batch_size=3) == 1
    assert await send_queued(database, settings, batch_size=3) == 0

    assert await _reports(database, tenant) == [
        *[(hour, "failed", 1) for hour in old_hours],
        (recent, "sent", 1),
    ]
    # Each refused report was tried once (its one attempt), then never again; the recent hour went.
    assert _sent_hours(fake) == [int(recent.timestamp())]
    assert metered_usage(fake, customer, EVENT_NAME) == 7
    async with database.platform_session() as session:
        error = await session.scalar(
            select(MeterReport.last_error).where(MeterReport.tenant_id == tenant.id, MeterReport.hour == old)
        )
    assert error is not None
    assert error.endswith("Timestamp must be within the past 35 days.")
    refusals = [record for record in caplog.records if "for good" in record.getMessage()]
    assert [(record.levelno, record.getMessage().split()[4]) for record in refusals] == [
        (logging.ERROR, meter_identifier(tenant.id, "orders", hour, 1)) for hour in old_hours
    ]


async def test_while_stripe_refuses_our_key_reports_stay_queued_and_the_least_tried_go_first(
    fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    now = dt.datetime.now(dt.UTC)
    earlier, later = hour_of(now) - dt.timedelta(hours=3), hour_of(now) - dt.timedelta(hours=2)
    customer = await _subscribed_with_hours(database, tenant, earlier, {earlier: 2, later: 5})
    settings = current_settings()
    await queue_closed_hours(database, now=now)

    # The key is revoked: no report is at fault, so none fails; the run stops at the first refusal.
    fake.secret_key = "sk_test_revoked"
    assert await send_queued(database, settings) == 0
    assert await _reports(database, tenant) == [(earlier, "queued", 1), (later, "queued", 0)]

    fake.secret_key = SECRET_KEY
    assert await send_queued(database, settings, batch_size=1) == 1
    assert await send_queued(database, settings, batch_size=1) == 1

    # The report never tried went before the one already tried.
    assert await _reports(database, tenant) == [(earlier, "sent", 2), (later, "sent", 1)]
    assert _sent_hours(fake)[-2:] == [int(later.timestamp()), int(earlier.timestamp())]
    assert metered_usage(fake, customer, EVENT_NAME) == 7
