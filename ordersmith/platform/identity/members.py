"""A store's members: who they are, their roles and status, and what their access leaves behind.

API keys and invitations outlive the session of the person who made them, so a change
of status or role reaches them too, in the same transaction: deactivating a member
revokes the keys they created and the invitations they sent; demoting one narrows
their keys to the new role's permissions (revoking those left with none) and revokes
the invitations they could no longer send.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.entitlement_usage import count_held_seats
from ordersmith.platform.entitlements import enforce_limit, entitlements_in
from ordersmith.platform.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    PermissionDeniedError,
    ValidationFailedError,
)
from ordersmith.platform.identity.audit import Actor, record_audit
from ordersmith.platform.identity.models import ApiKey, Invitation, Membership, RefreshToken, User
from ordersmith.platform.identity.permissions import Permission, Role, permissions_of
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.platform.plans import Limit
from ordersmith.platform.tenancy import TenantRecord

ACTIVE = "active"
DEACTIVATED = "deactivated"
_ROLES = ", ".join(Role)


class LastOwnerError(ConflictError):
    code = "last_owner"
    title = "Last owner"


def tenant_of(principal: Principal) -> TenantRecord:
    """The store a principal acts in; staff without a support session have none."""
    if principal.tenant is None:
        raise PermissionDeniedError("this works on a store's people; use a store user's token or API key")
    return principal.tenant


def not_found(what: str, value: str) -> NotFoundError:
    """The 404 for an id this store does not have (another store's ids included)."""
    return NotFoundError(f"no {what} has the id {value!r} in this store; list them to find it")


def parse_id(value: str, what: str) -> uuid.UUID:
    """An id from a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found(what, value) from None


# ---- members ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberView:
    """A person's place in a store."""

    user_id: uuid.UUID
    email: str
    full_name: str
    role: str
    status: str
    email_verified: bool
    created_at: dt.datetime


def _member_view(membership: Membership, user: User) -> MemberView:
    return MemberView(
        user.id,
        user.email,
        user.full_name,
        membership.role,
        membership.status,
        user.email_verified_at is not None,
        membership.created_at,
    )


async def list_members(database: Database, tenant: TenantRecord, page: PageRequest) -> Page[MemberView]:
    """The store's members, oldest first."""
    query = select(Membership, User).join(User, User.id == Membership.user_id)
    query = page.apply(
        query.where(Membership.tenant_id == tenant.id),
        Membership.created_at,
        Membership.user_id,
        newest_first=False,
    )
    async with database.platform_session() as session:
        rows = [_member_view(membership, user) for membership, user in (await session.execute(query)).all()]
    return page.cut(rows, lambda member: (member.created_at, member.user_id))


async def get_member(database: Database, tenant: TenantRecord, user_id: str) -> MemberView:
    """One member of the store."""
    target = parse_id(user_id, "member")
    async with database.platform_session() as session:
        row = (
            await session.execute(
                select(Membership, User)
                .join(User, User.id == Membership.user_id)
                .where(Membership.tenant_id == tenant.id, Membership.user_id == target)
            )
        ).one_or_none()
    if row is None:
        raise not_found("member", user_id)
    return _member_view(*row)


async def lock_members(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Serialise changes to one store's members until the transaction ends."""
    # Changes to one store's members run one at a time, so two owners demoting each
    # other at once cannot both pass the last-owner check.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"ordersmith.members:{tenant_id}"}
    )


def _is_active_owner(role: str, status: str) -> bool:
    return role == Role.OWNER and status == ACTIVE


async def change_member(
    database: Database, principal: Principal, user_id: str, *, role: str | None, status: str | None
) -> MemberView:
    """Change a member's role and/or status; a store always keeps one active owner."""
    tenant = tenant_of(principal)
    errors = []
    if role is None and status is None:
        errors.append(FieldError("role", "send a new role, a new status, or both"))
    if role is not None and role not in set(Role):
        errors.append(FieldError("role", f"must be one of {_ROLES}"))
    if status is not None and status not in (ACTIVE, DEACTIVATED):
        errors.append(FieldError("status", f"must be {ACTIVE} or {DEACTIVATED}"))
    if errors:
        raise ValidationFailedError("the change is invalid; see errors", errors=errors)
    target = parse_id(user_id, "member")
    async with database.platform_session() as session:
        await lock_members(session, tenant.id)
        row = (
            await session.execute(
                select(Membership, User)
                .join(User, User.id == Membership.user_id)
                .where(Membership.tenant_id == tenant.id, Membership.user_id == target)
            )
        ).one_or_none()
        if row is None:
            raise not_found("member", user_id)
        membership, user = row
        old_role, old_status = membership.role, membership.status
        new_role, new_status = role or old_role, status or old_status
        if (new_role, new_status) == (old_role, old_status):
            return _member_view(membership, user)
        if _is_active_owner(old_role, old_status) and not _is_active_owner(new_role, new_status):
            owners = await session.scalar(
                select(func.count()).where(
                    Membership.tenant_id == tenant.id,
                    Membership.role == Role.OWNER,
                    Membership.status == ACTIVE,
                )
            )
            if owners == 1:
                raise LastOwnerError("this is the store's last active owner; make someone else owner first")
        # A key answers to the person who created it: through it, it is still their own.
        if principal.person_id == target:
            raise PermissionDeniedError(
                "you cannot change your own role or status; ask another owner or admin"
            )
        if Role.OWNER in (old_role, new_role) and principal.role != Role.OWNER:
            raise PermissionDeniedError(
                "only an owner can grant or remove the owner role, or change an owner's status; ask an owner"
            )
        if new_status == ACTIVE and old_status != ACTIVE:
            # A reactivated member takes a seat again, counted as inviting counts seats: a
            # pending invitation's seat is its invitee's, not free to take.
            await enforce_limit(
                session,
                tenant.context,
                await entitlements_in(session, tenant.id),
                Limit.SEATS,
                current=await count_held_seats(session, tenant.id, now=dt.datetime.now(dt.UTC)),
            )
        membership.role, membership.status = new_role, new_status

        async def audit(action: str, data: dict[str, Any] | None = None) -> None:
            await record_audit(
                session,
                tenant_id=tenant.id,
                actor=principal.actor,
                action=action,
                target_type="user",
                target_id=str(target),
                data=data,
            )

        if new_role != old_role:
            await audit("member.role_changed", {"old": old_role, "new": new_role})
        if new_status == DEACTIVATED and old_status != DEACTIVATED:
            # Access tokens die on their next use (the guard reads the membership); refresh
            # tokens must not mint new ones.
            await session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.tenant_id == tenant.id,
                    RefreshToken.user_id == target,
                    RefreshToken.revoked_at.is_(None),
                )
                .values(revoked_at=dt.datetime.now(dt.UTC))
            )
            await audit("member.deactivated")
            await _revoke_left_behind(session, tenant.id, target, principal.actor)
        elif new_status == ACTIVE and old_status != ACTIVE:
            await audit("member.reactivated")
        if new_status == ACTIVE and new_role != old_role:
            await _narrow_left_behind(session, tenant.id, target, new_role, principal.actor)
    return _member_view(membership, user)


