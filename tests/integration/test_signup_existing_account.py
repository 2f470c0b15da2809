"""Sign-up with an address that has an account: with that account's password it starts another store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update

from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.identity.models import AttemptCounter, Membership, User
from ordersmith.platform.models import Tenant
from ordersmith.platform.settings import Settings
from ordersmith.platform.tenancy import archive_tenant, drop_tenant
from tests.support.http import PASSWORD, bearer, seen_from, sign_in, sign_up
from tests.support.mail import queued_email
from tests.support.members import add_member, audit_trail
from tests.support.services import new_client_address, new_slug

OPERATOR = Actor("system", "cli:operator")
WRONG_PASSWORD = "Wrong-Horse-Battery-7"
EMAIL_TAKEN = (
    "an account with this email already exists; to start a new store with it, sign up again with that "
    "account's password, or, if you do not know it or it has none (an account made by single sign-on), "
    "ask for a reset link (POST /api/v1/auth/password-reset): the link emailed to this address sets the "
    "password"
)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app, seeing this test's requests come from an address of its own (its lockout counters too)."""
    address = new_client_address()
    async with AsyncTestClient(seen_from(create_app(settings), lambda: address)) as client:
        yield client


def _signup(email: str, password: str = PASSWORD) -> dict[str, str]:
    return {"company_name": "Second Shop", "email": email, "password": password, "slug": new_slug()}


async def _accounts(database: Database, email: str) -> list[User]:
    async with database.platform_session() as session:
        return list((await session.scalars(select(User).where(User.email == email))).all())


async def _memberships(database: Database, user_id: str) -> list[tuple[str, str, str]]:
    """(store id, role, status) of every membership of an account, by store id."""
    async with database.platform_session() as session:
        rows = await session.execute(
            select(Membership.tenant_id, Membership.role, Membership.status)
            .where(Membership.user_id == uuid.UUID(user_id))
            .order_by(Membership.tenant_id)
        )
    return [(str(tenant_id), role, status) for tenant_id, role, status in rows]


async def _tenant_count(database: Database) -> int:
    async with database.platform_session() as session:
        return int(await session.scalar(select(func.count()).select_from(Tenant)) or 0)


