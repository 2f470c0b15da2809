"""A store behind on payments is active again only once no invoice of its subscription is left unpaid."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from typing import Any

import pytest
from alembic import command
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import Connection, select, text

from ordersmith.billing.webhooks import handle_webhook
from ordersmith.platform.billing_models import BillingAccount, BillingInvoice, StripeWebhookEvent
from ordersmith.platform.bootstrap import PLATFORM_MIGRATIONS
from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import AuditEntry
from ordersmith.platform.models import Tenant
from ordersmith.platform.tenancy import TenantRecord
from tests.support import billing
from tests.support.billing import (
    WEBHOOK_SECRET,
    send_billing_webhook,
    stamped,
    stripe_settings,
    stripe_subscription,
    subscribed_account,
    subscription_event,
)
from tests.support.concurrency import wait_for_lock_waiters
from tests.support.fake_stripe import FakeStripe, event, sign_webhook

# December 2025 and January 2026: invoice A bills the first month, invoice B the second.
PERIODS = {"in_a": (1_764_547_200, 1_767_225_600), "in_b": (1_767_225_600, 1_769_904_000)}


def _stripe_id(account: BillingAccount, name: str) -> str:
    """Invoice `name` of this store: Stripe's ids are unique, and tests share one database."""
    return f"{name}_{account.tenant_id.hex}"


def _name(stripe_id: str) -> str:
    """The name a test gave an invoice (`in_a`), from its Stripe id."""
    return stripe_id.rsplit("_", 1)[0]


# Billing on a new fake Stripe: this `fake` overrides the payments one of tests/conftest.py.
fake = billing.billing_fake
stripe_client = billing.billing_client


def _invoice(account: BillingAccount, name: str, *, is_legacy: bool = False) -> dict[str, Any]:
    """An invoice of the store's subscription, naming it as Stripe's API does (or did before 2025-03-31)."""
    start, end = PERIODS[name]
    billed_by = account.stripe_subscription_id
    body: dict[str, Any] = {
        "id": _stripe_id(account, name),
        "object": "invoice",
        "customer": account.stripe_customer_id,
        "currency": "usd",
        "total": 4_900,
        "period_start": start,
        "period_end": end,
        "hosted_invoice_url": f"https://invoice.stripe.test/{name}",
    }
    if is_legacy:
        return {**body, "subscription": billed_by}
    parent = {"type": "subscription_details", "subscription_details": {"subscription": billed_by}}
    return {**body, "parent": parent}


def _signed(body: dict[str, Any]) -> tuple[bytes, str]:
    payload = json.dumps(body).encode()
    return payload, sign_webhook(payload, WEBHOOK_SECRET)


async def _send(client: AsyncTestClient[Litestar], body: dict[str, Any]) -> str:
    """Send the event to our webhook; the outcome it answers with."""
    response = await send_billing_webhook(client, body)
    assert response.status_code == 200, response.text
    return str(response.json()["outcome"])


async def _standing(database: Database, tenant: TenantRecord) -> tuple[str, dt.datetime | None]:
    """The store's billing status and the start of its grace period."""
    async with database.platform_session() as session:
        row = (
            await session.execute(
                select(Tenant.billing_status, Tenant.past_due_since).where(Tenant.id == tenant.id)
            )
        ).one()
    return str(row.billing_status), row.past_due_since


async def _status_changes(database: Database, tenant: TenantRecord) -> list[tuple[str, str, str]]:
    async with database.platform_session() as session:
        rows = await session.scalars(
            select(AuditEntry.data)
            .where(AuditEntry.tenant_id == tenant.id, AuditEntry.action == "billing.status_changed")
            .order_by(AuditEntry.id)
        )
        return [(row["from"], row["to"], row["because"]) for row in rows]


async def _invoices(database: Database, tenant: TenantRecord) -> dict[str, tuple[str, str | None]]:
    """Each Stripe invoice of the store as kept, by name: its status and the subscription that billed it."""
    async with database.platform_session() as session:
        rows = await session.scalars(select(BillingInvoice).where(BillingInvoice.tenant_id == tenant.id))
        return {_name(str(row.stripe_invoice_id)): (row.status, row.stripe_subscription_id) for row in rows}


async def _detail(database: Database, body: dict[str, Any]) -> dict[str, Any]:
    """What was kept of how an event was handled, its invoices named as the test named them."""
    async with database.platform_session() as session:
        row = await session.get(StripeWebhookEvent, body["id"])
    assert row is not None
    detail = {**row.detail, "invoice": _name(row.detail["invoice"])}
    if "still_unpaid" in detail:
        detail["still_unpaid"] = [_name(stripe_id) for stripe_id in detail["still_unpaid"]]
    return detail


