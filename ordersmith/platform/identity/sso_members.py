"""Whom a single sign-on lets in, once the provider vouched for an email (`sso.finish_sso_login`).

The store's own members with that verified email sign in (role unchanged; a deactivated
membership is refused). An unknown address becomes a user without a password and a member
with the configuration's default role, taking a seat as an invitation does. An existing
account that is not a member is refused: the provider's word vouches only for people the
store already has. Every refusal is written to the store's trail as a failed SSO sign-in.
Split from `sso.py`, which keeps the settings and the authorization-code flow.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.entitlement_usage import count_held_seats
from ordersmith.platform.entitlements import LimitReachedError, enforce_limit, entitlements_in
from ordersmith.platform.errors import AccountNotMemberError, AccountUnverifiedError, PermissionDeniedError
from ordersmith.platform.identity import oidc
from ordersmith.platform.identity.accounts import IssuedSession, start_session
from ordersmith.platform.identity.audit import Actor, record_audit
from ordersmith.platform.identity.members import lock_members
from ordersmith.platform.identity.models import Invitation, Membership, TenantSsoConfig, User
from ordersmith.platform.identity.tokens import TokenSigner
from ordersmith.platform.plans import Limit
from ordersmith.platform.tenancy import TenantRecord


class MembershipDeactivatedError(PermissionDeniedError):
    code = "membership_deactivated"
    title = "Membership deactivated"


@dataclass(frozen=True)
class SsoSignIn:
    """A finished SSO sign-in: the session, and where the web app should land."""

    issued: IssuedSession
    created_user: bool
    return_to: str


async def record_failure(
    database: Database, tenant_id: uuid.UUID, client_address: str | None, issuer: str, reason: str
) -> None:
    async with database.platform_session() as session:
        await record_audit(
            session,
            tenant_id=tenant_id,
            actor=Actor("anonymous", None, client_address),
            action="auth.sso_sign_in_failed",
            data={"issuer": issuer, "reason": reason},
        )


async def _find_or_create_user(session: AsyncSession, identity: oidc.Identity) -> tuple[uuid.UUID, bool]:
    """The user with the provider's email (and whether it is new); an unverified one is refused.

    Anyone can sign up with an address they do not own: linking that account to the
    provider's person would hand the store to whoever knows its password.
    """
    # ON CONFLICT: two first sign-ins of one person at once must not create two users.
    created = (
        await session.execute(
            pg_insert(User)
            .values(
                id=uuid.uuid4(),
                email=identity.email,
                full_name=identity.full_name,
                email_verified_at=dt.datetime.now(dt.UTC),
            )
            .on_conflict_do_nothing(index_elements=[User.email])
            .returning(User.id)
        )
    ).scalar_one_or_none()
    if created is not None:
        return created, True
    user_id, verified_at = (
        await session.execute(select(User.id, User.email_verified_at).where(User.email == identity.email))
    ).one()
    if verified_at is None:
        raise AccountUnverifiedError(
            f"an account for {identity.email} exists but its email address was never confirmed, so single "
            "sign-on cannot use it; confirm the address with the link emailed at sign-up, or reset that "
            "account's password (the emailed reset link confirms the address too), then sign in again"
        )
    return user_id, False


async def _require_membership(
    session: AsyncSession, tenant: TenantRecord, user_id: uuid.UUID, email: str
) -> None:
    """Refuse an existing account this store has no membership for.

    The store's admin chooses its identity provider, so the provider's word that someone
    owns an address only vouches for people the store already has. Anyone else joins the
    way every existing account does, by accepting an invitation sent to the address.
    """
    member = await session.scalar(
        select(Membership.id).where(Membership.tenant_id == tenant.id, Membership.user_id == user_id)
    )
    if member is None:
        raise AccountNotMemberError(
            f"an Ordersmith account already uses {email} and is not a member of this store; ask a store "
            f"admin to invite {email}, accept the invitation emailed to you, then sign in with single "
            "sign-on again"
        )


async def _take_seat(session: AsyncSession, tenant: TenantRecord, email: str) -> None:
    """Count a newcomer's seat as inviting does: a hard limit refuses them (402), a soft one warns.

    Under the members lock, which invitations and reactivations take too, so that people
    joining at once cannot all take the last seat.
    """
    await lock_members(session, tenant.id)
    now = dt.datetime.now(dt.UTC)
    # A pending invitation to this very address holds the seat the newcomer takes: not counted twice.
    invited = await session.scalar(
        select(func.count()).where(
            Invitation.tenant_id == tenant.id,
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
    )
    held = await count_held_seats(session, tenant.id, now=now) - int(invited or 0)
    try:
        await enforce_limit(
            session, tenant.context, await entitlements_in(session, tenant.id), Limit.SEATS, current=held
        )
    except LimitReachedError as full:
        raise LimitReachedError(
            f"store {tenant.slug!r} has no free seat for a new member, so you cannot join it yet; ask a "
            f"store admin to make room ({full.detail}), then sign in with single sign-on again",
            extensions=full.extensions,
        ) from None


async def sign_in_member(
    database: Database,
    signer: TokenSigner,
    tenant: TenantRecord,
    config: TenantSsoConfig,
    identity: oidc.Identity,
    *,
    return_to: str,
    client_address: str | None,
) -> SsoSignIn:
    try:
        async with database.platform_session() as session:
            user_id, created_user = await _find_or_create_user(session, identity)
            if created_user:
                await _take_seat(session, tenant, identity.email)
            else:
                await _require_membership(session, tenant, user_id, identity.email)
            await session.execute(
                pg_insert(Membership)
                .values(id=uuid.uuid4(), tenant_id=tenant.id, user_id=user_id, role=config.default_role)
                .on_conflict_do_nothing(index_elements=[Membership.tenant_id, Membership.user_id])
            )
            membership = (
                await session.execute(
                    select(Membership).where(Membership.tenant_id == tenant.id, Membership.user_id == user_id)
                )
            ).scalar_one()
            if membership.status == "active":
                issued = await start_session(
                    session, signer, user_id=user_id, tenant=tenant, role=membership.role
                )
                await record_audit(
                    session,
                    tenant_id=tenant.id,
                    actor=Actor("user", str(user_id), client_address),
                    action="auth.sso_signed_in",
                    data={"issuer": config.issuer, "created_user": created_user},
                )
                return SsoSignIn(issued, created_user, return_to)
    except (AccountUnverifiedError, AccountNotMemberError, LimitReachedError) as refused:
        await record_failure(database, tenant.id, client_address, config.issuer, refused.code)
        raise
    # A deactivated member stays out: an admin reactivates people, a provider does not.
    await record_failure(database, tenant.id, client_address, config.issuer, "membership_deactivated")
    raise MembershipDeactivatedError(
        "your access to this store was deactivated; ask a store admin to reactivate it"
    )
