"""Dropping a store deletes the accounts it leaves without a store and without a pending invitation."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text

from ordersmith.platform.database import Database
from ordersmith.platform.errors import InvalidCredentialsError, TokenGoneError
from ordersmith.platform.identity.accounts import create_action_token, refresh_session
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.identity.models import Membership, User
from ordersmith.platform.identity.recovery import confirm_password_reset
from ordersmith.platform.identity.tokens import TokenSigner
from ordersmith.platform.settings import Settings
from ordersmith.platform.tenancy import archive_tenant, drop_tenant, get_tenant_record
from tests.support.concurrency import wait_for_lock_waiters
from tests.support.http import PASSWORD, bearer, sign_up
from tests.support.members import add_member, invitation_token, invite

OPERATOR = Actor("system", "cli:operator")


async def _accounts(database: Database, email: str) -> int:
    async with database.platform_session() as session:
        return int(
            await session.scalar(select(func.count()).select_from(User).where(User.email == email)) or 0
        )


async def test_a_drop_deletes_only_the_accounts_left_with_no_store_and_no_pending_invitation(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    dropped = await sign_up(client)
    kept = await sign_up(client)
    dropped_headers = bearer(dropped["token"]["access_token"])
    kept_headers = bearer(kept["token"]["access_token"])
    # A member of both stores.
    shared = await add_member(client, database, kept_headers, "agent")
    await invite(client, dropped_headers, shared.email, "viewer")
    joined = await client.post(
        "/api/v1/invitations/accept",
        json={"token": await invitation_token(database, shared.email), "password": PASSWORD},
    )
    assert joined.status_code == 201, joined.text
    # A member of the dropped store only, invited to the other one and not yet answering.
    invited = await add_member(client, database, dropped_headers, "manager")
    await invite(client, kept_headers, invited.email, "viewer")
    async with database.platform_session() as session:
        shared_membership = await session.scalar(
            select(Membership.id).where(
                Membership.tenant_id == kept["tenant"]["id"], Membership.user_id == shared.user_id
            )
        )
    slug = dropped["tenant"]["slug"]
    await archive_tenant(database, slug, actor=OPERATOR)

    await drop_tenant(database, slug, confirm=slug, actor=OPERATOR)

    emails = [dropped["email"], kept["email"], shared.email, invited.email]
    async with database.platform_session() as session:
        accounts = (await session.execute(select(User.email, User.id).where(User.email.in_(emails)))).all()
        memberships = (
            await session.execute(
                select(
                    Membership.id,
                    Membership.user_id,
                    Membership.tenant_id,
                    Membership.role,
                    Membership.status,
                ).where(Membership.user_id.in_([account.id for account in accounts]))
            )
        ).all()
    # The dropped store's owner is gone; its other members stay, as does the other store's owner.
    assert sorted((email, str(user_id)) for email, user_id in accounts) == sorted(
        [(kept["email"], kept["user_id"]), (shared.email, shared.user_id), (invited.email, invited.user_id)]
    )
    kept_id = kept["tenant"]["id"]
    assert sorted(
        (str(user_id), str(tenant_id), role, status) for _, user_id, tenant_id, role, status in memberships
    ) == sorted([(kept["user_id"], kept_id, "owner", "active"), (shared.user_id, kept_id, "agent", "active")])
    # The shared account's other membership is the very row it had.
    assert shared_membership in [membership_id for membership_id, *_ in memberships]


async def test_a_refresh_and_a_password_reset_during_a_drop_neither_deadlock_nor_stop_it(
    client: AsyncTestClient[Litestar], database: Database, settings: Settings
) -> None:
    store = await sign_up(client)
    slug = store["tenant"]["slug"]
    async with database.platform_session() as session:
        link = await create_action_token(
            session,
            user_id=uuid.UUID(store["user_id"]),
            purpose="reset_password",
            lifetime=dt.timedelta(hours=1),
        )
    await archive_tenant(database, slug, actor=OPERATOR)
    record = await get_tenant_record(database, slug)
    async with database.owner.connect() as blocker:
        await blocker.begin()
        # Holds the drop inside DROP SCHEMA, with the store's row and tokens deleted, for as
        # long as a big store's schema takes to drop: the window the account's own writes race.
        await blocker.execute(text(f'LOCK TABLE "{record.schema_name}".orders IN ACCESS SHARE MODE'))
        drop = asyncio.create_task(drop_tenant(database, slug, confirm=slug, actor=OPERATOR))
        await wait_for_lock_waiters(database, 1, owners_too=True)
        refresh = asyncio.create_task(
            refresh_session(
                database,
                TokenSigner(settings.secret_key),
                refresh_token=store["token"]["refresh_token"],
                client_address=None,
            )
        )
        reset = asyncio.create_task(
            confirm_password_reset(
                database, token=link, new_password="Another-Horse-Battery-9", client_address=None
            )
        )
        await wait_for_lock_waiters(database, 3, owners_too=True)
        await blocker.rollback()
    dropped, refreshed, reset_outcome = await asyncio.gather(drop, refresh, reset, return_exceptions=True)

    # The drop went through; the account's writes found it gone, each with its own clear error.
    assert dropped is None
    assert isinstance(refreshed, InvalidCredentialsError), repr(refreshed)
    assert isinstance(reset_outcome, TokenGoneError), repr(reset_outcome)
    assert await _accounts(database, store["email"]) == 0
