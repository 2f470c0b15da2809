"""Refresh-token rotation under races, refusals that end sessions for good, and audited sign-out."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from ordersmith.platform.database import Database
from ordersmith.platform.errors import InvalidCredentialsError, OrdersmithError, RefreshTokenReusedError
from ordersmith.platform.identity.accounts import refresh_session
from ordersmith.platform.identity.models import AuditEntry, Membership, RefreshToken
from ordersmith.platform.identity.tokens import TokenSigner, secret_hash
from ordersmith.platform.settings import Settings
from tests.support.http import sign_up
from tests.support.members import audit_trail


@pytest.fixture
def signer(settings: Settings) -> TokenSigner:
    return TokenSigner(settings.secret_key)


async def _family(database: Database, refresh_token: str) -> list[RefreshToken]:
    """Every token of the family `refresh_token` belongs to, oldest first, as stored."""
    async with database.platform_session() as session:
        family = (
            select(RefreshToken.family_id)
            .where(RefreshToken.token_hash == secret_hash(refresh_token))
            .scalar_subquery()
        )
        return list(
            (
                await session.execute(
                    select(RefreshToken)
                    .where(RefreshToken.family_id == family)
                    .order_by(RefreshToken.issued_at)
                )
            ).scalars()
        )


async def _refresh(database: Database, signer: TokenSigner, refresh_token: str) -> str:
    """`rotated`, or the code the refresh was refused with."""
    try:
        await refresh_session(database, signer, refresh_token=refresh_token, client_address=None)
    except OrdersmithError as error:
        return error.code
    return "rotated"


async def _actions(database: Database, tenant_id: str, action: str) -> list[dict[str, object]]:
    return [entry for entry in await audit_trail(database, tenant_id) if entry["action"] == action]


async def test_two_refreshes_with_one_token_rotate_once_and_end_the_family(
    client: AsyncTestClient[Litestar], database: Database, signer: TokenSigner
) -> None:
    owner = await sign_up(client)
    token = owner["token"]["refresh_token"]

    outcomes = await asyncio.gather(*(_refresh(database, signer, token) for _ in range(2)))

    # The second waits for the first, then sees a used token: a replay, so all of it ends.
    assert sorted(outcomes) == ["refresh_token_reused", "rotated"]
    presented, issued = await _family(database, token)
    assert presented.used_at is not None
    assert issued.used_at is None
    assert presented.revoked_at is not None
    assert issued.revoked_at is not None
    [reused] = await _actions(database, owner["tenant"]["id"], "auth.refresh_token_reused")
    assert reused["data"] == {"family_id": str(presented.family_id)}


async def test_a_replayed_token_ends_the_family_for_good(
    client: AsyncTestClient[Litestar], database: Database, signer: TokenSigner
) -> None:
    owner = await sign_up(client)
    token = owner["token"]["refresh_token"]
    rotated = await refresh_session(database, signer, refresh_token=token, client_address=None)

    with pytest.raises(RefreshTokenReusedError):
        await refresh_session(database, signer, refresh_token=token, client_address=None)

    # Read after the refusal: the revocation was committed, not rolled back with the error.
    assert [record.revoked_at is not None for record in await _family(database, token)] == [True, True]
    assert await _refresh(database, signer, rotated.refresh_token) == "invalid_credentials"


async def test_a_deactivated_member_cannot_refresh_and_the_session_ends_for_good(
    client: AsyncTestClient[Litestar], database: Database, signer: TokenSigner
) -> None:
    owner = await sign_up(client)
    token = owner["token"]["refresh_token"]
    async with database.platform_session() as session:
        # The membership alone, as when a deactivation commits while this session refreshes.
        await session.execute(
            update(Membership)
            .where(Membership.user_id == uuid.UUID(owner["user_id"]))
            .values(status="deactivated")
        )

    with pytest.raises(InvalidCredentialsError) as refused:
        await refresh_session(database, signer, refresh_token=token, client_address=None)

    assert refused.value.detail == "this account no longer has access to this store"
    [record] = await _family(database, token)
    assert record.revoked_at is not None
    assert record.used_at is None
    with pytest.raises(InvalidCredentialsError) as again:
        await refresh_session(database, signer, refresh_token=token, client_address=None)
    assert again.value.detail == (
        "this session has ended (signed out, password reset, or access removed); sign in again"
    )


async def test_signing_out_is_audited_once(client: AsyncTestClient[Litestar], database: Database) -> None:
    owner = await sign_up(client)
    token = owner["token"]["refresh_token"]

    for _ in range(2):
        response = await client.post("/api/v1/auth/logout", json={"refresh_token": token})
        assert response.status_code == 200

    [record] = await _family(database, token)
    assert record.revoked_at is not None
    assert await _actions(database, owner["tenant"]["id"], "auth.signed_out") == [
        {
            "action": "auth.signed_out",
            "actor_type": "user",
            "actor_id": owner["user_id"],
            "target_type": None,
            "target_id": None,
            "data": {"family_id": str(record.family_id)},
        }
    ]
    async with database.platform_session() as session:
        signed_out_from = (
            await session.execute(
                select(AuditEntry.client_address).where(
                    AuditEntry.tenant_id == uuid.UUID(owner["tenant"]["id"]),
                    AuditEntry.action == "auth.signed_out",
                )
            )
        ).scalar_one()
    assert signed_out_from == "testclient"
