"""Email verification and password reset: the single-use links sent by email.

Both rest on `action_tokens`: only a token's hash is stored, it expires, and using it
marks it used in the same transaction as its effect. Asking for a reset never says
whether an account exists, by its answer or by its timing: the request only records the
address, and a worker looks the account up and sends the link. It is rate-limited per
address with the lockout module (the first three requests in 15 minutes go through at
once, then 1 s and 2 s waits, and the fifth locks the address out of resets for 15
minutes) whether or not the address has an account, so that a 429 reveals nothing either.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.errors import (
    ConflictError,
    InvalidCredentialsError,
    TokenGoneError,
    TooManyAttemptsError,
)
from ordersmith.platform.events import Event, consumers, record_event
from ordersmith.platform.identity import lockout
from ordersmith.platform.identity.accounts import (
    TENANT_REALM,
    VERIFY_EMAIL_LIFETIME,
    create_action_token,
    normalize_email,
)
from ordersmith.platform.identity.audit import Actor, record_audit
from ordersmith.platform.identity.models import ActionToken, Membership, RefreshToken, User
from ordersmith.platform.identity.passwords import check_password, hash_password
from ordersmith.platform.identity.tokens import secret_hash
from ordersmith.platform.mail import queue_email
from ordersmith.platform.models import Tenant
from ordersmith.platform.tenancy import TenantRecord

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"
RESET_PASSWORD_LIFETIME = dt.timedelta(minutes=60)
# A person who just got a verification email waits a minute before asking for another.
RESEND_COOLDOWN = dt.timedelta(seconds=60)
RESET_REALM = "password_reset"
RESET_POLICY = lockout.Policy(free_attempts=2, lock_at=5)
# Recorded by a reset request; the worker that consumes it sends the link, if any.
PASSWORD_RESET_REQUESTED = "identity.password_reset_requested"
RESET_SENDER = "identity.reset_sender"
# Where a person goes for a fresh link, by purpose; said in every 410.
_NEXT_STEP = {
    VERIFY_EMAIL: "request a new link: sign in and ask for the verification email again",
    RESET_PASSWORD: "request a new link from the 'Forgot your password?' page",
}


class EmailAlreadyVerifiedError(ConflictError):
    code = "email_already_verified"
    title = "Email already verified"


@dataclass(frozen=True)
class VerifiedEmail:
    """The outcome of following a verification link."""

    user_id: uuid.UUID
    email: str
    verified_at: dt.datetime


@dataclass(frozen=True)
class PasswordReset:
    """The outcome of a password reset: the account, and how many sessions it ended."""

    user_id: uuid.UUID
    email: str
    sessions_ended: int


def _link(public_url: str, path: str, token: str) -> str:
    return f"{public_url}/{path}?token={token}"


async def _usable_token(session: AsyncSession, token: str, purpose: str, now: dt.datetime) -> ActionToken:
    """The action token behind `token`, locked; `TokenGoneError` if it cannot be used (any more)."""
    record = (
        await session.execute(
            select(ActionToken)
            .where(ActionToken.token_hash == secret_hash(token), ActionToken.purpose == purpose)
            .with_for_update()
        )
    ).scalar_one_or_none()
    next_step = _NEXT_STEP[purpose]
    if record is None:
        raise TokenGoneError(f"this link is not valid (it may be incomplete); {next_step}")
    if record.used_at is not None:
        raise TokenGoneError(f"this link was already used; {next_step}")
    if record.expires_at <= now:
        raise TokenGoneError(f"this link has expired; {next_step}")
    return record


async def _active_memberships(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """(tenant id, store name) of every store where the user may sign in, oldest first."""
    rows = await session.execute(
        select(Membership.tenant_id, Tenant.name)
        .join(Tenant, Tenant.id == Membership.tenant_id)
        .where(Membership.user_id == user_id, Membership.status == "active")
        .order_by(Membership.created_at, Membership.tenant_id)
    )
    return [(tenant_id, name) for tenant_id, name in rows]


def _trails_in_lock_order(memberships: list[tuple[uuid.UUID, str]]) -> list[uuid.UUID]:
    """The stores' tenant ids in tenant-id order: the one order every transaction locks several trails in.

    A trail stays locked until commit. In the order people joined, two people of the same
    stores who joined them in opposite orders would lock the trails in opposite orders,
    and of two resets (or verifications) at the same moment PostgreSQL would end one as a
    deadlock. `record_failed_sign_up` writes its trails in the same order.
    """
    return sorted(tenant_id for tenant_id, _ in memberships)


async def verify_email(database: Database, *, token: str, client_address: str | None) -> VerifiedEmail:
    """Mark the address of the link's user as verified; the link then stops working."""
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        record = await _usable_token(session, token, VERIFY_EMAIL, now)
        user = await session.get(User, record.user_id, with_for_update=True)
        assert user is not None  # the foreign key cascades deletes to the token
        # Every outstanding verification link of the user is spent: one proof is enough.
        await session.execute(
            update(ActionToken)
            .where(
                ActionToken.user_id == user.id,
                ActionToken.purpose == VERIFY_EMAIL,
                ActionToken.used_at.is_(None),
            )
            .values(used_at=now)
        )
        verified_at = user.email_verified_at or now
        if user.email_verified_at is None:
            await session.execute(update(User).where(User.id == user.id).values(email_verified_at=now))
            actor = Actor("user", str(user.id), client_address)
            for tenant_id in _trails_in_lock_order(await _active_memberships(session, user.id)):
                await record_audit(
                    session,
                    tenant_id=tenant_id,
                    actor=actor,
                    action="auth.email_verified",
                    target_type="user",
                    target_id=str(user.id),
                )
    return VerifiedEmail(user.id, user.email, verified_at)


