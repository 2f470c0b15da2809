"""Vendor staff's per-tenant overrides of a feature or a limit: set, end and list them, audited.

An override wins over the plan for its key until it expires or is ended. Setting a key
that already has one in force ends the old one and starts the new one in the same
transaction; ended rows stay as the key's history, an expired one ended at its expiry.
Each change goes to the tenant's audit chain, in the transaction that makes it, and
bumps the tenant's entitlements revision so every process's cache reloads.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.entitlements import (
    ENTITLEMENT_KEYS,
    Override,
    bump_revision,
    override_of,
)
from ordersmith.platform.errors import FieldError, NotFoundError, ValidationFailedError
from ordersmith.platform.identity.audit import record_audit
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.models import EntitlementOverride
from ordersmith.platform.plans import Feature
from ordersmith.platform.tenancy import TenantRecord, get_tenant_record
from ordersmith.platform.times import time_error

REASON_MAX_LENGTH = 500
# `limit_value` is a 32-bit integer column.
LIMIT_MAXIMUM = 2**31 - 1
_FEATURES = frozenset(feature.value for feature in Feature)


class OverrideNotFoundError(NotFoundError):
    code = "override_not_found"
    title = "No such override"


def _check(
    key: str, value: bool | int | None, reason: str, expires_at: dt.datetime | None, now: dt.datetime
) -> None:
    errors = []
    if key not in ENTITLEMENT_KEYS:
        errors.append(FieldError("key", f"must be one of {', '.join(ENTITLEMENT_KEYS)}"))
    elif key in _FEATURES and not isinstance(value, bool):
        errors.append(FieldError("value", "a feature's override is true (on) or false (off)"))
    elif key not in _FEATURES and (
        isinstance(value, bool) or (value is not None and not 0 <= value <= LIMIT_MAXIMUM)
    ):
        errors.append(
            FieldError(
                "value",
                f"a limit's override is a whole number from 0 to {LIMIT_MAXIMUM:,}, or null for unlimited",
            )
        )
    if not reason:
        errors.append(FieldError("reason", "say why, e.g. the ticket or the deal this is for"))
    elif len(reason) > REASON_MAX_LENGTH:
        errors.append(FieldError("reason", f"must be at most {REASON_MAX_LENGTH} characters"))
    if expires_at is not None and (time_error("expires_at", expires_at) is not None or expires_at <= now):
        errors.append(
            FieldError("expires_at", "must be a future time with its offset, before 9999, or null for no end")
        )
    if errors:
        raise ValidationFailedError("the override is invalid; see errors", errors=errors)


async def set_override(
    database: Database,
    principal: Principal,
    slug: str,
    key: str,
    *,
    value: bool | int | None,
    reason: str,
    expires_at: dt.datetime | None,
) -> Override:
    """Give a tenant `value` for a feature or limit until `expires_at`, replacing any override of it."""
    now = dt.datetime.now(dt.UTC)
    reason = reason.strip()
    _check(key, value, reason, expires_at, now)
    tenant = await get_tenant_record(database, slug)
    is_feature = key in _FEATURES
    row = EntitlementOverride(
        id=uuid.uuid4(),
        tenant_id=tenant.id,
        kind="feature" if is_feature else "limit",
        key=key,
        enabled=value if is_feature else None,
        limit_value=None if is_feature else value,
        reason=reason,
        expires_at=expires_at,
        created_by=principal.id,
        created_at=now,
    )
    async with database.platform_session() as session:
        # First, as it locks the tenant's row: changes to one tenant's overrides queue here.
        await bump_revision(session, tenant.id)
        replaced = await _end_live(session, tenant, key, principal, now)
        session.add(row)
        await session.flush()
        await record_audit(
            session,
            tenant_id=tenant.id,
            actor=principal.actor,
            action="entitlement.override_set",
            target_type="entitlement",
            target_id=key,
            data={
                "value": value,
                "reason": reason,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "replaced": replaced.value if replaced else None,
                "had_override": replaced is not None,
            },
        )
    return override_of(row)


async def _end_live(
    session: AsyncSession, tenant: TenantRecord, key: str, principal: Principal, now: dt.datetime
) -> Override | None:
    """End the key's override in force, if any, and return it."""
    is_open = (
        EntitlementOverride.tenant_id == tenant.id,
        EntitlementOverride.key == key,
        EntitlementOverride.ended_at.is_(None),
    )
    # An expired override no longer counts, but its row is still open: close it at its expiry, by
    # no one, so the one-open-row-per-key index admits the next and its history tells the truth.
    await session.execute(
        update(EntitlementOverride)
        .where(*is_open, EntitlementOverride.expires_at <= now)
        .values(ended_at=EntitlementOverride.expires_at)
    )
    ended = await session.scalar(
        update(EntitlementOverride)
        .where(*is_open)
        .values(ended_at=now, ended_by=principal.id)
        .returning(EntitlementOverride)
    )
    return override_of(ended) if ended is not None else None


async def end_override(database: Database, principal: Principal, slug: str, key: str) -> Override:
    """End a tenant's override of `key` now: the plan's value applies again."""
    if key not in ENTITLEMENT_KEYS:
        raise OverrideNotFoundError(
            f"{key!r} is not a feature or limit; they are {', '.join(ENTITLEMENT_KEYS)}"
        )
    tenant = await get_tenant_record(database, slug)
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        await bump_revision(session, tenant.id)
        ended = await _end_live(session, tenant, key, principal, now)
        if ended is None:
            raise OverrideNotFoundError(
                f"store {slug!r} has no override of {key} in force; list its entitlements to see them"
            )
        await record_audit(
            session,
            tenant_id=tenant.id,
            actor=principal.actor,
            action="entitlement.override_ended",
            target_type="entitlement",
            target_id=key,
            data={"value": ended.value, "reason": ended.reason},
        )
    return ended


async def list_overrides(database: Database, tenant: TenantRecord) -> list[Override]:
    """Every override a tenant was given, in force or ended, newest first."""
    async with database.platform_reader() as session:
        rows = await session.scalars(
            select(EntitlementOverride)
            .where(EntitlementOverride.tenant_id == tenant.id)
            .order_by(EntitlementOverride.created_at.desc(), EntitlementOverride.id)
        )
        return [override_of(row) for row in rows]
