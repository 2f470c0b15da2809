"""Support grants: time-boxed access of one staff member to one tenant's data, for a reason.

A staff member reaches a tenant's data only through an active (not expired, not revoked)
grant of their own. Grants start read-only; a superadmin other than the holder may make
one read_write. Creating, elevating and revoking a grant, and every access under it (or
refused for want of one), are written to that tenant's own audit chain, where the
tenant's admins read them.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    PermissionDeniedError,
    ValidationFailedError,
)
from ordersmith.platform.identity.audit import record_audit
from ordersmith.platform.identity.models import StaffAccount, SupportGrant
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.identity.staff import StaffRole, require_staff_role
from ordersmith.platform.models import Tenant
from ordersmith.platform.pagination import check_limit, decode_time_cursor, encode_time_cursor
from ordersmith.platform.tenancy import TenantRecord, get_tenant_record, require_active

MINIMUM_GRANT_MINUTES = 1
MAXIMUM_GRANT_MINUTES = 480
DEFAULT_GRANT_MINUTES = 60
MAXIMUM_REASON_LENGTH = 2000
DEFAULT_PAGE_SIZE = 50
MAXIMUM_PAGE_SIZE = 200


class GrantAccess(enum.StrEnum):
    # May read the tenant's data; every grant starts here.
    READ_ONLY = "read_only"
    # May also change it; only a superadmin other than the holder can elevate a grant.
    READ_WRITE = "read_write"


class SupportGrantRequiredError(PermissionDeniedError):
    code = "support_grant_required"
    title = "Support grant required"


class SupportGrantReadOnlyError(PermissionDeniedError):
    code = "support_grant_read_only"
    title = "Support grant is read-only"


class SupportGrantNotFoundError(NotFoundError):
    code = "support_grant_not_found"
    title = "Support grant not found"


class SupportGrantInactiveError(ConflictError):
    code = "support_grant_inactive"
    title = "Support grant no longer active"


class SelfElevationError(PermissionDeniedError):
    code = "support_grant_self_elevation"
    title = "Cannot elevate your own grant"


@dataclass(frozen=True)
class SupportGrantView:
    """A support grant as staff and tenant admins see it."""

    id: uuid.UUID
    staff_id: uuid.UUID
    staff_email: str
    tenant_id: uuid.UUID
    tenant_slug: str
    reason: str
    access: str
    elevated_by: uuid.UUID | None
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    is_active: bool


@dataclass(frozen=True)
class SupportGrantPage:
    """Newest first; `next_cursor` fetches the older ones, None at the end."""

    grants: list[SupportGrantView]
    next_cursor: str | None


def _grant_query() -> Select[SupportGrant, str, str]:
    return (
        select(SupportGrant, StaffAccount.email, Tenant.slug)
        .join(StaffAccount, StaffAccount.id == SupportGrant.staff_id)
        .join(Tenant, Tenant.id == SupportGrant.tenant_id)
    )


def _is_active(grant: SupportGrant, now: dt.datetime) -> bool:
    return grant.revoked_at is None and grant.expires_at > now


def _view(row: Any, now: dt.datetime) -> SupportGrantView:
    grant, staff_email, tenant_slug = row
    return SupportGrantView(
        grant.id,
        grant.staff_id,
        staff_email,
        grant.tenant_id,
        tenant_slug,
        grant.reason,
        grant.access,
        grant.elevated_by,
        grant.created_at,
        grant.expires_at,
        grant.revoked_at,
        _is_active(grant, now),
    )


async def request_support_grant(
    database: Database, staff: Principal, tenant_slug: str, *, reason: str | None, minutes: int | None
) -> SupportGrantView:
    """Open read-only support access to one tenant for a stated reason and a bounded time."""
    require_staff_role(staff, StaffRole.SUPPORT, StaffRole.SUPERADMIN)
    errors = []
    reason = (reason or "").strip()
    if not reason:
        errors.append(FieldError("reason", "say why you need access, e.g. the ticket you are working on"))
    elif len(reason) > MAXIMUM_REASON_LENGTH:
        errors.append(FieldError("reason", f"must be at most {MAXIMUM_REASON_LENGTH} characters"))
    minutes = DEFAULT_GRANT_MINUTES if minutes is None else minutes
    if not MINIMUM_GRANT_MINUTES <= minutes <= MAXIMUM_GRANT_MINUTES:
        errors.append(
            FieldError(
                "minutes", f"must be from {MINIMUM_GRANT_MINUTES} to {MAXIMUM_GRANT_MINUTES} (8 hours)"
            )
        )
    if errors:
        raise ValidationFailedError("the support grant request is invalid; see errors", errors=errors)
    tenant = require_active(await get_tenant_record(database, tenant_slug))
    now = dt.datetime.now(dt.UTC)
    grant_id = uuid.uuid4()
    async with database.platform_session() as session:
        await session.execute(
            insert(SupportGrant).values(
                id=grant_id,
                staff_id=staff.id,
                tenant_id=tenant.id,
                reason=reason,
                access=GrantAccess.READ_ONLY.value,
                created_at=now,
                expires_at=now + dt.timedelta(minutes=minutes),
            )
        )
        await _audit_grant(
            session, staff, tenant.id, grant_id, "support.grant_created", reason=reason, minutes=minutes
        )
        return await _load_grant(session, grant_id, now)


async def _audit_grant(
    session: AsyncSession,
    staff: Principal,
    tenant_id: uuid.UUID,
    grant_id: uuid.UUID,
    action: str,
    **data: Any,
) -> None:
    await record_audit(
        session,
        tenant_id=tenant_id,
        actor=staff.actor,
        action=action,
        target_type="support_grant",
        target_id=str(grant_id),
        data={"grant_id": str(grant_id), **data},
    )


async def _load_grant(session: AsyncSession, grant_id: uuid.UUID, now: dt.datetime) -> SupportGrantView:
    row = (await session.execute(_grant_query().where(SupportGrant.id == grant_id))).one()
    return _view(row, now)


async def _lock_grant(session: AsyncSession, grant_id: str) -> SupportGrant:
    try:
        parsed = uuid.UUID(grant_id)
    except ValueError:
        parsed = None
    grant = await session.get(SupportGrant, parsed, with_for_update=True) if parsed else None
    if grant is None:
        raise SupportGrantNotFoundError(
            f"no support grant has the id {grant_id!r}; list the grants to find it"
        )
    return grant


async def elevate_support_grant(database: Database, staff: Principal, grant_id: str) -> SupportGrantView:
    """Let another staff member's active grant change data too (superadmins only)."""
    require_staff_role(staff, StaffRole.SUPERADMIN)
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        grant = await _lock_grant(session, grant_id)
        if grant.staff_id == staff.id:
            raise SelfElevationError("a grant cannot be elevated by its own holder; ask another superadmin")
        if not _is_active(grant, now):
            raise SupportGrantInactiveError(
                f"support grant {grant_id} has expired or was revoked; its holder must request a new one"
            )
        if grant.access != GrantAccess.READ_WRITE:
            await session.execute(
                update(SupportGrant)
                .where(SupportGrant.id == grant.id)
                .values(access=GrantAccess.READ_WRITE.value, elevated_by=staff.id)
            )
            await _audit_grant(
                session,
                staff,
                grant.tenant_id,
                grant.id,
                "support.grant_elevated",
                staff_id=str(grant.staff_id),
            )
        return await _load_grant(session, grant.id, now)