async def resend_verification(
    database: Database, *, user_id: uuid.UUID, tenant: TenantRecord, public_url: str
) -> str:
    """Send the signed-in user a fresh verification link; return the address it goes to."""
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        # Locking the user serialises two quick clicks, so that only one email leaves.
        user = await session.get(User, user_id, with_for_update=True)
        if user is None:
            raise InvalidCredentialsError("this account no longer exists; sign in again")
        if user.email_verified_at is not None:
            raise EmailAlreadyVerifiedError(f"{user.email} is already verified; there is nothing to do")
        last_sent = (
            await session.execute(
                select(func.max(ActionToken.created_at)).where(
                    ActionToken.user_id == user.id, ActionToken.purpose == VERIFY_EMAIL
                )
            )
        ).scalar_one()
        if last_sent is not None and now - last_sent < RESEND_COOLDOWN:
            wait = max(1, math.ceil((last_sent + RESEND_COOLDOWN - now).total_seconds()))
            raise TooManyAttemptsError(
                f"a verification email went to {user.email} moments ago; check your inbox and spam "
                f"folder, or ask again in {lockout.describe_wait(wait)}",
                retry_after_seconds=wait,
            )
        token = await create_action_token(
            session, user_id=user.id, purpose=VERIFY_EMAIL, lifetime=VERIFY_EMAIL_LIFETIME
        )
        await queue_email(
            session,
            tenant.context,
            to=user.email,
            template="verify_email",
            context={"store_name": tenant.name, "link": _link(public_url, "verify-email", token)},
        )
    return user.email


async def request_password_reset(
    database: Database, *, email: str, public_url: str, client_address: str | None
) -> None:
    """Ask for a reset link for the address; the caller learns nothing about its account.

    The request does the same work whatever the address: it counts the request and
    records an event naming the address, in one transaction. Whether an account uses the
    address is looked up later by the worker (`send_reset_link`), so that neither the
    answer nor the time it takes tells the caller.
    """
    email = normalize_email(email)
    counter = lockout.Counter(lockout.account_key(RESET_REALM, email), RESET_POLICY)
    async with database.platform_session() as session:
        await lockout.reserve(
            session,
            [counter],
            dt.datetime.now(dt.UTC),
            refusal=lambda wait: (
                "too many reset requests for this address; check your inbox for the link already "
                f"sent, or try again in {wait}"
            ),
        )
        await record_event(
            session, None, PASSWORD_RESET_REQUESTED, {"email": email, "public_url": public_url}
        )


