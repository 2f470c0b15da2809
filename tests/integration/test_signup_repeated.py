"""A sign-up sent twice (a double click, a client's retry) makes one store, not two."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text, update

from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import Membership, User
from ordersmith.platform.models import OutboxEvent, Tenant
from ordersmith.platform.settings import Settings
from tests.support.concurrency import post_all, serve, wait_for_lock_waiters
from tests.support.http import PASSWORD, seen_from, sign_up
from tests.support.services import new_client_address, new_slug

WRONG_PASSWORD = "Wrong-Horse-Battery-7"


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app, seeing this test's requests come from an address of its own (its lockout counters too)."""
    address = new_client_address()
    async with AsyncTestClient(seen_from(create_app(settings), lambda: address)) as client:
        yield client


def _signup(email: str, company_name: str = "Second Shop", password: str = PASSWORD) -> dict[str, str]:
    """A sign-up as the web app sends it when the merchant leaves the store's address to us: no slug."""
    return {"company_name": company_name, "email": email, "password": password}


def _repeated(name: str, slug: str) -> str:
    return (
        f"this account started the store {name!r} (slug {slug!r}) less than 10 minutes ago, so this sign-up, "
        f"a repeat of that one, made no second store; sign in to {slug!r} with this email and its password, "
        "or give another store a name of its own"
    )


async def _tenant_count(database: Database) -> int:
    async with database.platform_session() as session:
        return int(await session.scalar(select(func.count()).select_from(Tenant)) or 0)


async def _tenant_schema_count(database: Database) -> int:
    """Tenant schemas in the database: a refused sign-up must leave none of its own behind."""
    async with database.owner.connect() as connection:
        return int(
            await connection.scalar(text(r"SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\_%'")) or 0
        )


async def _stores_of(database: Database, email: str) -> list[tuple[str, str]]:
    """(slug, store name) of every store the account belongs to, by slug."""
    async with database.platform_session() as session:
        rows = await session.execute(
            select(Tenant.slug, Tenant.name)
            .join(Membership, Membership.tenant_id == Tenant.id)
            .join(User, User.id == Membership.user_id)
            .where(User.email == email)
            .order_by(Tenant.slug)
        )
    return [(slug, name) for slug, name in rows]


async def _security_alerts(database: Database, email: str) -> int:
    async with database.platform_session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(
                OutboxEvent.payload["to"].astext == email,
                OutboxEvent.payload["template"].astext == "security_alert",
            )
        )
    return int(count or 0)


async def _start(
    client: AsyncTestClient[Litestar], email: str, company_name: str = "Second Shop"
) -> dict[str, Any]:
    """A sign-up that starts a store; the answer's body."""
    started = await client.post("/api/v1/signup", json=_signup(email, company_name))
    assert started.status_code == 201, started.text
    body: dict[str, Any] = started.json()
    return body