@pytest.mark.parametrize("is_legacy", [False, True], ids=["parent", "top-level-subscription"])
async def test_paying_one_invoice_while_another_is_unpaid_keeps_the_store_past_due_and_its_grace(
    stripe_client: AsyncTestClient[Litestar], database: Database, tenant: TenantRecord, is_legacy: bool
) -> None:
    account = await subscribed_account(database, tenant.id)
    subscription = account.stripe_subscription_id
    a_failed = event("invoice.payment_failed", _invoice(account, "in_a", is_legacy=is_legacy))
    b_failed = event("invoice.payment_failed", _invoice(account, "in_b", is_legacy=is_legacy))
    a_paid = event("invoice.paid", _invoice(account, "in_a", is_legacy=is_legacy))
    b_retry_failed = event("invoice.payment_failed", _invoice(account, "in_b", is_legacy=is_legacy))
    b_paid = event("invoice.paid", _invoice(account, "in_b", is_legacy=is_legacy))

    assert [await _send(stripe_client, body) for body in (a_failed, b_failed)] == ["applied", "applied"]
    status, grace_from = await _standing(database, tenant)
    assert status == "past_due"
    assert grace_from is not None

    # A is paid late; B is still owed, so the store stays past due on its first grace period.
    assert await _send(stripe_client, a_paid) == "applied"
    assert await _standing(database, tenant) == ("past_due", grace_from)
    assert await _detail(database, a_paid) == {"invoice": "in_a", "status": "paid", "still_unpaid": ["in_b"]}
    # Stripe's next attempt at B fails too: the grace period is not restarted.
    assert await _send(stripe_client, b_retry_failed) == "applied"
    assert await _standing(database, tenant) == ("past_due", grace_from)

    assert await _send(stripe_client, b_paid) == "applied"
    assert await _standing(database, tenant) == ("active", None)
    assert await _detail(database, b_paid) == {"invoice": "in_b", "status": "paid", "still_unpaid": []}
    assert await _status_changes(database, tenant) == [
        ("active", "past_due", "payment failed"),
        ("past_due", "active", "invoice paid"),
    ]
    assert await _invoices(database, tenant) == {
        "in_a": ("paid", subscription),
        "in_b": ("paid", subscription),
    }


