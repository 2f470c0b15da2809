"""Races on a store's members: an invitation that queued behind a change to its sender sees that change."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.errors import PermissionDeniedError, UnauthenticatedError
from ordersmith.platform.identity.invitations import CreatedInvitation, create_invitation
from ordersmith.platform.identity.members import MemberView, change_member
from ordersmith.platform.identity.models import ApiKey, Invitation
from ordersmith.platform.identity.permissions import permissions_of
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.tenancy import TenantRecord, get_tenant_by_id
from tests.support.concurrency import wait_for_lock_waiters
from tests.support.http import PASSWORD, bearer, sign_up
from tests.support.members import Member, add_member, invitation_token


def _email() -> str:
    return f"late-{uuid.uuid4().hex[:10]}@example.com"


def _person(tenant: TenantRecord, user_id: str, role: str) -> Principal:
    return Principal(
        "user", uuid.UUID(user_id), tenant, role, permissions_of(role), person_id=uuid.UUID(user_id)
    )


async def _key_of(client: AsyncTestClient[Litestar], member: Member, scopes: list[str]) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/api-keys", json={"name": "Sync", "scopes": scopes}, headers=member.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _send_during(
    database: Database,
    change: Coroutine[Any, Any, MemberView],
    sender: Principal,
    key_id: str,
    *,
    email: str,
    role: str,
) -> CreatedInvitation | BaseException:
    """Send an invitation as `sender` while a change to the sender holds the store's members lock."""
    # The test client runs one request at a time, so this race runs on the services. Holding
    # the sender's key row keeps the change in flight once it holds the members lock (it
    # locks the sender's keys last); the invitation, authorised a moment before, queues on it.
    async with database.platform_session() as session:
        await session.execute(select(ApiKey.id).where(ApiKey.id == uuid.UUID(key_id)).with_for_update())
        changing = asyncio.create_task(change)
        await wait_for_lock_waiters(database, 1)
        sending = asyncio.create_task(
            create_invitation(database, sender, email=email, role=role, public_url="http://testserver")
        )
        await wait_for_lock_waiters(database, 2)
    await changing
    [result] = await asyncio.gather(sending, return_exceptions=True)
    return result


async def _invitations_to(database: Database, email: str) -> list[tuple[str, bool]]:
    async with database.platform_session() as session:
        rows = (
            await session.execute(
                select(Invitation.role, Invitation.revoked_at.is_(None)).where(Invitation.email == email)
            )
        ).all()
    return [(role, is_live) for role, is_live in rows]


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        ("user", "this account no longer has access to this store; sign in again or use a valid API key"),
        (
            "api_key",
            "the person who created this API key no longer has access to this store; "
            "sign in again or use a valid API key",
        ),
    ],
)
async def test_an_invitation_queued_behind_its_senders_deactivation_is_refused(
    client: AsyncTestClient[Litestar], database: Database, kind: str, detail: str
) -> None:
    owner = await sign_up(client)
    tenant = await get_tenant_by_id(database, uuid.UUID(owner["tenant"]["id"]))
    admin = await add_member(client, database, bearer(owner["token"]["access_token"]), "admin")
    key = await _key_of(client, admin, ["users.manage"])
    sender = _person(tenant, admin.user_id, "admin")
    if kind == "api_key":
        sender = Principal(
            "api_key",
            uuid.UUID(key["api_key"]["id"]),
            tenant,
            None,
            frozenset(key["api_key"]["scopes"]),
            person_id=uuid.UUID(admin.user_id),
        )
    email = _email()
    deactivation = change_member(
        database, _person(tenant, owner["user_id"], "owner"), admin.user_id, role=None, status="deactivated"
    )

    result = await _send_during(
        database, deactivation, sender, key["api_key"]["id"], email=email, role="viewer"
    )

    # Refused as the same request sent a moment later would be: nothing is left to revoke.
    assert isinstance(result, UnauthenticatedError), result
    assert result.detail == detail
    assert await _invitations_to(database, email) == []


@pytest.mark.parametrize(
    ("sender_role", "new_role", "invited_role", "detail"),
    [
        (
            "admin",
            "agent",
            "viewer",
            "this needs the 'users.manage' permission, which your role or key lacks; ask a store admin",
        ),
        (
            "owner",
            "admin",
            "owner",
            "only an owner can invite another owner; choose a lower role or ask an owner",
        ),
        # An admin may still send this one: it goes out and stays valid.
        ("owner", "admin", "viewer", None),
    ],
)
async def test_an_invitation_queued_behind_its_senders_demotion_needs_the_new_role_to_allow_it(
    client: AsyncTestClient[Litestar],
    database: Database,
    sender_role: str,
    new_role: str,
    invited_role: str,
    detail: str | None,
) -> None:
    owner = await sign_up(client)
    tenant = await get_tenant_by_id(database, uuid.UUID(owner["tenant"]["id"]))
    member = await add_member(client, database, bearer(owner["token"]["access_token"]), sender_role)
    key = await _key_of(client, member, ["orders.read"])
    email = _email()
    demotion = change_member(
        database, _person(tenant, owner["user_id"], "owner"), member.user_id, role=new_role, status=None
    )

    result = await _send_during(
        database,
        demotion,
        _person(tenant, member.user_id, sender_role),
        key["api_key"]["id"],
        email=email,
        role=invited_role,
    )

    if detail is None:
        assert isinstance(result, CreatedInvitation), result
        assert await _invitations_to(database, email) == [(invited_role, True)]
        accepted = await client.post(
            "/api/v1/invitations/accept",
            json={
                "token": await invitation_token(database, email),
                "password": PASSWORD,
                "full_name": "Late",
            },
        )
        assert (accepted.status_code, accepted.json()["role"]) == (201, invited_role)
    else:
        assert isinstance(result, PermissionDeniedError), result
        assert result.detail == detail
        assert await _invitations_to(database, email) == []
