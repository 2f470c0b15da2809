"""Failed sign-ins: over-long emails answer 401, a store's trail tells nothing of other stores' people,
and an archived store is named only to whoever proves the password.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.errors import InvalidCredentialsError, TooManyAttemptsError
from ordersmith.platform.identity import accounts, lockout
from ordersmith.platform.identity.accounts import TENANT_REALM, sign_in
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.identity.models import AttemptCounter, AuditEntry
from ordersmith.platform.identity.passwords import verify_password
from ordersmith.platform.identity.staff import STAFF_REALM, sign_in_staff
from ordersmith.platform.identity.tokens import TokenSigner
from ordersmith.platform.settings import Settings
from ordersmith.platform.tenancy import archive_tenant, restore_tenant
from tests.support.http import PASSWORD, bearer, seen_from, sign_up
from tests.support.members import add_member, audit_trail, last_audit_id
from tests.support.services import new_client_address

WRONG_PASSWORD = "Wrong-Horse-Battery-7"
BAD_CREDENTIALS = "the email, password and store do not match; check them, or reset your password"
BAD_STAFF_CREDENTIALS = "the email and password do not match an active staff account; check them"


def _long_email() -> str:
    """5,000 characters, no test's but this one's: far past the 320 an address can have."""
    local_part = uuid.uuid4().hex
    return local_part + "x" * (5000 - len(local_part) - len("@example.com")) + "@example.com"


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app, seeing this test's requests come from an address of its own.

    Its failed sign-ins count against that address, not against the one every other
    test's requests come from.
    """
    address = new_client_address()
    async with AsyncTestClient(seen_from(create_app(settings), lambda: address)) as client:
        yield client


@pytest.fixture
def signer(settings: Settings) -> TokenSigner:
    return TokenSigner(settings.secret_key)


def _problem(response: Any) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["code"], body["detail"]


async def _counters(database: Database, *keys: str) -> dict[str, int]:
    async with database.platform_session() as session:
        rows = await session.execute(
            select(AttemptCounter.key, AttemptCounter.attempts).where(AttemptCounter.key.in_(keys))
        )
    return {key: attempts for key, attempts in rows}


# A: an email longer than any account's is a plain failed sign-in, never a 500.


async def test_a_tenant_sign_in_with_a_5000_character_email_is_a_plain_401(
    client: AsyncTestClient[Litestar],
) -> None:
    owner = await sign_up(client)
    response = await client.post(
        "/api/v1/auth/token",
        json={"email": _long_email(), "password": PASSWORD, "tenant": owner["tenant"]["slug"]},
    )
    assert _problem(response) == (401, "invalid_credentials", BAD_CREDENTIALS)


