"""Stripe webhooks over HTTP: verified, applied once per event id, unknown customers acknowledged."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from ordersmith.app import create_app
from ordersmith.billing.subscriptions import change_plan
from ordersmith.platform.billing_models import BillingAccount, BillingInvoice, StripeWebhookEvent
from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.identity.models import AuditEntry
from ordersmith.platform.models import Tenant
from ordersmith.platform.settings import Settings
from ordersmith.platform.tenancy import TenantRecord
from tests.support.billing import WEBHOOK_SECRET, forget_stripe_catalog, stripe_settings
from tests.support.fake_stripe import FakeStripe, event, serve_fake_stripe, sign_webhook

PATH = "/api/v1/billing/stripe/webhook"


@pytest.fixture
async def fake(database: Database) -> AsyncIterator[FakeStripe]:
    await forget_stripe_catalog(database)
    with serve_fake_stripe() as fake:
        yield fake


@pytest.fixture
async def stripe_client(settings: Settings, fake: FakeStripe) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = create_app(dataclasses.replace(settings, billing=stripe_settings(fake)))
    async with AsyncTestClient(app) as client:
        yield client


async def _customer_of(database: Database, tenant: TenantRecord) -> BillingAccount:
    await change_plan(database, tenant.id, "growth", actor=SYSTEM)
    async with database.platform_session() as session:
        account = await session.get(BillingAccount, tenant.id)
    assert account is not None
    return account


async def _send(
    client: AsyncTestClient[Litestar], body: dict[str, Any], *, secret: str = WEBHOOK_SECRET, **signing: Any
) -> Any:
    payload = json.dumps(body).encode()
    return await client.post(
        PATH,
        content=payload,
        headers={
            "Stripe-Signature": sign_webhook(payload, secret, **signing),
            "Content-Type": "application/json",
        },
    )


async def _billing_status(database: Database, tenant: TenantRecord) -> str:
    async with database.platform_session() as session:
        return str(await session.scalar(select(Tenant.billing_status).where(Tenant.id == tenant.id)))


async def _status_changes(database: Database, tenant: TenantRecord) -> list[dict[str, Any]]:
    async with database.platform_session() as session:
        rows = await session.scalars(
            select(AuditEntry.data)
            .where(AuditEntry.tenant_id == tenant.id, AuditEntry.action == "billing.status_changed")
            .order_by(AuditEntry.id)
        )
        return [dict(row) for row in rows]


def _invoice(account: BillingAccount, invoice_id: str) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": account.stripe_customer_id,
        "currency": "usd",
        "total": 12_345,
        "period_start": 1_764_547_200,
        "period_end": 1_767_225_600,
        "hosted_invoice_url": "https://invoice.stripe.test/i/1",
    }


async def test_a_payment_failure_applies_once_and_its_redelivery_after_payment_changes_nothing(
    stripe_client: AsyncTestClient[Litestar], database: Database, tenant: TenantRecord
) -> None:
    account = await _customer_of(database, tenant)
    failed = event("invoice.payment_failed", _invoice(account, "in_1"))
    paid = event("invoice.paid", _invoice(account, "in_1"))

    response = await _send(stripe_client, failed)
    assert (response.status_code, response.json()) == (200, {"received": True, "outcome": "applied"})
    assert await _billing_status(database, tenant) == "past_due"
    response = await _send(stripe_client, paid)
    assert response.json()["outcome"] == "applied"
    assert await _billing_status(database, tenant) == "active"

    # Stripe delivers the failure again (it never saw our answer): no second effect.
    response = await _send(stripe_client, failed)
    assert (response.status_code, response.json()) == (200, {"received": True, "outcome": "duplicate"})
    assert await _billing_status(database, tenant) == "active"
    assert [(change["from"], change["to"]) for change in await _status_changes(database, tenant)] == [
        ("active", "past_due"),
        ("past_due", "active"),
    ]
    async with database.platform_session() as session:
        invoice = await session.scalar(select(BillingInvoice).where(BillingInvoice.tenant_id == tenant.id))
    assert invoice is not None
    assert (invoice.source, invoice.stripe_invoice_id, invoice.status, invoice.total_amount) == (
        "stripe",
        "in_1",
        "paid",
        12_345,
    )


@pytest.mark.parametrize(
    ("secret", "age_seconds"),
    [("whsec_someone_else", 0), (WEBHOOK_SECRET, 301)],
    ids=["bad-signature", "stale-timestamp"],
)
async def test_a_bad_signature_or_a_stale_timestamp_is_refused_and_nothing_applied(
    stripe_client: AsyncTestClient[Litestar],
    database: Database,
    tenant: TenantRecord,
    secret: str,
    age_seconds: int,
) -> None:
    account = await _customer_of(database, tenant)
    failed = event("invoice.payment_failed", _invoice(account, "in_2"))

    response = await _send(stripe_client, failed, secret=secret, timestamp=int(time.time()) - age_seconds)

    assert response.status_code == 400
    assert response.json()["code"] == "webhook_signature_invalid"
    assert await _billing_status(database, tenant) == "active"
    async with database.platform_session() as session:
        assert await session.get(StripeWebhookEvent, failed["id"]) is None


async def test_a_body_changed_after_signing_is_refused(
    stripe_client: AsyncTestClient[Litestar], database: Database, tenant: TenantRecord
) -> None:
    account = await _customer_of(database, tenant)
    signed = json.dumps(event("invoice.paid", _invoice(account, "in_3"))).encode()
    response = await stripe_client.post(
        PATH,
        content=signed.replace(b"12345", b"1"),
        headers={"Stripe-Signature": sign_webhook(signed, WEBHOOK_SECRET)},
    )
    assert response.status_code == 400
    response = await stripe_client.post(PATH, content=signed)
    assert response.status_code == 400


async def test_an_unknown_customer_is_logged_and_acknowledged_and_nothing_changes(
    stripe_client: AsyncTestClient[Litestar],
    database: Database,
    tenant: TenantRecord,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _customer_of(database, tenant)
    stranger = event(
        "customer.subscription.deleted",
        {"id": "sub_x", "object": "subscription", "customer": "cus_nobody", "status": "canceled"},
    )

    response = await _send(stripe_client, stranger)

    assert (response.status_code, response.json()["outcome"]) == (200, "unknown_customer")
    assert "unknown customer cus_nobody" in caplog.text
    assert await _billing_status(database, tenant) == "active"
    async with database.platform_session() as session:
        row = await session.get(StripeWebhookEvent, stranger["id"])
    assert row is not None
    assert (row.outcome, row.tenant_id, row.detail) == ("unknown_customer", None, {"customer": "cus_nobody"})


async def test_subscription_updates_and_deletion_follow_stripe(
    stripe_client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    account = await _customer_of(database, tenant)
    subscription = dict(fake.objects["subscription"][account.stripe_subscription_id or ""])

    await _send(stripe_client, event("customer.subscription.updated", {**subscription, "status": "past_due"}))
    assert await _billing_status(database, tenant) == "past_due"
    await _send(stripe_client, event("customer.subscription.updated", {**subscription, "status": "active"}))
    assert await _billing_status(database, tenant) == "active"
    await _send(stripe_client, event("customer.subscription.deleted", {**subscription, "status": "canceled"}))
    assert await _billing_status(database, tenant) == "canceled"
    async with database.platform_session() as session:
        refreshed = await session.get(BillingAccount, tenant.id)
        handled = await session.scalar(
            select(func.count())
            .select_from(StripeWebhookEvent)
            .where(StripeWebhookEvent.tenant_id == tenant.id)
        )
    assert refreshed is not None
    assert refreshed.subscription_status == "canceled"
    assert handled == 3


async def test_a_meter_error_report_is_acknowledged_and_kept_for_an_operator(
    stripe_client: AsyncTestClient[Litestar], database: Database
) -> None:
    report = {"object": "billing.meter_error_report", "reason": {"error_count": 1}}
    error = event("v1.billing.meter.error_report_triggered", report)

    response = await _send(stripe_client, error)

    assert response.json()["outcome"] == "meter_error"
    async with database.platform_session() as session:
        row = await session.get(StripeWebhookEvent, error["id"])
    assert row is not None
    assert row.detail == {"report": report}


async def test_a_signed_event_holding_a_nul_character_is_taken_as_signed(
    stripe_client: AsyncTestClient[Litestar], database: Database, tenant: TenantRecord
) -> None:
    """Other input with a NUL is a 422; a Stripe event is verified as sent, and none of its text is stored."""
    await _customer_of(database, tenant)
    stranger = event(
        "customer.subscription.deleted",
        {
            "id": "sub_nul",
            "object": "subscription",
            "customer": "cus_nobody",
            "status": "canceled",
            "description": "gift\u0000note",
        },
    )

    response = await _send(stripe_client, stranger)

    assert (response.status_code, response.json()["outcome"]) == (200, "unknown_customer")