@consumers.platform_consumer(RESET_SENDER, PASSWORD_RESET_REQUESTED)
async def send_reset_link(session: AsyncSession, event: Event) -> None:
    """Email a reset link to the account that uses the requested address, if there is one.

    An account without a password gets one too: single sign-on created it, on the word of
    one store's identity provider, for an address its owner may never have used with us.
    The link proves the address, so following it gives the account a password and makes
    it the address owner's, who could otherwise neither sign up with it nor sign in.
    """
    email: str = event.payload["email"]
    user = (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
    if user is None:
        return
    # A new link replaces the older ones: only the latest email works.
    await session.execute(
        update(ActionToken)
        .where(
            ActionToken.user_id == user.id,
            ActionToken.purpose == RESET_PASSWORD,
            ActionToken.used_at.is_(None),
        )
        .values(used_at=dt.datetime.now(dt.UTC))
    )
    token = await create_action_token(
        session, user_id=user.id, purpose=RESET_PASSWORD, lifetime=RESET_PASSWORD_LIFETIME
    )
    await queue_email(
        session,
        None,
        to=user.email,
        template="reset_password",
        context={
            "link": _link(event.payload["public_url"], "reset-password", token),
            "expires_in_minutes": int(RESET_PASSWORD_LIFETIME.total_seconds() // 60),
        },
    )


async def confirm_password_reset(
    database: Database, *, token: str, new_password: str, client_address: str | None
) -> PasswordReset:
    """Set a new password through a reset link, ending every session of the account."""
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        record = await _usable_token(session, token, RESET_PASSWORD, now)
        user = await session.get(User, record.user_id)
        assert user is not None  # the foreign key cascades deletes to the token
    # A weak password leaves the link usable, so the person can try another one.
    check_password(new_password, user.email, field="new_password")
    # Hashing takes a while: do it before taking locks, then claim the token atomically.
    password_hash = await hash_password(new_password)
    async with database.platform_session() as session:
        # The account before its link and sessions, the order a store's drop locks them in
        # (it deletes the account's tokens, then may delete the account and so its links).
        await session.execute(select(User.id).where(User.id == user.id).with_for_update(key_share=True))
        claimed = await session.execute(
            update(ActionToken)
            .where(ActionToken.id == record.id, ActionToken.used_at.is_(None), ActionToken.expires_at > now)
            .values(used_at=now)
            .returning(ActionToken.id)
        )
        if claimed.first() is None:
            raise TokenGoneError(f"this link was used a moment ago; {_NEXT_STEP[RESET_PASSWORD]}")
        # The link arrived at the address, which proves it as well as a verification link would.
        await session.execute(
            update(User)
            .where(User.id == user.id)
            .values(password_hash=password_hash, email_verified_at=func.coalesce(User.email_verified_at, now))
        )
        sessions_ended = await _end_every_session(session, user.id, now)
        await lockout.clear(session, lockout.account_key(TENANT_REALM, user.email))
        await lockout.clear(session, lockout.account_key(RESET_REALM, user.email))
        memberships = await _active_memberships(session, user.id)
        actor = Actor("user", str(user.id), client_address)
        for tenant_id in _trails_in_lock_order(memberships):
            await record_audit(
                session,
                tenant_id=tenant_id,
                actor=actor,
                action="auth.password_reset",
                target_type="user",
                target_id=str(user.id),
                data={"sessions_ended": sessions_ended},
            )
        await queue_email(
            session,
            None,
            to=user.email,
            template="security_alert",
            context={
                "store_name": ", ".join(name for _, name in memberships) or "Ordersmith",
                "what": "Your password was reset through a link sent to this address, "
                "and every signed-in session was ended.",
                "when": now.strftime("%Y-%m-%d %H:%M UTC"),
            },
        )
    return PasswordReset(user.id, user.email, sessions_ended)


async def _end_every_session(session: AsyncSession, user_id: uuid.UUID, now: dt.datetime) -> int:
    """Revoke every refresh token of the user; return how many sessions were still alive."""
    alive = (
        await session.execute(
            select(func.count(func.distinct(RefreshToken.family_id))).where(
                RefreshToken.user_id == user_id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            )
        )
    ).scalar_one()
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(alive)