async def test_the_owner_of_a_dropped_store_starts_a_new_trial_with_the_same_email(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    first = await sign_up(client)
    email = first["email"]
    slug = first["tenant"]["slug"]
    await archive_tenant(database, slug, actor=OPERATOR)
    await drop_tenant(database, slug, confirm=slug, actor=OPERATOR)

    again = await client.post("/api/v1/signup", json=_signup(email))

    assert again.status_code == 201, again.text
    body = again.json()
    [account] = await _accounts(database, email)
    # The drop deleted the old account: this is a new one, its owner's data gone with the store.
    assert str(account.id) == body["user_id"] != first["user_id"]
    assert await _memberships(database, body["user_id"]) == [(body["tenant"]["id"], "owner", "active")]


async def test_an_account_starts_another_store_with_its_password_keeping_its_other_membership(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    # A manager the store's owner deactivated: their only store no longer lets them in.
    store = await sign_up(client)
    owner_headers = bearer(store["token"]["access_token"])
    manager = await add_member(client, database, owner_headers, "manager")
    deactivated = await client.patch(
        f"/api/v1/users/{manager.user_id}", json={"status": "deactivated"}, headers=owner_headers
    )
    assert deactivated.status_code == 200, deactivated.text
    [before] = await _accounts(database, manager.email)

    response = await client.post("/api/v1/signup", json=_signup(manager.email.upper()))

    assert response.status_code == 201, response.text
    body = response.json()
    new_store = body["tenant"]
    assert (body["user_id"], body["role"], new_store["plan"]) == (manager.user_id, "owner", "trial")
    [after] = await _accounts(database, manager.email)
    assert (after.id, after.password_hash, after.email_verified_at, after.full_name) == (
        before.id,
        before.password_hash,
        before.email_verified_at,
        "New Person",
    )
    assert await _memberships(database, manager.user_id) == sorted(
        [(store["tenant"]["id"], "manager", "deactivated"), (new_store["id"], "owner", "active")]
    )
    me = await client.get("/api/v1/me", headers=bearer(body["token"]["access_token"]))
    assert (me.json()["user"]["id"], me.json()["tenant"]["slug"], me.json()["role"]) == (
        manager.user_id,
        new_store["slug"],
        "owner",
    )
    assert await sign_in(client, manager.email, new_store["slug"])
    assert [
        (entry["action"], entry["actor_type"], entry["actor_id"])
        for entry in await audit_trail(database, new_store["id"])
    ] == [("tenant.signed_up", "user", manager.user_id), ("auth.signed_in", "user", manager.user_id)]
    # Told by email, in case someone else knew the password; no second verification link.
    alert = await queued_email(database, manager.email, "security_alert")
    assert (str(alert.tenant_id), alert.context()["store_name"], alert.context()["what"]) == (
        new_store["id"],
        "Second Shop",
        "a new store, Second Shop, was started with your account and its password; "
        "if this was not you, reset your password",
    )


async def test_a_wrong_password_is_409_makes_no_store_and_counts_like_a_failed_sign_in(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await sign_up(client)
    email = store["email"]
    tenants = await _tenant_count(database)
    trail = len(await audit_trail(database, store["tenant"]["id"]))

    refusals = [await client.post("/api/v1/signup", json=_signup(email, WRONG_PASSWORD)) for _ in range(4)]
    # Three tries go through at once; the fourth makes the next wait a second, even with the password.
    limited = await client.post("/api/v1/signup", json=_signup(email))
    signing_in = await client.post(
        "/api/v1/auth/token", json={"email": email, "password": PASSWORD, "tenant": store["tenant"]["slug"]}
    )

    assert [(r.status_code, r.json()["code"], r.json()["detail"]) for r in refusals] == [
        (409, "email_taken", EMAIL_TAKEN)
    ] * 4
    assert all(store["tenant"]["slug"] not in refusal.text for refusal in refusals)
    wait = "too many failed sign-ins; try again in 1 second, or reset your password"
    for response in (limited, signing_in):
        assert (response.status_code, response.json()["detail"], response.headers["retry-after"]) == (
            429,
            wait,
            "1",
        )
    async with database.platform_session() as session:
        attempts = await session.scalar(
            select(AttemptCounter.attempts).where(AttemptCounter.key == f"account:tenant:{email}")
        )
    assert attempts == 4
    assert await _tenant_count(database) == tenants
    assert len(await _accounts(database, email)) == 1
    # Where a locked-out member's admin looks: the store's trail, as failed sign-ins.
    entries = (await audit_trail(database, store["tenant"]["id"]))[trail:]
    assert [(entry["action"], entry["actor_id"], entry["data"]) for entry in entries] == [
        ("auth.sign_in_failed", store["user_id"], {"email": email, "reason": "bad_password_at_sign_up"})
    ] * 4


async def test_a_taken_slug_is_refused_before_the_password_is_weighed(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await sign_up(client)
    email, taken = store["email"], store["tenant"]["slug"]
    tenants = await _tenant_count(database)

    answers = [
        await client.post("/api/v1/signup", json={**_signup(email, password), "slug": taken})
        for password in (WRONG_PASSWORD, PASSWORD)
    ]

    # The same answer either way: a right password is not told from a wrong one.
    assert [(answer.status_code, answer.json()["code"]) for answer in answers] == [(409, "slug_taken")] * 2
    assert await _tenant_count(database) == tenants
    async with database.platform_session() as session:
        attempts = await session.scalar(
            select(AttemptCounter.attempts).where(AttemptCounter.key == f"account:tenant:{email}")
        )
    assert attempts is None


async def test_an_account_without_a_password_is_409_whatever_password_is_given(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await sign_up(client)
    email = store["email"]
    # The state single sign-on leaves an account in: no password of its own.
    async with database.platform_session() as session:
        await session.execute(update(User).where(User.email == email).values(password_hash=None))
    tenants = await _tenant_count(database)

    refused = await client.post("/api/v1/signup", json=_signup(email))

    assert (refused.status_code, refused.json()["code"], refused.json()["detail"]) == (
        409,
        "email_taken",
        EMAIL_TAKEN,
    )
    assert await _tenant_count(database) == tenants
    assert await _memberships(database, store["user_id"]) == [(store["tenant"]["id"], "owner", "active")]
