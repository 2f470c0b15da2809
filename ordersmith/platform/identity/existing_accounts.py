"""Sign-up with an address that already has an account: proving its password, and telling who should know.

A right password makes the new store the account's (`accounts.sign_up`), unless the
sign-up repeats one that just made a store (409 `sign_up_repeated`, naming it); a wrong one
is 409 `email_taken`, counted by sign-in's lockout and written to the account's stores'
trails as a failed sign-in. Split from `accounts.py` to keep it readable.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.errors import ConflictError, EmailTakenError
from ordersmith.platform.identity import lockout
from ordersmith.platform.identity.audit import Actor, record_audit
from ordersmith.platform.identity.lockout import TENANT_REALM
from ordersmith.platform.identity.models import Membership, User
from ordersmith.platform.identity.passwords import verify_password
from ordersmith.platform.models import Tenant, TenantStatus

# How long after an account starts a store a sign-up of the same account and store name is
# taken for the same one sent again (a double click, a client's retry), not for a second store.
REPEATED_SIGN_UP_WINDOW = dt.timedelta(minutes=10)


class SignUpRepeatedError(ConflictError):
    code = "sign_up_repeated"
    title = "Store already started"


async def prove_account_password(
    database: Database,
    user_id: uuid.UUID,
    email: str,
    password: str,
    password_hash: str | None,
    client_address: str | None,
) -> None:
    """Refuse (409 `email_taken`) unless `password` is the existing account's; counted like a sign-in."""
    attempt = lockout.SignInAttempt.of(TENANT_REALM, email, client_address)
    async with database.platform_session() as session:
        await lockout.reserve_sign_in(
            session, attempt, dt.datetime.now(dt.UTC), advice=", or reset your password"
        )
    # An account without a password (made by SSO) is checked against no hash: as slow, never a match.
    if not await verify_password(password, password_hash):
        await record_failed_sign_up(database, user_id, email, client_address)
        raise email_taken()
    async with database.platform_session() as session:
        await lockout.sign_in_succeeded(session, attempt)


async def record_failed_sign_up(
    database: Database, user_id: uuid.UUID, email: str, client_address: str | None
) -> None:
    """A wrong password at sign-up counts toward the account's lockout: say so where sign-in failures go.

    Each store the account belongs to gets it in its trail, as a failed sign-in, so that an
    admin (or support) finding a member locked out sees why; an account of no store, the
    platform's trail. The answer to the caller names none of them.
    """
    actor = Actor("user", str(user_id), client_address)
    data = {"email": email, "reason": "bad_password_at_sign_up"}
    async with database.platform_session() as session:
        stores: list[uuid.UUID | None] = list(
            await session.scalars(
                select(Membership.tenant_id)
                .where(Membership.user_id == user_id)
                .order_by(Membership.tenant_id)
            )
        )
        for tenant_id in stores or [None]:
            await record_audit(
                session, tenant_id=tenant_id, actor=actor, action="auth.sign_in_failed", data=data
            )


async def lock_proven_account(
    connection: AsyncConnection, user_id: uuid.UUID, proven_hash: str | None
) -> None:
    """Hold the account the caller proved the password of until the new store exists, or refuse."""
    # Exclusive between two sign-ups of the account, so that the second sees the store the
    # first made (`refuse_repeated_sign_up`): the row lock below is shared, and cannot.
    await connection.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"ordersmith.sign_up:{user_id}"}
    )
    # Shared, as a refresh locks it: a password reset (which updates the row, then ends every
    # session) waits for this sign-up and ends its session too; a store drop deleting the
    # account waits, then sees the new membership and keeps it.
    current = (
        await connection.execute(
            select(User.password_hash).where(User.id == user_id).with_for_update(read=True)
        )
    ).one_or_none()
    if current is None:
        raise ConflictError("the account for this email was just removed; sign up again")
    if current.password_hash != proven_hash:
        raise ConflictError(
            "the password of the account for this email changed a moment ago; sign up again with the new one"
        )


async def refuse_repeated_sign_up(
    session: AsyncSession | AsyncConnection, user_id: uuid.UUID, company_name: str
) -> None:
    """Refuse (409 `sign_up_repeated`, naming it) a sign-up of a store this account started a moment ago.

    A sign-up without a slug gets a new random one each time, so the store's name is what
    tells a repeat. Asked only once the password is proven: the answer names the store.
    """
    store = (
        await session.execute(
            select(Tenant.slug, Tenant.name)
            .join(Membership, Membership.tenant_id == Tenant.id)
            .where(
                Membership.user_id == user_id,
                Membership.status == "active",
                # Made a member by the transaction that made the store (both rows take its
                # now()): started by this account, not joined later.
                Membership.created_at == Tenant.created_at,
                Tenant.name == company_name,
                Tenant.status == TenantStatus.ACTIVE.value,
                Tenant.created_at > func.now() - REPEATED_SIGN_UP_WINDOW,
            )
            .order_by(Tenant.created_at.desc())
            .limit(1)
        )
    ).one_or_none()
    if store is None:
        return
    minutes = int(REPEATED_SIGN_UP_WINDOW.total_seconds()) // 60
    raise SignUpRepeatedError(
        f"this account started the store {store.name!r} (slug {store.slug!r}) less than {minutes} minutes "
        f"ago, so this sign-up, a repeat of that one, made no second store; sign in to {store.slug!r} with "
        "this email and its password, or give another store a name of its own",
        extensions={"slug": store.slug},
    )


def email_taken() -> EmailTakenError:
    # Which stores the address belongs to is not said: that would leak who uses us.
    return EmailTakenError(
        "an account with this email already exists; to start a new store with it, sign up again with that "
        "account's password, or, if you do not know it or it has none (an account made by single sign-on), "
        "ask for a reset link (POST /api/v1/auth/password-reset): the link emailed to this address sets the "
        "password"
    )