async def test_a_staff_sign_in_with_a_5000_character_email_is_a_plain_401(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.post(
        "/admin/api/v1/auth/token", json={"email": _long_email(), "password": PASSWORD}
    )
    assert _problem(response) == (401, "invalid_credentials", BAD_STAFF_CREDENTIALS)


async def test_an_over_long_email_counts_against_its_address_and_is_audited_cut_short(
    client: AsyncTestClient[Litestar], database: Database, signer: TokenSigner
) -> None:
    owner = await sign_up(client)
    since = await last_audit_id(database, owner["tenant"]["id"])
    address, long_email = new_client_address(), _long_email()
    # What sign-in keeps of it: one character more than any account's address can have.
    kept = long_email[:321]
    for _ in range(2):
        with pytest.raises(InvalidCredentialsError):
            await sign_in(
                database,
                signer,
                email=f"  {long_email.upper()}  ",
                password=PASSWORD,
                tenant_slug=owner["tenant"]["slug"],
                client_address=address,
            )
        with pytest.raises(InvalidCredentialsError):
            await sign_in_staff(database, signer, email=long_email, password=PASSWORD, client_address=address)

    assert await _counters(
        database,
        lockout.account_key(TENANT_REALM, kept),
        lockout.address_key(TENANT_REALM, address),
        lockout.account_key(STAFF_REALM, kept),
        lockout.address_key(STAFF_REALM, address),
    ) == {
        f"account:tenant:{kept}": 2,
        f"address:tenant:{address}": 2,
        f"account:staff:{kept}": 2,
        f"address:staff:{address}": 2,
    }
    assert [
        (entry["action"], entry["actor_type"], entry["data"])
        for entry in await audit_trail(database, owner["tenant"]["id"], since=since)
    ] == [("auth.sign_in_failed", "anonymous", {"email": kept, "reason": "not_a_member"})] * 2


async def test_an_over_long_email_still_locks_its_address_out(
    client: AsyncTestClient[Litestar], database: Database, signer: TokenSigner
) -> None:
    owner = await sign_up(client)
    address = new_client_address()
    # Per address, the first 20 failures go through at once; the 21st sets a wait of 1 second.
    for _ in range(21):
        with pytest.raises(InvalidCredentialsError):
            await sign_in(
                database,
                signer,
                email=_long_email(),
                password=PASSWORD,
                tenant_slug=owner["tenant"]["slug"],
                client_address=address,
            )
    with pytest.raises(TooManyAttemptsError) as refused:
        await sign_in(
            database,
            signer,
            email=owner["email"],
            password=PASSWORD,
            tenant_slug=owner["tenant"]["slug"],
            client_address=address,
        )
    assert refused.value.retry_after_seconds == 1


# B: a store's trail records a failed sign-in of a non-member as anonymous, whatever the password.


async def test_a_non_member_failing_to_sign_in_is_anonymous_in_the_stores_trail_whatever_the_password(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    prober = await sign_up(client)
    elsewhere = await sign_up(client)  # a person of another store
    slug, tenant_id = prober["tenant"]["slug"], prober["tenant"]["id"]
    nobody = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    since = await last_audit_id(database, tenant_id)

    answers = []
    for email, password in (
        (elsewhere["email"], WRONG_PASSWORD),
        (elsewhere["email"], PASSWORD),
        (nobody, PASSWORD),
    ):
        response = await client.post(
            "/api/v1/auth/token", json={"email": email, "password": password, "tenant": slug}
        )
        answers.append(_problem(response))
    # The same answer whether the account exists elsewhere, and whether its password was right.
    assert answers == [(401, "invalid_credentials", BAD_CREDENTIALS)] * 3

    anonymous = {"actor_type": "anonymous", "actor_id": None, "target_type": None, "target_id": None}
    assert await audit_trail(database, tenant_id, since=since) == [
        {"action": "auth.sign_in_failed", **anonymous, "data": {"email": email, "reason": "not_a_member"}}
        for email in (elsewhere["email"], elsewhere["email"], nobody)
    ]
    # What the owner reads through the API says no more.
    trail = await client.get(
        "/api/v1/audit-log", headers=bearer(prober["token"]["access_token"]), params={"limit": 3}
    )
    assert trail.status_code == 200, trail.text
    assert [(entry["actor_type"], entry["actor_id"], entry["data"]) for entry in trail.json()["data"]] == [
        ("anonymous", None, {"email": email, "reason": "not_a_member"})
        for email in (nobody, elsewhere["email"], elsewhere["email"])
    ]
    # Nothing reaches the other store's trail either.
    assert [
        entry["action"]
        for entry in await audit_trail(database, elsewhere["tenant"]["id"])
        if entry["action"] == "auth.sign_in_failed"
    ] == []


async def test_a_members_failed_sign_in_is_still_recorded_as_theirs(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    agent = await add_member(client, database, bearer(owner["token"]["access_token"]), "agent")
    deactivated = await client.patch(
        f"/api/v1/users/{agent.user_id}",
        json={"status": "deactivated"},
        headers=bearer(owner["token"]["access_token"]),
    )
    assert deactivated.status_code == 200, deactivated.text
    since = await last_audit_id(database, owner["tenant"]["id"])
    for email, password in ((owner["email"], WRONG_PASSWORD), (agent.email, PASSWORD)):
        response = await client.post(
            "/api/v1/auth/token",
            json={"email": email, "password": password, "tenant": owner["tenant"]["slug"]},
        )
        assert _problem(response) == (401, "invalid_credentials", BAD_CREDENTIALS)

    assert [
        (entry["actor_type"], entry["actor_id"], entry["data"])
        for entry in await audit_trail(database, owner["tenant"]["id"], since=since)
    ] == [
        ("user", owner["user_id"], {"email": owner["email"], "reason": "bad_password"}),
        ("user", agent.user_id, {"email": agent.email, "reason": "no_active_membership"}),
    ]


async def test_a_non_members_password_is_never_checked_so_timing_tells_nothing(
    client: AsyncTestClient[Litestar],
    database: Database,
    signer: TokenSigner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prober = await sign_up(client)
    elsewhere = await sign_up(client)
    checked: list[str | None] = []

    async def spying_verify(password: str, password_hash: str | None) -> bool:
        checked.append(password_hash)
        return await verify_password(password, password_hash)

    monkeypatch.setattr(accounts, "verify_password", spying_verify)
    for email, password in (
        (elsewhere["email"], PASSWORD),
        (elsewhere["email"], WRONG_PASSWORD),
        (f"nobody-{uuid.uuid4().hex[:8]}@example.com", PASSWORD),
    ):
        with pytest.raises(InvalidCredentialsError):
            await sign_in(
                database,
                signer,
                email=email,
                password=password,
                tenant_slug=prober["tenant"]["slug"],
                client_address=new_client_address(),
            )
    # Each spent one hash of the password against no stored hash: the same work, the same time.
    assert checked == [None, None, None]

    async with database.platform_session() as session:
        stored = await session.scalar(
            select(AuditEntry.id).where(
                AuditEntry.tenant_id == uuid.UUID(elsewhere["tenant"]["id"]),
                AuditEntry.action == "auth.sign_in_failed",
            )
        )
    assert stored is None


# C: an archived store is named only to whoever proves the password, and that counts as no failure.


async def test_an_archived_store_is_told_only_to_the_right_password_which_counts_no_failure(
    settings: Settings, database: Database
) -> None:
    address = new_client_address()
    async with AsyncTestClient(seen_from(create_app(settings), lambda: address)) as client:
        owner = await sign_up(client)
        slug, tenant_id, email = owner["tenant"]["slug"], owner["tenant"]["id"], owner["email"]
        await archive_tenant(database, slug, actor=Actor("system", "cli:operator"))
        since = await last_audit_id(database, tenant_id)
        keys = (lockout.account_key(TENANT_REALM, email), lockout.address_key(TENANT_REALM, address))

        wrong = await client.post(
            "/api/v1/auth/token", json={"email": email, "password": WRONG_PASSWORD, "tenant": slug}
        )
        assert _problem(wrong) == (401, "invalid_credentials", BAD_CREDENTIALS)
        assert await _counters(database, *keys) == {keys[0]: 1, keys[1]: 1}
        # More times than failures may be made before a wait: none of them is held against the person.
        for _ in range(5):
            right = await client.post(
                "/api/v1/auth/token", json={"email": email, "password": PASSWORD, "tenant": slug}
            )
            assert _problem(right) == (
                403,
                "tenant_archived",
                f"store {slug!r} is archived: nobody can use it until a vendor administrator restores it "
                f"(`ordersmith tenants restore -- {slug}`)",
            )
        assert await _counters(database, *keys) == {keys[1]: 1}
        assert [
            (entry["action"], entry["actor_id"], entry["data"])
            for entry in await audit_trail(database, tenant_id, since=since)
        ] == [
            ("auth.sign_in_failed", owner["user_id"], {"email": email, "reason": "bad_password"}),
            *[("auth.sign_in_failed", owner["user_id"], {"email": email, "reason": "tenant_archived"})] * 5,
        ]

        await restore_tenant(database, slug, actor=Actor("system", "cli:operator"))
        restored = await client.post(
            "/api/v1/auth/token", json={"email": email, "password": PASSWORD, "tenant": slug}
        )
        assert restored.status_code == 200, restored.text
