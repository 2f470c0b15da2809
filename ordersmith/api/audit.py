"""A store's audit trail and the vendor's support access to it, as the store's admins see them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromQuery
from litestar.response import Stream

from ordersmith.api.access import requires
from ordersmith.api.entitlements import requires_feature
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.identity.audit_trail import (
    DEFAULT_PAGE_SIZE,
    AuditRecord,
    export_audit_entries,
    list_audit_entries,
)
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.identity.support_grants import SupportGrantView, list_support_grants
from ordersmith.platform.plans import Feature
from ordersmith.platform.times import time_errors


class AuditEntry(msgspec.Struct):
    id: str
    action: str
    # "user", "api_key", "staff", "system" or "anonymous"
    actor_type: str
    actor_id: str | None
    target_type: str | None
    target_id: str | None
    data: dict[str, Any]
    client_address: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, entry: AuditRecord) -> AuditEntry:
        return cls(
            str(entry.id),
            entry.action,
            entry.actor_type,
            entry.actor_id,
            entry.target_type,
            entry.target_id,
            entry.data,
            entry.client_address,
            entry.created_at,
        )


class AuditEntryList(msgspec.Struct):
    data: list[AuditEntry]
    next_cursor: str | None


class ExportedAuditEntry(msgspec.Struct):
    """One line of an audit export, for the OpenAPI description; `exported()` writes the lines."""

    id: int
    # The tenant's id: each store's entries form a hash chain of their own.
    chain: str
    tenant_id: str | None
    # "user", "api_key", "staff", "system" or "anonymous"
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    data: dict[str, Any]
    client_address: str | None
    # UTC, with microseconds: the form the hash covers.
    created_at: dt.datetime
    # The hash of the entry before it in the chain, 64 zeros for the first.
    prev_hash: str
    # SHA-256 of the JSON of every other field but `id`: keys sorted, no spaces, and characters
    # beyond ASCII written as \u escapes (the line itself carries them as UTF-8).
    hash: str


class SupportGrant(msgspec.Struct):
    id: str
    staff_email: str
    reason: str
    # "read_only" or "read_write"
    access: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    # Neither expired nor revoked: the staff member can reach the store's data now.
    is_active: bool

    @classmethod
    def of(cls, grant: SupportGrantView) -> SupportGrant:
        return cls(
            str(grant.id),
            grant.staff_email,
            grant.reason,
            grant.access,
            grant.created_at,
            grant.expires_at,
            grant.revoked_at,
            grant.is_active,
        )


class SupportGrantList(msgspec.Struct):
    data: list[SupportGrant]
    next_cursor: str | None


@get(
    "/api/v1/audit-log",
    operation_id="listAuditLog",
    summary="List the store's audit trail, newest first.",
    opt=requires(Permission.AUDIT_READ),
    tags=["audit"],
)
async def list_audit_log(
    state: State,
    principal: NamedDependency[Principal],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None,
) -> AuditEntryList:
    """Who did what in this store, including vendor staff; filter with ?action=, follow next_cursor."""
    assert principal.tenant is not None
    page = await list_audit_entries(
        state.database, principal.tenant.id, action=action, limit=limit, cursor=cursor
    )
    return AuditEntryList([AuditEntry.of(entry) for entry in page.entries], page.next_cursor)


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    # A time without a zone is read as UTC, the zone every entry is written in.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)


@get(
    "/api/v1/audit-log/export",
    operation_id="exportAuditLog",
    summary="Download the store's audit trail, oldest first, one JSON entry a line, with its hash chain.",
    opt=requires(Permission.AUDIT_READ),
    guards=[requires_feature(Feature.AUDIT_LOG_EXPORT)],
    tags=["audit"],
    # A stream's body is opaque to Litestar: say what its lines are.
    responses={
        200: ResponseSpec(
            ExportedAuditEntry,
            description="NDJSON: one entry a line, each a JSON object of this schema, oldest first.",
            media_type="application/x-ndjson",
            generate_examples=False,
        )
    },
)
async def export_audit_log(
    state: State,
    principal: NamedDependency[Principal],
    since: FromQuery[dt.datetime | None] = None,
    until: FromQuery[dt.datetime | None] = None,
) -> Stream:
    """NDJSON, from `since` (inclusive) to `until` (exclusive); each entry checkable offline (see `hash`)."""
    assert principal.tenant is not None
    since, until = _utc(since), _utc(until)
    if errors := time_errors(since=since, until=until):
        raise ValidationFailedError("the time window is invalid; see errors", errors=errors)
    if since is not None and until is not None and since >= until:
        raise ValidationFailedError(
            "the time window is empty; see errors",
            errors=[FieldError("until", "must be later than since")],
        )
    filename = f"audit-log-{principal.tenant.slug}-{dt.datetime.now(dt.UTC):%Y%m%d}.ndjson"
    return Stream(
        export_audit_entries(state.database, principal.tenant.id, since=since, until=until),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@get(
    "/api/v1/support-grants",
    operation_id="listSupportGrants",
    summary="List the vendor staff's support access to this store, newest first.",
    opt=requires(Permission.AUDIT_READ),
    tags=["audit"],
)
async def list_store_support_grants(
    state: State,
    principal: NamedDependency[Principal],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> SupportGrantList:
    """Which staff member asked for access, why, for how long, and whether it is still open."""
    assert principal.tenant is not None
    page = await list_support_grants(
        state.database, tenant_id=principal.tenant.id, limit=limit, cursor=cursor
    )
    return SupportGrantList([SupportGrant.of(grant) for grant in page.grants], page.next_cursor)


ROUTES = [list_audit_log, export_audit_log, list_store_support_grants]
