"""Plan changes racing each other, and racing what adds the seats and locations a downgrade counted."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text

from ordersmith.billing import subscriptions
from ordersmith.billing.accounts import ensure_customer
from ordersmith.billing.subscriptions import change_plan
from ordersmith.platform.billing_models import BillingAccount
from ordersmith.platform.database import Database
from ordersmith.platform.entitlement_usage import lock_locations
from ordersmith.platform.entitlements import LimitReachedError, resolve_entitlements
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.identity.invitations import create_invitation
from ordersmith.platform.identity.permissions import permissions_of
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.models import Tenant
from ordersmith.platform.tenancy import TenantRecord, get_tenant_by_id
from ordersmith.tenants.inventory.service import create_location
from tests.support import billing
from tests.support.fake_stripe import FakeStripe
from tests.support.http import bearer, sign_up
from tests.support.members import audit_trail, invite

# Transactions of this test's database waiting for an advisory lock (the plan change's, here).
_LOCK_WAITERS = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


# Billing on a new fake Stripe: this `fake` overrides the payments one of tests/conftest.py.
fake = billing.billing_fake
stripe_client = billing.billing_client


def _email() -> str:
    return f"person-{uuid.uuid4().hex[:10]}@example.com"


async def _done_or_waiting(task: asyncio.Task[Any], database: Database) -> None:
    """Until `task` has finished or waits for a lock: whichever comes of it arriving mid-change."""
    for _ in range(200):
        if task.done():
            return
        async with database.platform_reader() as session:
            if await session.scalar(_LOCK_WAITERS):
                return
        await asyncio.sleep(0.02)
    raise AssertionError("the concurrent change neither finished nor waited for a lock within 4 s")


async def test_two_plan_choices_at_once_make_one_subscription_and_the_second_changes_it(
    fake: FakeStripe, database: Database, tenant: TenantRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ensure_customer
    at_stripe, go_on = asyncio.Event(), asyncio.Event()

    async def held_at_stripe(*args: Any, **kwargs: Any) -> str:
        if not at_stripe.is_set():
            at_stripe.set()
            await go_on.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(subscriptions, "ensure_customer", held_at_stripe)
    # The trial store's owner chooses Growth in one tab, then Enterprise in another while
    # the first choice is on its way to Stripe.
    growth = asyncio.create_task(change_plan(database, tenant.id, "growth", actor=SYSTEM))
    await at_stripe.wait()
    enterprise = asyncio.create_task(change_plan(database, tenant.id, "enterprise", actor=SYSTEM))
    await _done_or_waiting(enterprise, database)
    go_on.set()
    await asyncio.gather(growth, enterprise)

    async with database.platform_session() as session:
        account = await session.get(BillingAccount, tenant.id)
        plan = await session.scalar(select(Tenant.plan).where(Tenant.id == tenant.id))
    assert account is not None
    live = [sub for sub in fake.objects["subscription"].values() if sub["status"] != "canceled"]
    # One subscription bills the store; the second choice changed it instead of making another.
    assert [sub["id"] for sub in live] == [account.stripe_subscription_id]
    assert (live[0]["metadata"]["plan"], live[0]["last_proration_behavior"], account.plan, plan) == (
        "enterprise",
        "create_prorations",
        "enterprise",
        "enterprise",
    )
    trail = await audit_trail(database, str(tenant.id))
    assert [
        (entry["data"]["from"], entry["data"]["to"])
        for entry in trail
        if entry["action"] == "billing.plan_changed"
    ] == [("trial", "growth"), ("growth", "enterprise")]


async def test_an_invitation_sent_while_stripe_takes_a_downgrade_waits_and_is_judged_on_the_new_plan(
    stripe_client: AsyncTestClient[Litestar], database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await sign_up(stripe_client)
    tenant_id, headers = uuid.UUID(owner["tenant"]["id"]), bearer(owner["token"]["access_token"])
    # The owner and two invitations hold three seats: all Starter has (the trial has five).
    for _ in range(2):
        await invite(stripe_client, headers, _email(), "agent")
    record = await get_tenant_by_id(database, tenant_id)
    user_id = uuid.UUID(owner["user_id"])
    principal = Principal("user", user_id, record, "owner", permissions_of("owner"), person_id=user_id)
    real = ensure_customer
    sent: list[asyncio.Task[Any]] = []

    async def invite_meanwhile(*args: Any, **kwargs: Any) -> str:
        # The owner invites a third person while the change to Starter is at Stripe (the
        # service itself: the test client would run the request only after this one).
        invitation = create_invitation(
            database, principal, email=_email(), role="agent", public_url="https://shop.example.com"
        )
        sent.append(asyncio.create_task(invitation))
        await _done_or_waiting(sent[0], database)
        return await real(*args, **kwargs)

    monkeypatch.setattr(subscriptions, "ensure_customer", invite_meanwhile)
    await change_plan(database, tenant_id, "starter", actor=SYSTEM)

    with pytest.raises(LimitReachedError) as refused:
        await sent[0]
    assert refused.value.extensions == {
        "limit": "seats",
        "current": 3,
        "allowed": 3,
        "plan": "starter",
        "cheapest_plan": "growth",
    }
    plan = (await stripe_client.get("/api/v1/billing/plan", headers=headers)).json()
    seats = next(item for item in plan["limits"] if item["limit"] == "seats")
    assert (plan["plan"], seats["used"], seats["allowed"]) == ("starter", 3, 3)


async def test_a_location_added_while_stripe_takes_a_downgrade_waits_and_is_judged_on_the_new_plan(
    stripe_client: AsyncTestClient[Litestar], database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await sign_up(stripe_client)
    headers = bearer(owner["token"]["access_token"])
    created = await stripe_client.post(
        "/api/v1/locations", json={"code": "WH-1", "name": "WH-1", "kind": "warehouse"}, headers=headers
    )
    assert created.status_code == 201, created.text
    record = await get_tenant_by_id(database, uuid.UUID(owner["tenant"]["id"]))
    # Subscribed on Growth (five locations) with one; the owner then moves to Starter (one).
    await change_plan(database, record.id, "growth", actor=SYSTEM)

    async def add_location() -> Any:
        # What `POST /api/v1/locations` does: the store's locations lock, then the plan.
        # (Through the test client the request would block this event loop, and so the
        # plan change it waits for.)
        async with database.tenant_session(record.context) as session:
            await lock_locations(session, record.id)
            entitlements = await resolve_entitlements(database, record.id)
            values = {"code": "WH-2", "name": "WH-2", "kind": "warehouse"}
            return await create_location(record.context, session, values, entitlements=entitlements)

    real = ensure_customer
    added: list[asyncio.Task[Any]] = []

    async def add_meanwhile(*args: Any, **kwargs: Any) -> str:
        added.append(asyncio.create_task(add_location()))
        await _done_or_waiting(added[0], database)
        return await real(*args, **kwargs)

    monkeypatch.setattr(subscriptions, "ensure_customer", add_meanwhile)
    await change_plan(database, record.id, "starter", actor=SYSTEM)

    with pytest.raises(LimitReachedError) as refused:
        await added[0]
    assert refused.value.extensions == {
        "limit": "locations",
        "current": 1,
        "allowed": 1,
        "plan": "starter",
        "cheapest_plan": "growth",
    }
    plan = (await stripe_client.get("/api/v1/billing/plan", headers=headers)).json()
    locations = next(item for item in plan["limits"] if item["limit"] == "locations")
    assert (plan["plan"], locations["used"], locations["allowed"]) == ("starter", 1, 1)
