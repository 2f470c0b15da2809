"""Two people of the same stores resetting a password, or verifying an email, at the same moment.

Each writes one entry in the audit trail of every store it belongs to, and each trail is
locked until commit. Two people who joined the same two stores in opposite orders must
still take the trails' locks in one order, or PostgreSQL ends one of them as a deadlock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import insert, select, text

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import verify_audit_log
from ordersmith.platform.identity.models import AuditEntry, Membership, User
from ordersmith.platform.identity.passwords import hash_password
from ordersmith.platform.identity.recovery import (
    PasswordReset,
    VerifiedEmail,
    confirm_password_reset,
    request_password_reset,
    resend_verification,
    verify_email,
)
from ordersmith.platform.settings import Settings
from ordersmith.platform.tenancy import TenantRecord, provision_tenant
from ordersmith.tenants.schema import TENANT_SCHEMA
from tests.support.concurrency import wait_for_lock_waiters
from tests.support.http import PASSWORD
from tests.support.mail import queued_email, token_in
from tests.support.services import new_slug

NEW_PASSWORD = "Quiet-Lantern-Harbor-42"


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    email: str


@dataclass(frozen=True)
class TwoStores:
    """Two stores, `first` the one with the smaller tenant id; X joined them in that order, Y the other."""

    first: TenantRecord
    second: TenantRecord
    x: Person
    y: Person


async def _two_people_in_two_stores(database: Database) -> TwoStores:
    """Two unverified people, both members of the same two stores, who joined them in opposite orders."""
    stores = [
        await provision_tenant(database, TENANT_SCHEMA, slug=new_slug(), name=name)
        for name in ("North Shop", "South Shop")
    ]
    first, second = sorted(stores, key=lambda store: store.id)
    x = Person(uuid.uuid4(), f"x-{uuid.uuid4().hex[:10]}@example.com")
    y = Person(uuid.uuid4(), f"y-{uuid.uuid4().hex[:10]}@example.com")
    password_hash = await hash_password(PASSWORD)
    joined = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    later = joined + dt.timedelta(minutes=1)
    async with database.platform_session() as session:
        await session.execute(
            insert(User).values(
                [
                    {"id": person.id, "email": person.email, "password_hash": password_hash}
                    for person in (x, y)
                ]
            )
        )
        await session.execute(
            insert(Membership).values(
                [
                    {
                        "id": uuid.uuid4(),
                        "tenant_id": tenant_id,
                        "user_id": user_id,
                        "role": "agent",
                        "created_at": at,
                    }
                    for tenant_id, user_id, at in (
                        (first.id, x.id, joined),
                        (second.id, x.id, later),
                        (second.id, y.id, joined),
                        (first.id, y.id, later),
                    )
                ]
            )
        )
    return TwoStores(first, second, x, y)


async def _both_after_the_first_trail_frees(
    database: Database, stores: TwoStores, act: Callable[[Person], Awaitable[object]]
) -> list[object]:
    """Run `act` for X, then for Y, both queued on the first store's trail lock; their outcomes.

    The lock queue is first come, first served: X gets the first store's trail as soon as
    it is released, and Y comes next.
    """
    async with database.platform_session() as holder:
        await holder.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"ordersmith.audit:{stores.first.id}"},
        )
        x_acts = asyncio.ensure_future(act(stores.x))
        await wait_for_lock_waiters(database, 1)
        y_acts = asyncio.ensure_future(act(stores.y))
        await wait_for_lock_waiters(database, 2)
    return list(await asyncio.gather(x_acts, y_acts, return_exceptions=True))


async def _trail(database: Database, store: TenantRecord) -> list[tuple[str, str | None]]:
    async with database.platform_session() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.target_id)
            .where(AuditEntry.chain == str(store.id))
            .order_by(AuditEntry.id)
        )
    return [(action, target_id) for action, target_id in rows]


async def _broken_chains(database: Database, stores: TwoStores) -> list[str]:
    verification = await verify_audit_log(database)
    chains = {str(stores.first.id), str(stores.second.id)}
    return [problem.reason for problem in verification.problems if problem.chain in chains]


async def test_two_resets_of_people_who_joined_two_stores_in_opposite_orders_both_succeed(
    database: Database, settings: Settings
) -> None:
    stores = await _two_people_in_two_stores(database)
    tokens = {}
    for person in (stores.x, stores.y):
        await request_password_reset(
            database, email=person.email, public_url=settings.public_url, client_address=None
        )
        link = (await queued_email(database, person.email, "reset_password")).context()["link"]
        tokens[person] = token_in(link)

    async def reset(person: Person) -> PasswordReset:
        return await confirm_password_reset(
            database, token=tokens[person], new_password=NEW_PASSWORD, client_address=None
        )

    outcomes = await _both_after_the_first_trail_frees(database, stores, reset)

    assert outcomes == [
        PasswordReset(stores.x.id, stores.x.email, sessions_ended=0),
        PasswordReset(stores.y.id, stores.y.email, sessions_ended=0),
    ]
    for store in (stores.first, stores.second):
        assert await _trail(database, store) == [
            ("auth.password_reset", str(stores.x.id)),
            ("auth.password_reset", str(stores.y.id)),
        ]
    assert await _broken_chains(database, stores) == []
    # The alert still names the stores in the order the person joined them.
    joined_in_order = {
        stores.x: f"{stores.first.name}, {stores.second.name}",
        stores.y: f"{stores.second.name}, {stores.first.name}",
    }
    for person, store_names in joined_in_order.items():
        alert = (await queued_email(database, person.email, "security_alert")).context()
        assert alert["store_name"] == store_names


async def test_two_verifications_of_people_who_joined_two_stores_in_opposite_orders_both_succeed(
    database: Database, settings: Settings
) -> None:
    stores = await _two_people_in_two_stores(database)
    tokens = {}
    for person in (stores.x, stores.y):
        sent_to = await resend_verification(
            database, user_id=person.id, tenant=stores.first, public_url=settings.public_url
        )
        assert sent_to == person.email
        link = (await queued_email(database, person.email, "verify_email")).context()["link"]
        tokens[person] = token_in(link)

    async def verify(person: Person) -> VerifiedEmail:
        return await verify_email(database, token=tokens[person], client_address=None)

    outcomes = await _both_after_the_first_trail_frees(database, stores, verify)

    assert [
        (outcome.user_id, outcome.email) if isinstance(outcome, VerifiedEmail) else outcome
        for outcome in outcomes
    ] == [(stores.x.id, stores.x.email), (stores.y.id, stores.y.email)]
    for store in (stores.first, stores.second):
        assert await _trail(database, store) == [
            ("auth.email_verified", str(stores.x.id)),
            ("auth.email_verified", str(stores.y.id)),
        ]
    assert await _broken_chains(database, stores) == []