async def _second_store(client: AsyncTestClient[Litestar]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An account's first store, "Acme Outdoor", then its second, "Second Shop": both sign-ups' answers."""
    first = await sign_up(client)
    return first, await _start(client, first["email"])


async def test_an_accounts_sign_up_sent_again_makes_no_second_store_and_names_the_first(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    first, started = await _second_store(client)
    email = first["email"]
    slug = started["tenant"]["slug"]
    tenants, schemas = await _tenant_count(database), await _tenant_schema_count(database)

    again = await client.post("/api/v1/signup", json=_signup(email))

    body = again.json()
    assert (again.status_code, body["code"], body["title"], body["detail"], body["slug"]) == (
        409,
        "sign_up_repeated",
        "Store already started",
        _repeated("Second Shop", slug),
        slug,
    )
    assert (await _tenant_count(database), await _tenant_schema_count(database)) == (tenants, schemas)
    assert await _stores_of(database, email) == sorted(
        [(first["tenant"]["slug"], "Acme Outdoor"), (slug, "Second Shop")]
    )
    # One alert, for the one store started: the repeat started nothing to warn about.
    assert await _security_alerts(database, email) == 1


async def test_a_new_addresss_sign_up_sent_again_after_it_finished_makes_no_second_store(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    email = f"{new_slug('newcomer')}@example.com"
    slug = (await _start(client, email, "Acme Outdoor"))["tenant"]["slug"]

    # The retry finds the account the first one made, with the same password.
    again = await client.post("/api/v1/signup", json=_signup(email, "Acme Outdoor"))

    assert (again.status_code, again.json()["code"], again.json()["detail"]) == (
        409,
        "sign_up_repeated",
        _repeated("Acme Outdoor", slug),
    )
    assert await _stores_of(database, email) == [(slug, "Acme Outdoor")]


async def test_two_identical_sign_ups_at_once_make_one_store(
    settings: Settings, database: Database, database_url: str
) -> None:
    owner = f"{new_slug('owner')}@example.com"
    address = new_client_address()
    served = Database(settings.database, database_url)
    try:
        async with serve(seen_from(create_app(settings, database=served), lambda: address)) as base_url:
            first = await post_all(base_url, "/api/v1/signup", {}, [_signup(owner, "Acme Outdoor")])
            assert first[0].status_code == 201, first[0].text
            tenants, schemas = await _tenant_count(database), await _tenant_schema_count(database)
            async with database.owner.connect() as blocker:
                await blocker.begin()
                # Holds both sign-ups inside their provisioning transactions, each with its store
                # built: past every check made before it, so only what serialises them can tell.
                await blocker.execute(select(User.id).where(User.email == owner).with_for_update())
                both = asyncio.create_task(
                    post_all(base_url, "/api/v1/signup", {}, [_signup(owner), _signup(owner)])
                )
                await wait_for_lock_waiters(database, 2, owners_too=True)
                await blocker.rollback()
            responses = await both
    finally:
        await served.dispose()

    answers = sorted(
        ((response.status_code, response.json()) for response in responses), key=lambda answer: answer[0]
    )
    assert [status for status, _ in answers] == [201, 409], [response.text for response in responses]
    made: dict[str, Any] = answers[0][1]["tenant"]
    refused = answers[1][1]
    assert (refused["code"], refused["detail"], refused["slug"]) == (
        "sign_up_repeated",
        _repeated("Second Shop", made["slug"]),
        made["slug"],
    )
    assert (await _tenant_count(database), await _tenant_schema_count(database)) == (tenants + 1, schemas + 1)
    assert await _stores_of(database, owner) == sorted(
        [(first[0].json()["tenant"]["slug"], "Acme Outdoor"), (made["slug"], "Second Shop")]
    )


async def test_another_store_name_or_a_sign_up_after_ten_minutes_starts_another_store(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    first, started = await _second_store(client)
    email = first["email"]

    other_name = await client.post("/api/v1/signup", json=_signup(email, "Third Shop"))
    # Made 11 minutes ago: not a double click or a retry any more, but a second store wanted.
    async with database.platform_session() as session:
        made = uuid.UUID(started["tenant"]["id"])
        earlier = dt.timedelta(minutes=11)
        await session.execute(
            update(Tenant).where(Tenant.id == made).values(created_at=Tenant.created_at - earlier)
        )
        await session.execute(
            update(Membership)
            .where(Membership.tenant_id == made)
            .values(created_at=Membership.created_at - earlier)
        )
    later = await client.post("/api/v1/signup", json=_signup(email))

    assert (other_name.status_code, later.status_code) == (201, 201), (other_name.text, later.text)
    stores = await _stores_of(database, email)
    assert sorted(name for _, name in stores) == ["Acme Outdoor", "Second Shop", "Second Shop", "Third Shop"]


async def test_a_repeat_with_a_wrong_password_is_email_taken_and_names_no_store(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    first, started = await _second_store(client)
    email = first["email"]

    guessed = await client.post("/api/v1/signup", json=_signup(email, password=WRONG_PASSWORD))

    assert (guessed.status_code, guessed.json()["code"]) == (409, "email_taken")
    assert started["tenant"]["slug"] not in guessed.text
    assert "slug" not in guessed.json()