async def revoke_support_grant(database: Database, staff: Principal, grant_id: str) -> SupportGrantView:
    """End a grant now; its holder or a superadmin may. Revoking twice changes nothing."""
    require_staff_role(staff, StaffRole.SUPPORT, StaffRole.SUPERADMIN)
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        grant = await _lock_grant(session, grant_id)
        if grant.staff_id != staff.id and staff.role != StaffRole.SUPERADMIN:
            raise PermissionDeniedError("only the grant's holder or a superadmin may revoke it")
        if grant.revoked_at is None:
            await session.execute(
                update(SupportGrant).where(SupportGrant.id == grant.id).values(revoked_at=now)
            )
            await _audit_grant(session, staff, grant.tenant_id, grant.id, "support.grant_revoked")
        return await _load_grant(session, grant.id, now)


async def list_support_grants(
    database: Database,
    *,
    tenant_id: uuid.UUID | None = None,
    tenant_slug: str | None = None,
    is_active: bool | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> SupportGrantPage:
    """Support grants, newest first: of one tenant, or of all; optionally only active (or inactive) ones."""
    check_limit(limit, MAXIMUM_PAGE_SIZE)
    now = dt.datetime.now(dt.UTC)
    query = _grant_query()
    if tenant_id is not None:
        query = query.where(SupportGrant.tenant_id == tenant_id)
    if tenant_slug is not None:
        query = query.where(Tenant.slug == tenant_slug)
    if is_active is not None:
        active = SupportGrant.revoked_at.is_(None) & (SupportGrant.expires_at > now)
        query = query.where(active if is_active else ~active)
    if cursor:
        query = query.where(
            tuple_(SupportGrant.created_at, SupportGrant.id) < tuple_(*decode_time_cursor(cursor))
        )
    query = query.order_by(SupportGrant.created_at.desc(), SupportGrant.id.desc()).limit(limit + 1)
    async with database.platform_session() as session:
        rows = (await session.execute(query)).all()
    grants = [_view(row, now) for row in rows[:limit]]
    return SupportGrantPage(
        grants, encode_time_cursor(grants[-1].created_at, grants[-1].id) if len(rows) > limit else None
    )


# ---- reaching a tenant's data ------------------------------------------------------------


@dataclass(frozen=True)
class SupportAccess:
    """Permission to reach one tenant's data now, under one grant (already written to the audit log)."""

    tenant: TenantRecord
    grant_id: uuid.UUID
    access: str


def _choose_grant(
    grants: list[SupportGrant], tenant: TenantRecord, needs_write: bool, now: dt.datetime
) -> tuple[SupportGrant | None, SupportGrantRequiredError | SupportGrantReadOnlyError | None]:
    """The grant to act under, or why there is none."""
    active = [grant for grant in grants if _is_active(grant, now)]
    writable = [grant for grant in active if grant.access == GrantAccess.READ_WRITE]
    if writable or (active and not needs_write):
        return (writable or active)[0], None
    if active:
        return None, SupportGrantReadOnlyError(
            f"your support grant {active[0].id} for store {tenant.slug!r} is read-only; "
            "ask a superadmin other than the holder to elevate it to read_write"
        )
    ended = (
        f"your last support grant for store {tenant.slug!r} has expired or was revoked"
        if grants
        else f"you have no support grant for store {tenant.slug!r}"
    )
    return None, SupportGrantRequiredError(f"{ended}; request one with a reason, then try again")


async def open_support_access(
    database: Database, staff: Principal, tenant_slug: str, *, needs_write: bool, method: str, path: str
) -> SupportAccess:
    """Check the staff member's own active grant on a tenant and write the access to the tenant's trail.

    The entry is committed before the data is touched: an access that happened is always
    on record, even if what follows fails. Refusals are recorded too, so a tenant sees
    who tried.
    """
    require_staff_role(staff, StaffRole.SUPPORT, StaffRole.SUPERADMIN)
    tenant = require_active(await get_tenant_record(database, tenant_slug))
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        grants = list(
            (
                await session.execute(
                    select(SupportGrant)
                    .where(SupportGrant.staff_id == staff.id, SupportGrant.tenant_id == tenant.id)
                    .order_by(SupportGrant.created_at.desc())
                )
            ).scalars()
        )
        grant, denial = _choose_grant(grants, tenant, needs_write, now)
        if grant is None:
            assert denial is not None
            await record_audit(
                session,
                tenant_id=tenant.id,
                actor=staff.actor,
                action="support.access_denied",
                data={"method": method, "path": path, "reason": denial.code},
            )
        else:
            await _audit_grant(
                session, staff, tenant.id, grant.id, "support.accessed", method=method, path=path
            )
    # Raised after the block so that the refusal's audit entry commits.
    if denial is not None:
        raise denial
    assert grant is not None
    return SupportAccess(tenant, grant.id, grant.access)