# ---- what a member's access leaves behind --------------------------------------------------

# Why a key or an invitation was revoked or narrowed: the `reason` of its audit entry.
CREATOR_DEACTIVATED = "creator_deactivated"
INVITER_DEACTIVATED = "inviter_deactivated"
CREATOR_ROLE_CHANGED = "creator_role_changed"
INVITER_ROLE_CHANGED = "inviter_role_changed"


async def _live_keys(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[ApiKey]:
    query = (
        select(ApiKey)
        .where(ApiKey.tenant_id == tenant_id, ApiKey.created_by == user_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at, ApiKey.id)
        .with_for_update()
    )
    return list((await session.scalars(query)).all())


async def _pending_invitations(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, now: dt.datetime
) -> list[Invitation]:
    query = (
        select(Invitation)
        .where(
            Invitation.tenant_id == tenant_id,
            Invitation.invited_by == user_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
        .order_by(Invitation.created_at, Invitation.id)
        .with_for_update()
    )
    return list((await session.scalars(query)).all())


async def _revoke_key(
    session: AsyncSession, key: ApiKey, actor: Actor, reason: str, now: dt.datetime
) -> None:
    key.revoked_at = now
    await record_audit(
        session,
        tenant_id=key.tenant_id,
        actor=actor,
        action="api_key.revoked",
        target_type="api_key",
        target_id=str(key.id),
        data={"name": key.name, "prefix": key.prefix, "reason": reason},
    )


async def _revoke_invitation(
    session: AsyncSession, invitation: Invitation, actor: Actor, reason: str, now: dt.datetime
) -> None:
    invitation.revoked_at = now
    await record_audit(
        session,
        tenant_id=invitation.tenant_id,
        actor=actor,
        action="invitation.revoked",
        target_type="invitation",
        target_id=str(invitation.id),
        data={"email": invitation.email, "role": invitation.role, "reason": reason},
    )


async def _revoke_left_behind(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, actor: Actor
) -> None:
    """Revoke the API keys a deactivated member created and the invitations they sent.

    Reactivating them brings neither back: whoever needs one makes it anew.
    """
    now = dt.datetime.now(dt.UTC)
    for key in await _live_keys(session, tenant_id, user_id):
        await _revoke_key(session, key, actor, CREATOR_DEACTIVATED, now)
    for invitation in await _pending_invitations(session, tenant_id, user_id, now):
        await _revoke_invitation(session, invitation, actor, INVITER_DEACTIVATED, now)


def _could_invite(role: str, invited_role: str) -> bool:
    # The same rules as sending an invitation: users.manage, and only owners invite owners.
    return Permission.USERS_MANAGE in permissions_of(role) and (
        invited_role != Role.OWNER or role == Role.OWNER
    )


async def _narrow_left_behind(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str, actor: Actor
) -> None:
    """Keep a member's keys within their new role and withdraw invitations they could no longer send.

    A key keeps the scopes the new role still grants, so an integration that needs no
    more goes on working; one left with no scope at all is revoked.
    """
    now = dt.datetime.now(dt.UTC)
    allowed = permissions_of(role)
    for key in await _live_keys(session, tenant_id, user_id):
        kept = [scope for scope in key.scopes if scope in allowed]
        if kept == list(key.scopes):
            continue
        if not kept:
            await _revoke_key(session, key, actor, CREATOR_ROLE_CHANGED, now)
            continue
        old_scopes, key.scopes = list(key.scopes), kept
        await record_audit(
            session,
            tenant_id=tenant_id,
            actor=actor,
            action="api_key.scopes_reduced",
            target_type="api_key",
            target_id=str(key.id),
            data={
                "name": key.name,
                "prefix": key.prefix,
                "old": old_scopes,
                "new": kept,
                "reason": CREATOR_ROLE_CHANGED,
            },
        )
    for invitation in await _pending_invitations(session, tenant_id, user_id, now):
        if not _could_invite(role, invitation.role):
            await _revoke_invitation(session, invitation, actor, INVITER_ROLE_CHANGED, now)