async def test_stripe_calling_the_subscription_active_does_not_settle_an_unpaid_invoice(
    stripe_client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    account = await subscribed_account(database, tenant.id)
    subscription = stripe_subscription(fake, account)
    unpaid = subscription_event("updated", subscription, "unpaid", 1_000)
    active = subscription_event("updated", subscription, "active", 2_000)
    await _send(stripe_client, event("invoice.payment_failed", _invoice(account, "in_a")))
    _, grace_from = await _standing(database, tenant)
    assert grace_from is not None

    # Stripe gives up retrying A and marks the subscription unpaid. B, the latest invoice, is
    # paid, so Stripe calls the subscription active again, though A is still owed.
    assert await _send(stripe_client, unpaid) == "applied"
    assert await _send(stripe_client, event("invoice.paid", _invoice(account, "in_b"))) == "applied"
    assert await _send(stripe_client, active) == "applied"

    assert await _standing(database, tenant) == ("unpaid", grace_from)
    async with database.platform_session() as session:
        refreshed = await session.get(BillingAccount, tenant.id)
    assert refreshed is not None
    assert refreshed.subscription_status == "active"
    assert await _send(stripe_client, event("invoice.paid", _invoice(account, "in_a"))) == "applied"
    assert await _standing(database, tenant) == ("active", None)
    assert await _status_changes(database, tenant) == [
        ("active", "past_due", "payment failed"),
        ("past_due", "unpaid", "subscription unpaid"),
        ("unpaid", "active", "invoice paid"),
    ]


@pytest.mark.parametrize(
    ("kind", "status", "because"),
    [
        ("invoice.voided", "void", "invoice voided"),
        ("invoice.marked_uncollectible", "uncollectible", "invoice marked uncollectible"),
    ],
    ids=["voided", "uncollectible"],
)
async def test_a_voided_or_written_off_invoice_is_owed_no_more(
    stripe_client: AsyncTestClient[Litestar],
    database: Database,
    tenant: TenantRecord,
    kind: str,
    status: str,
    because: str,
) -> None:
    account = await subscribed_account(database, tenant.id)
    b_failed = stamped(event("invoice.payment_failed", _invoice(account, "in_b")), 1_000)
    await _send(stripe_client, b_failed)
    await _send(stripe_client, event("invoice.paid", _invoice(account, "in_a")))
    assert (await _standing(database, tenant))[0] == "past_due"

    settled = stamped(event(kind, {**_invoice(account, "in_b"), "status": status}), 3_000)
    assert await _send(stripe_client, settled) == "applied"
    assert await _standing(database, tenant) == ("active", None)

    # An attempt made before B was settled, reported late, does not make it owed again.
    late = stamped(event("invoice.payment_failed", _invoice(account, "in_b")), 2_000)
    assert await _send(stripe_client, late) == "ignored"
    assert await _detail(database, late) == {
        "invoice": "in_b",
        "status": status,
        "stale": f"invoice_{status}",
    }
    assert await _standing(database, tenant) == ("active", None)
    assert (await _invoices(database, tenant))["in_b"] == (status, account.stripe_subscription_id)
    assert await _status_changes(database, tenant) == [
        ("active", "past_due", "payment failed"),
        ("past_due", "active", because),
    ]


async def test_a_written_off_invoice_can_still_be_paid_and_a_paid_one_not_voided(
    stripe_client: AsyncTestClient[Litestar], database: Database, tenant: TenantRecord
) -> None:
    account = await subscribed_account(database, tenant.id)
    steps = [
        event("invoice.payment_failed", _invoice(account, "in_a")),
        event("invoice.marked_uncollectible", _invoice(account, "in_a")),
        event("invoice.paid", _invoice(account, "in_a")),
        event("invoice.voided", _invoice(account, "in_a")),
    ]

    outcomes = [await _send(stripe_client, body) for body in steps]

    assert outcomes == ["applied", "applied", "applied", "ignored"]
    assert await _invoices(database, tenant) == {"in_a": ("paid", account.stripe_subscription_id)}
    assert await _detail(database, steps[-1]) == {
        "invoice": "in_a",
        "status": "paid",
        "stale": "invoice_paid",
    }
    assert await _standing(database, tenant) == ("active", None)


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(["a_failed", "a_paid", "b_failed"])),
    ids=lambda order: "-".join(order),
)
async def test_the_same_events_in_any_order_or_replayed_leave_the_store_the_same(
    stripe_client: AsyncTestClient[Litestar], database: Database, tenant: TenantRecord, order: tuple[str, ...]
) -> None:
    account = await subscribed_account(database, tenant.id)
    subscription = account.stripe_subscription_id
    events = {
        "a_failed": stamped(event("invoice.payment_failed", _invoice(account, "in_a")), 1_000),
        "a_paid": stamped(event("invoice.paid", _invoice(account, "in_a")), 2_000),
        "b_failed": stamped(event("invoice.payment_failed", _invoice(account, "in_b")), 3_000),
    }

    for name in order:
        await _send(stripe_client, events[name])
    replays = [await _send(stripe_client, events[name]) for name in order]

    assert replays == ["duplicate", "duplicate", "duplicate"]
    assert (await _standing(database, tenant))[0] == "past_due"
    assert await _invoices(database, tenant) == {
        "in_a": ("paid", subscription),
        "in_b": ("payment_failed", subscription),
    }
    await _send(stripe_client, stamped(event("invoice.paid", _invoice(account, "in_b")), 4_000))
    assert await _standing(database, tenant) == ("active", None)


