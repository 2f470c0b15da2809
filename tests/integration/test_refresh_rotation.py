"""Refresh-token rotation under races, refusals that end sessions for good, and audited sign-out."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text, update

from ordersmith.platform.database import Database
from ordersmith.platform.errors import InvalidCredentialsError, OrdersmithError, RefreshTokenReusedError
from ordersmith.platform.identity.accounts import create_action_token, refresh_session
from ordersmith.platform.identity.models import AuditEntry, Membership, RefreshToken
from ordersmith.platform.identity.recovery import RESET_PASSWORD, confirm_password_reset
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


@contextlib.asynccontextmanager
async def _tokens_issued_slowly(
    database: Database, user_id: uuid.UUID, seconds: float
) -> AsyncIterator[None]:
    """Make every refresh token issued to the user take `seconds` before its transaction can commit.

    A trigger on the real table, installed by the owner for this test only: it holds a
    rotation open between issuing its token and committing, the window a race needs.
    """
    name = f"slow_refresh_tokens_{user_id.hex}"
    async with database.owner.begin() as connection:
        await connection.execute(
            text(
                f"CREATE FUNCTION platform.{name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN IF NEW.user_id = '{user_id}' THEN PERFORM pg_sleep({seconds}); END IF; "
                "RETURN NEW; END $$"
            )
        )
        await connection.execute(
            text(
                f"CREATE TRIGGER {name} AFTER INSERT ON platform.refresh_tokens "
                f"FOR EACH ROW EXECUTE FUNCTION platform.{name}()"
            )
        )
    try:
        yield
    finally:
        async with database.owner.begin() as connection:
            await connection.execute(text(f"DROP TRIGGER {name} ON platform.refresh_tokens"))
            await connection.execute(text(f"DROP FUNCTION platform.{name}()"))


async def _until_a_session_sleeps(database: Database) -> None:
    for _ in range(200):
        async with database.platform_reader() as session:
            sleeping = await session.scalar(
                select(func.count())
                .select_from(text("pg_stat_activity"))
                .where(text("wait_event = 'PgSleep'"))
            )
        if sleeping:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the rotation never reached the slow trigger")


async def test_a_password_reset_racing_a_refresh_ends_the_token_the_refresh_issued(
    client: AsyncTestClient[Litestar], database: Database, signer: TokenSigner
) -> None:
    owner = await sign_up(client)
    user_id = uuid.UUID(owner["user_id"])
    async with database.platform_session() as session:
        reset_token = await create_action_token(
            session, user_id=user_id, purpose=RESET_PASSWORD, lifetime=dt.timedelta(hours=1)
        )

    async with _tokens_issued_slowly(database, user_id, seconds=1.5):
        # The rotation has claimed the old token and issued a new one, not yet committed,
        # when the reset ends every session of the account.
        rotation = asyncio.create_task(
            refresh_session(
                database, signer, refresh_token=owner["token"]["refresh_token"], client_address=None
            )
        )
        await _until_a_session_sleeps(database)
        reset = await confirm_password_reset(
            database, token=reset_token, new_password="Quiet-Lantern-Harbor-42", client_address=None
        )
        rotated = await rotation

    # The reset waited for the rotation, then ended the session it had just renewed.
    assert reset.sessions_ended == 1
    async with database.platform_session() as session:
        tokens = (
            await session.execute(
                select(RefreshToken.used_at.is_not(None), RefreshToken.revoked_at.is_not(None))
                .where(RefreshToken.user_id == user_id)
                .order_by(RefreshToken.issued_at)
            )
        ).all()
    assert [tuple(row) for row in tokens] == [(True, True), (False, True)]
    with pytest.raises(InvalidCredentialsError) as refused:
        await refresh_session(database, signer, refresh_token=rotated.refresh_token, client_address=None)
    assert refused.value.detail == (
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
