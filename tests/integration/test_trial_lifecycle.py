"""The trial's end and payment trouble: read-only stores, what still works, reminders sent once each."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.billing import lifecycle
from ordersmith.platform.database import Database
from ordersmith.platform.mail.rendering import render_email
from tests.support.entitlements import set_tenant_billing, trial_notices
from tests.support.http import PASSWORD, bearer, sign_up
from tests.support.mail import queued_email
from tests.support.members import audit_trail


async def _add_location(client: AsyncTestClient[Litestar], headers: dict[str, str], code: str) -> Any:
    return await client.post(
        "/api/v1/locations", json={"code": code, "name": code, "kind": "warehouse"}, headers=headers
    )


async def test_after_the_trial_every_write_is_402_while_reads_sign_in_and_changing_plan_work(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    location = await _add_location(client, headers, "WH-1")
    assert location.status_code == 201
    ended_at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).replace(microsecond=0)
    await set_tenant_billing(database, owner["tenant"]["id"], trial_ends_at=ended_at)

    refused = await _add_location(client, headers, "WH-2")
    body = refused.json()
    body.pop("request_id")
    assert body == {
        "type": "urn:ordersmith:problem:trial_ended",
        "title": "Trial ended",
        "status": 402,
        "detail": f"the free trial ended on {ended_at:%Y-%m-%d}; the store is read-only until an owner "
        "chooses a plan (starter, growth, enterprise) at POST /api/v1/billing/plan; your data is kept "
        "and can still be read and exported",
        "code": "trial_ended",
        "trial_ended_at": ended_at.isoformat(),
        "plans": ["starter", "growth", "enterprise"],
    }
    writes = [
        ("PATCH", f"/api/v1/locations/{location.json()['id']}", {"name": "Renamed"}),
        ("POST", "/api/v1/invitations", {"email": "late@example.com", "role": "agent"}),
        ("POST", "/api/v1/customers", {"full_name": "Ana Lima", "email": "ana@example.com"}),
    ]
    for method, path, payload in writes:
        response = await client.request(method, path, json=payload, headers=headers)
        assert (response.status_code, response.json()["code"]) == (402, "trial_ended"), path

    # Reads work, and the data is all there.
    listed = await client.get("/api/v1/locations", headers=headers)
    assert [item["code"] for item in listed.json()["data"]] == ["WH-1"]
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    plan = (await client.get("/api/v1/billing/plan", headers=headers)).json()
    assert (plan["plan"], plan["state"], plan["is_read_only"]) == ("trial", "trial_ended", True)

    # Signing in, refreshing and signing out work, so the owner can get in and pay.
    signed_in = await client.post(
        "/api/v1/auth/token",
        json={"email": owner["email"], "password": PASSWORD, "tenant": owner["tenant"]["slug"]},
    )
    assert signed_in.status_code == 200
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": signed_in.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    logout = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": refreshed.json()["refresh_token"]}
    )
    assert logout.status_code == 200

    changed = await client.post("/api/v1/billing/plan", json={"plan": "growth"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["plan"], changed.json()["state"], changed.json()["is_read_only"]) == (
        "growth",
        "active",
        False,
    )
    assert (await _add_location(client, headers, "WH-2")).status_code == 201


async def test_reminders_go_out_three_days_and_one_day_before_and_at_the_end_once_each(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client, company_name="Reminded Shop")
    tenant_id = owner["tenant"]["id"]
    # Far from every other test store's trial end, so the sweep's counts are this store's.
    ends = (dt.datetime.now(dt.UTC) + dt.timedelta(days=300)).replace(microsecond=0)
    await set_tenant_billing(database, tenant_id, trial_ends_at=ends)

    assert await lifecycle.sweep_trials(database, now=ends - dt.timedelta(days=3, minutes=1)) == 0
    three_days = ends - dt.timedelta(days=3) + dt.timedelta(hours=1)
    assert await lifecycle.sweep_trials(database, now=three_days) == 1
    assert await lifecycle.sweep_trials(database, now=three_days + dt.timedelta(hours=1)) == 0
    reminder = await queued_email(database, owner["email"], "trial_reminder")
    assert reminder.context() == {
        "store_name": "Reminded Shop",
        "days_left": 3,
        "ends_on": f"{ends:%Y-%m-%d}",
    }

    one_day = ends - dt.timedelta(hours=20)
    assert await lifecycle.sweep_trials(database, now=one_day) == 1
    assert await lifecycle.sweep_trials(database, now=one_day) == 0
    assert (await queued_email(database, owner["email"], "trial_reminder")).context()["days_left"] == 1

    assert await lifecycle.sweep_trials(database, now=ends + dt.timedelta(hours=1)) == 1
    assert await lifecycle.sweep_trials(database, now=ends + dt.timedelta(hours=2)) == 0
    ended = await queued_email(database, owner["email"], "trial_ended")
    assert ended.context() == {"store_name": "Reminded Shop", "ended_on": f"{ends:%Y-%m-%d}"}
    assert [kind for kind, _ in await trial_notices(database, tenant_id)] == [
        "ends_in_3_days",
        "ends_in_1_day",
        "ended",
    ]
    assert (await audit_trail(database, tenant_id))[-1]["action"] == "trial.ended"

    # A trial extended by support gets its reminders again, for the new end.
    extended = ends + dt.timedelta(days=10)
    await set_tenant_billing(database, tenant_id, trial_ends_at=extended)
    assert await lifecycle.sweep_trials(database, now=extended - dt.timedelta(days=2)) == 1
    assert len(await trial_notices(database, tenant_id)) == 4


async def test_a_failed_payment_has_a_grace_period_then_the_store_is_read_only(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_id, headers = uuid.UUID(owner["tenant"]["id"]), bearer(owner["token"]["access_token"])
    await set_tenant_billing(database, tenant_id, plan="growth")
    failed_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    async with database.platform_session() as session:
        await lifecycle.payment_failed(session, tenant_id, now=failed_at)
    plan = (await client.get("/api/v1/billing/plan", headers=headers)).json()
    assert (plan["state"], plan["is_read_only"]) == ("past_due", False)
    assert dt.datetime.fromisoformat(plan["grace_ends_at"]) == failed_at + dt.timedelta(days=7)
    assert (await _add_location(client, headers, "IN-GRACE")).status_code == 201

    # A second failure does not restart the grace period.
    async with database.platform_session() as session:
        await lifecycle.payment_failed(session, tenant_id, now=failed_at + dt.timedelta(days=3))
    plan = (await client.get("/api/v1/billing/plan", headers=headers)).json()
    assert dt.datetime.fromisoformat(plan["past_due_since"]) == failed_at

    await set_tenant_billing(database, tenant_id, past_due_since=failed_at - dt.timedelta(days=8))
    overdue = await _add_location(client, headers, "OVERDUE")
    assert (overdue.status_code, overdue.json()["code"]) == (402, "payment_overdue")
    assert (await client.get("/api/v1/locations", headers=headers)).status_code == 200

    async with database.platform_session() as session:
        await lifecycle.payment_succeeded(session, tenant_id)
    assert (await _add_location(client, headers, "PAID")).status_code == 201
    transitions = [
        (entry["data"]["from"], entry["data"]["to"])
        for entry in await audit_trail(database, str(tenant_id))
        if entry["action"] == "billing.status_changed"
    ]
    assert transitions == [("active", "past_due"), ("past_due", "active")]


@pytest.mark.parametrize(
    ("stripe_status", "code"), [("unpaid", "payment_overdue"), ("canceled", "subscription_canceled")]
)
async def test_an_ended_subscription_is_read_only_until_a_plan_is_chosen(
    client: AsyncTestClient[Litestar], database: Database, stripe_status: str, code: str
) -> None:
    owner = await sign_up(client)
    tenant_id, headers = uuid.UUID(owner["tenant"]["id"]), bearer(owner["token"]["access_token"])
    await set_tenant_billing(database, tenant_id, plan="growth")
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        await lifecycle.subscription_status_changed(session, tenant_id, stripe_status, now=now)
        # `incomplete` (first payment pending) changes nothing.
        await lifecycle.subscription_status_changed(session, tenant_id, "incomplete", now=now)
    refused = await _add_location(client, headers, "NOPE")
    assert (refused.status_code, refused.json()["code"]) == (402, code)
    if stripe_status == "canceled":
        changed = await client.post("/api/v1/billing/plan", json={"plan": "enterprise"}, headers=headers)
        assert (changed.status_code, changed.json()["state"]) == (200, "active")
        assert (await _add_location(client, headers, "BACK")).status_code == 201
    else:
        async with database.platform_session() as session:
            await lifecycle.payment_succeeded(session, tenant_id)
        assert (await _add_location(client, headers, "BACK")).status_code == 201


async def test_an_overdue_store_is_told_to_pay_and_a_plan_change_does_not_reopen_it(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_id, headers = uuid.UUID(owner["tenant"]["id"]), bearer(owner["token"]["access_token"])
    await set_tenant_billing(database, tenant_id, plan="growth")
    async with database.platform_session() as session:
        await lifecycle.subscription_status_changed(session, tenant_id, "unpaid", now=dt.datetime.now(dt.UTC))

    refused = await _add_location(client, headers, "NOPE")
    assert (refused.status_code, refused.json()["detail"]) == (
        402,
        "a payment is overdue and the grace period is over; the store is read-only until an owner pays "
        "the open invoice in the billing portal (POST /api/v1/billing/portal-sessions); changing plan "
        "does not end this; your data is kept and can still be read and exported",
    )
    # As the message says: the plan changes, the overdue invoice and the read-only store stay.
    changed = await client.post("/api/v1/billing/plan", json={"plan": "enterprise"}, headers=headers)
    assert (changed.status_code, changed.json()["plan"], changed.json()["state"]) == (
        200,
        "enterprise",
        "payment_overdue",
    )
    still = await _add_location(client, headers, "STILL")
    assert (still.status_code, still.json()["code"]) == (402, "payment_overdue")
    # Paying the invoice (Stripe's `invoice.paid`) is the way out.
    async with database.platform_session() as session:
        await lifecycle.payment_succeeded(session, tenant_id)
    assert (await _add_location(client, headers, "PAID")).status_code == 201


def test_the_lifecycle_emails_render_every_value() -> None:
    contexts: dict[str, dict[str, str | int]] = {
        "trial_reminder": {"store_name": "Acme", "days_left": 3, "ends_on": "2026-12-12"},
        "trial_ended": {"store_name": "Acme", "ended_on": "2026-12-12"},
        "limit_exceeded": {
            "store_name": "Acme",
            "limit": "seats",
            "used": 16,
            "allowed": 15,
            "plan_name": "Growth",
        },
    }
    subjects = {}
    for name, context in contexts.items():
        rendered = render_email(name, context)
        for value in context.values():
            assert str(value) in rendered.text, (name, value)
            assert str(value) in rendered.html, (name, value)
        assert "$" not in rendered.text + rendered.html
        subjects[name] = rendered.subject
    assert subjects == {
        "trial_reminder": "Your Acme trial ends in 3 day(s)",
        "trial_ended": "Your Acme trial has ended",
        "limit_exceeded": "Acme is over its Growth plan's seats limit",
    }
