"""Entitlement overrides: vendor staff read a tenant's entitlements and set or end per-tenant overrides.

Support and superadmins change overrides; auditors read them too. Every change is audited
in the tenant's trail (its admins see who gave what, why and until when).
"""

from __future__ import annotations

import datetime as dt

import msgspec
from litestar import delete, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from ordersmith.api.access import staff
from ordersmith.platform.entitlement_overrides import end_override, list_overrides, set_override
from ordersmith.platform.entitlements import Override, access_of, resolve_entitlements
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.plans import Feature, Limit
from ordersmith.platform.tenancy import get_tenant_record

READERS = staff("support", "auditor", "superadmin")
CHANGERS = staff("support", "superadmin")


class OverrideSet(msgspec.Struct, forbid_unknown_fields=True):
    # true/false for a feature; a whole number, or null for unlimited, for a limit.
    value: bool | int | None
    # Why: the ticket, the deal or the incident this is for.
    reason: str
    # When the plan's value applies again; null: until the override is ended.
    expires_at: dt.datetime | None = None


class OverrideRecord(msgspec.Struct):
    id: str
    key: str
    # "feature" or "limit"
    kind: str
    value: bool | int | None
    reason: str
    expires_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    ended_at: dt.datetime | None
    ended_by: str | None
    # In force now: not ended and not expired.
    is_live: bool

    @classmethod
    def of(cls, override: Override, now: dt.datetime) -> OverrideRecord:
        return cls(
            str(override.id),
            override.key,
            override.kind,
            override.value,
            override.reason,
            override.expires_at,
            str(override.created_by),
            override.created_at,
            override.ended_at,
            str(override.ended_by) if override.ended_by else None,
            override.is_live(now),
        )


class TenantEntitlements(msgspec.Struct):
    tenant_slug: str
    plan: str
    # trialing, trial_ended, active, past_due, payment_overdue or canceled.
    state: str
    features: dict[str, bool]
    # None: unlimited.
    limits: dict[str, int | None]
    # Every override the tenant was given, newest first, ended ones included.
    overrides: list[OverrideRecord]


@get(
    "/admin/api/v1/tenants/{slug:str}/entitlements",
    operation_id="getTenantEntitlements",
    summary="A tenant's plan, billing state, entitlements in force and override history.",
    opt=READERS,
    tags=["admin"],
)
async def read_entitlements(state: State, slug: FromPath[str]) -> TenantEntitlements:
    """Features and limits with every live override applied, and all overrides ever given."""
    tenant = await get_tenant_record(state.database, slug)
    now = dt.datetime.now(dt.UTC)
    entitlements = await resolve_entitlements(state.database, tenant.id, now=now)
    history = await list_overrides(state.database, tenant)
    return TenantEntitlements(
        tenant_slug=tenant.slug,
        plan=entitlements.plan.code,
        state=access_of(entitlements.billing, now).state,
        features={feature.value: entitlements.has(feature) for feature in Feature},
        limits={limit.value: entitlements.limit(limit) for limit in Limit},
        overrides=[OverrideRecord.of(item, now) for item in history],
    )


@put(
    "/admin/api/v1/tenants/{slug:str}/entitlements/{key:str}",
    operation_id="setEntitlementOverride",
    summary="Override one feature or limit of a tenant, with a reason and an optional expiry.",
    opt=CHANGERS,
    tags=["admin"],
    status_code=HTTP_200_OK,
)
async def put_override(
    state: State,
    principal: NamedDependency[Principal],
    slug: FromPath[str],
    key: FromPath[str],
    data: JSONBody[OverrideSet],
) -> OverrideRecord:
    """Replaces the key's override in force, if any; it wins over the plan until it expires."""
    override = await set_override(
        state.database, principal, slug, key, value=data.value, reason=data.reason, expires_at=data.expires_at
    )
    return OverrideRecord.of(override, dt.datetime.now(dt.UTC))


@delete(
    "/admin/api/v1/tenants/{slug:str}/entitlements/{key:str}",
    operation_id="endEntitlementOverride",
    summary="End a tenant's override of one feature or limit now; the plan's value applies again.",
    opt=CHANGERS,
    tags=["admin"],
    status_code=HTTP_200_OK,
)
async def remove_override(
    state: State, principal: NamedDependency[Principal], slug: FromPath[str], key: FromPath[str]
) -> OverrideRecord:
    """404 `override_not_found` when no override of the key is in force."""
    override = await end_override(state.database, principal, slug, key)
    return OverrideRecord.of(override, dt.datetime.now(dt.UTC))


ROUTES = [read_entitlements, put_override, remove_override]
