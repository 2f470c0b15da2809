"""Stripe webhooks over HTTP: verified, applied once per event id, unknown customers acknowledged."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import stripe
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from ordersmith.billing.gateway import client_for
from ordersmith.billing.subscriptions import change_plan
from ordersmith.platform.billing_models import BillingAccount, BillingInvoice, StripeWebhookEvent
from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.identity.models import AuditEntry
from ordersmith.platform.models import Tenant
from ordersmith.platform.tenancy import TenantRecord
from tests.support import billing
from tests.support.billing import (
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    send_billing_webhook,
    stamped,
    stripe_settings,
    stripe_subscription,
    subscribed_account,
    subscription_event,
)
from tests.support.fake_stripe import FakeStripe, event, sign_webhook
from tests.support.http import bearer, sign_up

# Billing on a new fake Stripe: this `fake` overrides the payments one of tests/conftest.py.
fake = billing.billing_fake
stripe_client = billing.billing_client


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
    account = await subscribed_account(database, tenant.id)
    failed = event("invoice.payment_failed", _invoice(account, "in_1"))
    paid = event("invoice.paid", _invoice(account, "in_1"))

    response = await send_billing_webhook(stripe_client, failed)
    assert (response.status_code, response.json()) == (200, {"received": True, "outcome": "applied"})
    assert await _billing_status(database, tenant) == "past_due"
    response = await send_billing_webhook(stripe_client, paid)
    assert response.json()["outcome"] == "applied"
    assert await _billing_status(database, tenant) == "active"

    # Stripe delivers the failure again (it never saw our answer): no second effect.
    response = await send_billing_webhook(stripe_client, failed)
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
    account = await subscribed_account(database, tenant.id)
    failed = event("invoice.payment_failed", _invoice(account, "in_2"))

    response = await send_billing_webhook(
        stripe_client, failed, secret=secret, timestamp=int(time.time()) - age_seconds
    )

    assert response.status_code == 400
    assert response.json()["code"] == "webhook_signature_invalid"
    assert await _billing_status(database, tenant) == "active"
    async with database.platform_session() as session:
        assert await session.get(StripeWebhookEvent, failed["id"]) is None


async def test_a_body_changed_after_signing_is_refused(
    stripe_client: AsyncTestClient[Litestar], database: Database, tenant: TenantRecord
) -> None:
    account = await subscribed_account(database, tenant.id)
    signed = json.dumps(event("invoice.paid", _invoice(account, "in_3"))).encode()
    response = await stripe_client.post(
        WEBHOOK_PATH,
        content=signed.replace(b"12345", b"1"),
        headers={"Stripe-Signature": sign_webhook(signed, WEBHOOK_SECRET)},
    )
    assert response.status_code == 400
    response = await stripe_client.post(WEBHOOK_PATH, content=signed)
    assert response.status_code == 400


async def test_an_unknown_customer_is_logged_and_acknowledged_and_nothing_changes(
    stripe_client: AsyncTestClient[Litestar],
    database: Database,
    tenant: TenantRecord,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await subscribed_account(database, tenant.id)
    stranger = event(
        "customer.subscription.deleted",
        {"id": "sub_x", "object": "subscription", "customer": "cus_nobody", "status": "canceled"},
    )

    response = await send_billing_webhook(stripe_client, stranger)

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
    account = await subscribed_account(database, tenant.id)
    subscription = stripe_subscription(fake, account)

    await send_billing_webhook(
        stripe_client, event("customer.subscription.updated", {**subscription, "status": "past_due"})
    )
    assert await _billing_status(database, tenant) == "past_due"
    await send_billing_webhook(
        stripe_client, event("customer.subscription.updated", {**subscription, "status": "active"})
    )
    assert await _billing_status(database, tenant) == "active"
    await send_billing_webhook(
        stripe_client, event("customer.subscription.deleted", {**subscription, "status": "canceled"})
    )
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

    response = await send_billing_webhook(stripe_client, error)

    assert response.json()["outcome"] == "meter_error"
    async with database.platform_session() as session:
        row = await session.get(StripeWebhookEvent, error["id"])
    assert row is not None
    assert row.detail == {"report": report}


async def test_a_signed_event_holding_a_nul_character_is_taken_as_signed(
    stripe_client: AsyncTestClient[Litestar], database: Database, tenant: TenantRecord
) -> None:
    """Other input with a NUL is a 422; a Stripe event is verified as sent, and none of its text is stored."""
    await subscribed_account(database, tenant.id)
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

    response = await send_billing_webhook(stripe_client, stranger)

    assert (response.status_code, response.json()["outcome"]) == (200, "unknown_customer")


# ---- Stripe delivers events in no set order: a late event never undoes a newer one ----------------


async def test_a_failed_attempt_reported_after_the_invoice_was_paid_changes_nothing(
    stripe_client: AsyncTestClient[Litestar], database: Database, tenant: TenantRecord
) -> None:
    account = await subscribed_account(database, tenant.id)
    # The first attempt failed (t=1000), the retry succeeded (t=2000); the success arrives first.
    paid = stamped(event("invoice.paid", {**_invoice(account, "in_late"), "status": "paid"}), 2_000)
    failed = stamped(
        event("invoice.payment_failed", {**_invoice(account, "in_late"), "status": "open"}), 1_000
    )

    assert (await send_billing_webhook(stripe_client, paid)).json()["outcome"] == "applied"
    response = await send_billing_webhook(stripe_client, failed)

    assert (response.status_code, response.json()["outcome"]) == (200, "ignored")
    async with database.platform_session() as session:
        invoice = await session.scalar(
            select(BillingInvoice).where(BillingInvoice.stripe_invoice_id == "in_late")
        )
        kept = await session.get(StripeWebhookEvent, failed["id"])
    assert invoice is not None
    assert kept is not None
    assert (invoice.status, await _billing_status(database, tenant)) == ("paid", "active")
    assert kept.detail == {"invoice": "in_late", "status": "paid", "stale": "invoice_paid"}
    assert await _status_changes(database, tenant) == []


async def test_a_subscription_event_older_than_the_last_one_applied_changes_nothing(
    stripe_client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    account = await subscribed_account(database, tenant.id)
    subscription = stripe_subscription(fake, account)
    created = subscription_event("created", subscription, "active", 1_000)
    recovered = subscription_event("updated", subscription, "active", 2_000)
    overdue = subscription_event("updated", subscription, "past_due", 3_000)
    deleted = subscription_event("deleted", subscription, "canceled", 4_000)

    outcomes = [
        (await send_billing_webhook(stripe_client, body)).json()["outcome"]
        for body in (overdue, recovered, deleted, created)
    ]

    # The store went past due, then the subscription ended: the older `active` and `created` are history.
    assert outcomes == ["applied", "ignored", "applied", "ignored"]
    assert await _billing_status(database, tenant) == "canceled"
    assert [(change["from"], change["to"]) for change in await _status_changes(database, tenant)] == [
        ("active", "past_due"),
        ("past_due", "canceled"),
    ]
    async with database.platform_session() as session:
        refreshed = await session.get(BillingAccount, tenant.id)
        details = [(await session.get(StripeWebhookEvent, body["id"])) for body in (recovered, created)]
    assert refreshed is not None
    assert (refreshed.stripe_subscription_id, refreshed.subscription_status) == (
        subscription["id"],
        "canceled",
    )
    assert [row.detail["stale"] for row in details if row is not None] == [
        "older_than_the_last_event_applied",
        "subscription_ended",
    ]


async def test_an_event_of_an_older_subscription_never_takes_over_the_store_s_current_one(
    stripe_client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    first = await subscribed_account(database, tenant.id)
    old = dict(fake.objects["subscription"][first.stripe_subscription_id or ""])
    # The old subscription ends, the owner subscribes again.
    await send_billing_webhook(
        stripe_client, event("customer.subscription.deleted", {**old, "status": "canceled"})
    )
    await change_plan(database, tenant.id, "growth", actor=SYSTEM)
    async with database.platform_session() as session:
        resubscribed = await session.get(BillingAccount, tenant.id)
    assert resubscribed is not None
    current = resubscribed.stripe_subscription_id
    assert current not in (None, old["id"])
    assert await _billing_status(database, tenant) == "active"

    # Sent before the old subscription ended, these arrive now.
    late = [
        subscription_event("updated", old, "past_due", 1),
        subscription_event("created", old, "active", 1),
    ]
    outcomes = [(await send_billing_webhook(stripe_client, body)).json()["outcome"] for body in late]

    assert outcomes == ["ignored", "ignored"]
    async with database.platform_session() as session:
        account = await session.get(BillingAccount, tenant.id)
    assert account is not None
    assert (account.stripe_subscription_id, account.subscription_status) == (current, "active")
    assert await _billing_status(database, tenant) == "active"


async def test_only_a_subscription_created_after_the_current_one_replaces_it(
    stripe_client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    account = await subscribed_account(database, tenant.id)
    current = stripe_subscription(fake, account)
    await send_billing_webhook(stripe_client, event("customer.subscription.created", current))
    # Made in Stripe's dashboard, one a minute before the current subscription and one a minute after.
    older = {**current, "id": "sub_older", "created": current["created"] - 60, "status": "active"}
    newer = {**current, "id": "sub_newer", "created": current["created"] + 60, "status": "past_due"}

    assert (await send_billing_webhook(stripe_client, event("customer.subscription.created", older))).json()[
        "outcome"
    ] == "ignored"
    async with database.platform_session() as session:
        unchanged = await session.get(BillingAccount, tenant.id)
        assert unchanged is not None
        assert unchanged.stripe_subscription_id == current["id"]
    assert (await send_billing_webhook(stripe_client, event("customer.subscription.created", newer))).json()[
        "outcome"
    ] == "applied"

    async with database.platform_session() as session:
        replaced = await session.get(BillingAccount, tenant.id)
    assert replaced is not None
    assert (replaced.stripe_subscription_id, replaced.subscription_status) == ("sub_newer", "past_due")
    assert await _billing_status(database, tenant) == "past_due"


async def _expired_store(
    client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> tuple[dict[str, str], uuid.UUID, str]:
    """A store on Growth whose first invoice was never paid, so Stripe ended its subscription for good."""
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    tenant_id = uuid.UUID(owner["tenant"]["id"])
    response = await client.post("/api/v1/billing/plan", json={"plan": "growth"}, headers=headers)
    assert response.status_code == 200, response.text
    async with database.platform_session() as session:
        account = await session.get(BillingAccount, tenant_id)
    assert account is not None
    old = account.stripe_subscription_id or ""
    # After 23 hours without a first payment, Stripe ends the subscription: `incomplete_expired`.
    subscription = fake.objects["subscription"][old]
    subscription["status"] = "incomplete_expired"
    updated = await send_billing_webhook(client, event("customer.subscription.updated", dict(subscription)))
    assert updated.json()["outcome"] == "applied"
    plan = (await client.get("/api/v1/billing/plan", headers=headers)).json()
    assert (plan["state"], plan["is_read_only"]) == ("canceled", True)
    return headers, tenant_id, old


async def _subscription_of(
    database: Database, tenant_id: uuid.UUID
) -> tuple[str | None, str | None, str | None]:
    async with database.platform_session() as session:
        account = await session.get(BillingAccount, tenant_id)
    assert account is not None
    return account.stripe_subscription_id, account.subscription_status, account.plan


@pytest.mark.parametrize("plan", ["growth", "enterprise"], ids=["same-plan", "another-plan"])
async def test_choosing_a_plan_after_the_subscription_expired_makes_a_new_one_and_brings_the_store_back(
    stripe_client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database, plan: str
) -> None:
    headers, tenant_id, old = await _expired_store(stripe_client, fake, database)

    response = await stripe_client.post("/api/v1/billing/plan", json={"plan": plan}, headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["plan"], body["state"], body["is_read_only"]) == (plan, "active", False)
    new, status, recorded_plan = await _subscription_of(database, tenant_id)
    assert new is not None
    assert new != old
    assert (status, recorded_plan) == ("active", plan)
    assert fake.objects["subscription"][new]["metadata"] == {"tenant_id": str(tenant_id), "plan": plan}
    # The ended subscription was left as Stripe ended it: never asked to change.
    assert fake.requests_to("POST", f"/v1/subscriptions/{old}") == []
    assert fake.objects["subscription"][old]["status"] == "incomplete_expired"


async def test_the_fake_refuses_to_change_a_subscription_stripe_ended(
    stripe_client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> None:
    _, _, old = await _expired_store(stripe_client, fake, database)
    client = client_for(stripe_settings(fake))

    with pytest.raises(stripe.InvalidRequestError) as refused:
        await client.v1.subscriptions.update_async(old, {"metadata": {"plan": "enterprise"}})

    assert (refused.value.http_status, refused.value.user_message) == (
        400,
        "You can not update a subscription in `incomplete_expired` status.",
    )