async def test_an_unpaid_invoice_of_an_ended_subscription_does_not_hold_the_next_one(
    stripe_client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    first = await subscribed_account(database, tenant.id)
    old = dict(fake.objects["subscription"][first.stripe_subscription_id or ""])
    await _send(stripe_client, event("invoice.payment_failed", _invoice(first, "in_a")))
    await _send(stripe_client, event("customer.subscription.deleted", {**old, "status": "canceled"}))
    second = await subscribed_account(database, tenant.id)
    assert second.stripe_subscription_id != old["id"]
    assert (await _standing(database, tenant))[0] == "active"

    await _send(stripe_client, event("invoice.payment_failed", _invoice(second, "in_b")))
    assert (await _standing(database, tenant))[0] == "past_due"
    paid = event("invoice.paid", _invoice(second, "in_b"))
    assert await _send(stripe_client, paid) == "applied"

    # Stripe collects nothing more for the ended subscription: its open invoice A holds nobody back.
    assert await _standing(database, tenant) == ("active", None)
    assert await _detail(database, paid) == {"invoice": "in_b", "status": "paid", "still_unpaid": []}
    assert await _invoices(database, tenant) == {
        "in_a": ("payment_failed", old["id"]),
        "in_b": ("paid", second.stripe_subscription_id),
    }


async def test_a_late_failed_payment_of_an_ended_subscription_leaves_the_next_one_active(
    stripe_client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    first = await subscribed_account(database, tenant.id)
    old = dict(fake.objects["subscription"][first.stripe_subscription_id or ""])
    await _send(stripe_client, event("customer.subscription.deleted", {**old, "status": "canceled"}))
    second = await subscribed_account(database, tenant.id)
    assert second.stripe_subscription_id != old["id"]
    changes_before = await _status_changes(database, tenant)

    # Stripe's last attempt at the ended subscription's invoice is reported after the store came back.
    late = event("invoice.payment_failed", _invoice(first, "in_a"))
    assert await _send(stripe_client, late) == "applied"

    assert await _standing(database, tenant) == ("active", None)
    assert await _status_changes(database, tenant) == changes_before
    assert await _detail(database, late) == {
        "invoice": "in_a",
        "status": "payment_failed",
        "standing": "not_the_current_subscription",
    }
    assert await _invoices(database, tenant) == {"in_a": ("payment_failed", old["id"])}
    # The same failure on the current subscription's invoice still makes the store past due.
    await _send(stripe_client, event("invoice.payment_failed", _invoice(second, "in_b")))
    assert (await _standing(database, tenant))[0] == "past_due"


async def test_the_last_two_unpaid_invoices_paid_at_the_same_moment_bring_the_store_back(
    stripe_client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database, tenant: TenantRecord
) -> None:
    account = await subscribed_account(database, tenant.id)
    for name in ("in_a", "in_b"):
        await _send(stripe_client, event("invoice.payment_failed", _invoice(account, name)))
    payments = [_signed(event("invoice.paid", _invoice(account, name))) for name in ("in_a", "in_b")]

    # Both payments arrive while the store's row is held, so each has read its invoices before
    # either commits: the one applied second must still see the first one's payment.
    async with database.platform_session() as session:
        await session.execute(select(Tenant.id).where(Tenant.id == tenant.id).with_for_update())
        handling = [
            asyncio.create_task(handle_webhook(database, stripe_settings(fake), payload, signature))
            for payload, signature in payments
        ]
        await wait_for_lock_waiters(database, 2)
    outcomes = await asyncio.gather(*handling)

    assert outcomes == ["applied", "applied"]
    assert await _standing(database, tenant) == ("active", None)
    assert await _invoices(database, tenant) == {
        "in_a": ("paid", account.stripe_subscription_id),
        "in_b": ("paid", account.stripe_subscription_id),
    }


async def test_two_stripe_invoices_of_one_period_are_both_kept(
    stripe_client: AsyncTestClient[Litestar], database: Database, tenant: TenantRecord
) -> None:
    account = await subscribed_account(database, tenant.id)
    subscription = account.stripe_subscription_id
    cycle = _invoice(account, "in_a")
    # A plan changed within the period is invoiced at once (prorated), over the same period.
    prorated = {**cycle, "id": _stripe_id(account, "in_c"), "total": 1_200}

    assert await _send(stripe_client, event("invoice.payment_failed", cycle)) == "applied"
    assert await _send(stripe_client, event("invoice.payment_failed", prorated)) == "applied"
    assert await _invoices(database, tenant) == {
        "in_a": ("payment_failed", subscription),
        "in_c": ("payment_failed", subscription),
    }
    # Each is owed on its own: paying one leaves the store past due.
    assert await _send(stripe_client, event("invoice.paid", cycle)) == "applied"
    assert (await _standing(database, tenant))[0] == "past_due"
    assert await _send(stripe_client, event("invoice.paid", prorated)) == "applied"
    assert await _standing(database, tenant) == ("active", None)


async def test_the_migration_down_reopens_written_off_invoices_and_keeps_periods_billed_twice(
    stripe_client: AsyncTestClient[Litestar], database: Database, tenant: TenantRecord
) -> None:
    account = await subscribed_account(database, tenant.id)
    cycle = _invoice(account, "in_a")
    prorated = {**cycle, "id": _stripe_id(account, "in_c")}
    assert await _send(stripe_client, event("invoice.voided", cycle)) == "applied"
    assert await _send(stripe_client, event("invoice.payment_failed", prorated)) == "applied"

    def statuses(connection: Connection) -> list[str]:
        rows = connection.scalars(
            text("SELECT status FROM platform.billing_invoices WHERE tenant_id = :tenant ORDER BY status"),
            {"tenant": tenant.id},
        )
        return [str(row) for row in rows]

    def down_and_up(connection: Connection) -> list[list[str]]:
        settings = database.settings
        roles = {"app": settings.app_role, "tenant_group": settings.tenant_group_role}
        config = PLATFORM_MIGRATIONS.config(connection=connection, roles=roles)
        seen = [statuses(connection)]
        command.downgrade(config, "0008_outbox_row_security")
        seen.append(statuses(connection))
        command.upgrade(config, "0009_invoice_settlement")
        seen.append(statuses(connection))
        return seen

    async with database.owner.connect() as connection:
        # Begun here, so Alembic runs inside it; rolled back, so nothing else sees the round trip.
        await connection.begin()
        try:
            seen = await connection.run_sync(down_and_up)
        finally:
            await connection.rollback()
    # Before 0009 a voided invoice was simply not paid; both invoices of the period stay.
    assert seen == [["payment_failed", "void"], ["open", "payment_failed"], ["open", "payment_failed"]]
