"""What a store may do right now: its plan's entitlements with staff overrides applied, and its billing state.

Entitlements are the plan's (`plans.py`) with each live override winning over the plan's
value for its feature or limit; an override past its `expires_at` is simply no longer
applied, so expiry needs no job. The overrides a process has read are cached per tenant
under the tenant's `entitlements_revision`, which every plan or override change bumps:
each resolution reads the tenant's row (plan, trial end, billing state, revision) and
reuses the cached overrides only while the revision matches.

A store is read-only (every write answers 402) when its trial ended without a paid plan,
when a payment stayed overdue past the grace period, or when its subscription ended; its
data stays and reads keep working. Limits are checked by the services that add what a
limit counts (`check_limit`); a soft limit lets the change through, warns the caller and
tells the store's admins (`enforce_limit`).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.errors import ConflictError, OrdersmithError, ValidationFailedError
from ordersmith.platform.events import record_event
from ordersmith.platform.models import BillingStatus, EntitlementOverride, Tenant
from ordersmith.platform.plans import PAID_PLANS_BY_PRICE, PLANS, Feature, Limit, Plan, cheapest_plan_with
from ordersmith.platform.tenancy import TenantRecord

# How long a store whose payment failed keeps working normally before it turns read-only.
PAST_DUE_GRACE = dt.timedelta(days=7)
SOFT_LIMIT_EXCEEDED = "entitlements.soft_limit_exceeded"
CHANGE_PLAN = "POST /api/v1/billing/plan"
BILLING_PORTAL = "POST /api/v1/billing/portal-sessions"
_CACHE_SIZE = 10_000


# ---- errors -----------------------------------------------------------------------------------


class PaymentRequiredError(OrdersmithError):
    status = 402
    code = "payment_required"
    title = "Payment required"


class FeatureNotInPlanError(PaymentRequiredError):
    code = "feature_not_in_plan"
    title = "Feature not in plan"


class LimitReachedError(PaymentRequiredError):
    code = "limit_reached"
    title = "Plan limit reached"


class TrialEndedError(PaymentRequiredError):
    code = "trial_ended"
    title = "Trial ended"


class PaymentOverdueError(PaymentRequiredError):
    code = "payment_overdue"
    title = "Payment overdue"


class SubscriptionCanceledError(PaymentRequiredError):
    code = "subscription_canceled"
    title = "Subscription canceled"


class DowngradeBlockedError(ConflictError):
    code = "downgrade_blocked"
    title = "Downgrade blocked"


class UnknownPlanError(ValidationFailedError):
    code = "unknown_plan"
    title = "Unknown plan"


# ---- entitlements: the plan merged with the overrides --------------------------------------------


@dataclass(frozen=True)
class Override:
    """One staff override: the feature or limit it sets, to what, why and until when."""

    id: uuid.UUID
    key: str
    # True/False for a feature; a number, or None for unlimited, for a limit.
    value: bool | int | None
    reason: str
    expires_at: dt.datetime | None
    created_by: uuid.UUID
    created_at: dt.datetime
    ended_at: dt.datetime | None = None
    ended_by: uuid.UUID | None = None

    @property
    def kind(self) -> str:
        return "feature" if self.key in _FEATURES else "limit"

    def is_live(self, now: dt.datetime) -> bool:
        """Whether it applies at `now`: not ended, not expired."""
        return self.ended_at is None and (self.expires_at is None or now < self.expires_at)


_FEATURES = frozenset(feature.value for feature in Feature)
_LIMITS = frozenset(limit.value for limit in Limit)
ENTITLEMENT_KEYS = sorted(_FEATURES | _LIMITS)


@dataclass(frozen=True)
class TenantBilling:
    """A tenant's plan and billing state as `platform.tenants` holds them."""

    tenant_id: uuid.UUID
    plan: str
    trial_ends_at: dt.datetime | None
    billing_status: str
    past_due_since: dt.datetime | None
    revision: int


@dataclass(frozen=True)
class Entitlements:
    """What a store may use now: features, limits (None: unlimited), and the overrides applied."""

    billing: TenantBilling
    plan: Plan
    features: frozenset[Feature]
    limits: Mapping[Limit, int | None]
    soft_limits: frozenset[Limit]
    overrides: tuple[Override, ...]

    def has(self, feature: Feature) -> bool:
        return feature in self.features

    def limit(self, limit: Limit) -> int | None:
        return self.limits.get(limit)


def plan_of(code: str) -> Plan:
    """The plan a tenant row names; an unknown code (a plan since retired) counts as the trial's."""
    return PLANS.get(code) or PLANS["trial"]


def merge_entitlements(
    billing: TenantBilling, overrides: tuple[Override, ...], now: dt.datetime
) -> Entitlements:
    """The plan's entitlements with each live override winning over the plan's value."""
    plan = plan_of(billing.plan)
    features = set(plan.features)
    limits: dict[Limit, int | None] = dict(plan.limits)
    applied = []
    for override in overrides:
        if not override.is_live(now):
            continue
        applied.append(override)
        if override.key in _FEATURES:
            feature = Feature(override.key)
            if override.value:
                features.add(feature)
            else:
                features.discard(feature)
        else:
            limits[Limit(override.key)] = override.value
    return Entitlements(
        billing=billing,
        plan=plan,
        features=frozenset(features),
        limits=limits,
        soft_limits=plan.soft_limits,
        overrides=tuple(applied),
    )


# ---- billing state: writable or read-only ------------------------------------------------------


class AccessState:
    # On the trial, before its end.
    TRIALING = "trialing"
    # The trial ended and no paid plan was chosen: read-only.
    TRIAL_ENDED = "trial_ended"
    # A paid plan, paid up.
    ACTIVE = "active"
    # A payment failed; writes still work until the grace period ends.
    PAST_DUE = "past_due"
    # Past the grace period, or payment retries ran out: read-only.
    PAYMENT_OVERDUE = "payment_overdue"
    # The subscription ended: read-only.
    CANCELED = "canceled"


@dataclass(frozen=True)
class Access:
    """Whether a store may change anything now, and why not."""

    state: str
    is_writable: bool
    # When a past-due store turns (or turned) read-only.
    grace_ends_at: dt.datetime | None = None


def access_of(billing: TenantBilling, now: dt.datetime) -> Access:
    """The store's access state at `now`, from its plan, trial end and billing status."""
    if billing.billing_status == BillingStatus.CANCELED:
        return Access(AccessState.CANCELED, is_writable=False)
    if billing.billing_status == BillingStatus.UNPAID:
        return Access(AccessState.PAYMENT_OVERDUE, is_writable=False)
    if billing.billing_status == BillingStatus.PAST_DUE:
        grace_ends_at = (billing.past_due_since or now) + PAST_DUE_GRACE
        if now < grace_ends_at:
            return Access(AccessState.PAST_DUE, is_writable=True, grace_ends_at=grace_ends_at)
        return Access(AccessState.PAYMENT_OVERDUE, is_writable=False, grace_ends_at=grace_ends_at)
    if not plan_of(billing.plan).is_paid:
        if billing.trial_ends_at is not None and now >= billing.trial_ends_at:
            return Access(AccessState.TRIAL_ENDED, is_writable=False)
        return Access(AccessState.TRIALING, is_writable=True)
    return Access(AccessState.ACTIVE, is_writable=True)


_KEPT = "your data is kept and can still be read and exported"


def require_writable(billing: TenantBilling, now: dt.datetime) -> None:
    """Raise the 402 that says why the store is read-only, if it is."""
    access = access_of(billing, now)
    if access.is_writable:
        return
    plans = list(PAID_PLANS_BY_PRICE)
    if access.state == AccessState.TRIAL_ENDED:
        assert billing.trial_ends_at is not None
        raise TrialEndedError(
            f"the free trial ended on {billing.trial_ends_at:%Y-%m-%d}; the store is read-only until an "
            f"owner chooses a plan ({', '.join(plans)}) at {CHANGE_PLAN}; {_KEPT}",
            extensions={"trial_ended_at": billing.trial_ends_at.isoformat(), "plans": plans},
        )
    if access.state == AccessState.PAYMENT_OVERDUE:
        raise PaymentOverdueError(
            # Only a payment ends it: a plan change leaves the overdue invoice, and the store, as they are.
            f"a payment is overdue and the grace period is over; the store is read-only until an owner "
            f"pays the open invoice in the billing portal ({BILLING_PORTAL}); changing plan does not "
            f"end this; {_KEPT}",
            extensions={"grace_ended_at": access.grace_ends_at.isoformat() if access.grace_ends_at else None},
        )
    raise SubscriptionCanceledError(
        f"the subscription ended; the store is read-only until an owner chooses a plan "
        f"({', '.join(plans)}) at {CHANGE_PLAN}; {_KEPT}",
        extensions={"plans": plans},
    )


# ---- checks ---------------------------------------------------------------------------------------


def check_feature(entitlements: Entitlements, feature: Feature) -> None:
    """`FeatureNotInPlanError` naming the feature and the cheapest plan with it, unless the store has it."""
    if entitlements.has(feature):
        return
    remedy = cheapest_plan_with(feature)
    where = f"it comes with the {remedy.name} plan; change plan at {CHANGE_PLAN}" if remedy else "ask us"
    raise FeatureNotInPlanError(
        f"{feature.value} is not in your {entitlements.plan.name} plan; {where}",
        extensions={
            "feature": feature.value,
            "plan": entitlements.plan.code,
            "cheapest_plan": remedy.code if remedy else None,
        },
    )


def cheapest_plan_allowing(limit: Limit, amount: int) -> Plan | None:
    """The cheapest paid plan whose `limit` allows `amount`."""
    for code in PAID_PLANS_BY_PRICE:
        allowed = PLANS[code].limits.get(limit)
        if allowed is None or amount <= allowed:
            return PLANS[code]
    return None


LIMIT_REMEDIES = {
    Limit.SEATS: "deactivate a member or withdraw a pending invitation",
    Limit.LOCATIONS: "deactivate a location",
    Limit.API_REQUESTS_PER_MINUTE: "send fewer requests a minute",
}


@dataclass(frozen=True)
class LimitWarning:
    """A soft limit gone over: the change went through, admins are told."""

    limit: Limit
    used: int
    allowed: int
    plan: str
    # True when this change is the one that went over (it was within the limit before).
    crossed: bool

    def header_value(self) -> str:
        """This warning as a structured header item (RFC 8941)."""
        return f'{self.limit.value};used={self.used};allowed={self.allowed};plan="{self.plan}"'


def check_limit(
    entitlements: Entitlements, limit: Limit, *, current: int, adding: int = 1
) -> LimitWarning | None:
    """Whether `adding` more fits `limit` given `current` use: None, a warning (soft), or 402 (hard)."""
    allowed = entitlements.limit(limit)
    used = current + adding
    if allowed is None or used <= allowed:
        return None
    plan = entitlements.plan
    if limit in entitlements.soft_limits:
        return LimitWarning(limit, used, allowed, plan.code, crossed=current <= allowed)
    remedy = cheapest_plan_allowing(limit, used)
    upgrade = f", or change to the {remedy.name} plan at {CHANGE_PLAN}" if remedy else ""
    raise LimitReachedError(
        f"your {plan.name} plan allows {allowed} {limit.value} and the store uses {current}; "
        f"{LIMIT_REMEDIES[limit]} first{upgrade}",
        extensions={
            "limit": limit.value,
            "current": current,
            "allowed": allowed,
            "plan": plan.code,
            "cheapest_plan": remedy.code if remedy else None,
        },
    )


_warnings: contextvars.ContextVar[list[LimitWarning] | None] = contextvars.ContextVar(
    "ordersmith_limit_warnings", default=None
)


@contextlib.contextmanager
def collect_limit_warnings() -> Iterator[list[LimitWarning]]:
    """Gather the soft-limit warnings raised inside the block (one request's), for the caller to show."""
    collected: list[LimitWarning] = []
    token = _warnings.set(collected)
    try:
        yield collected
    finally:
        _warnings.reset(token)


def note_limit_warning(warning: LimitWarning) -> None:
    """Add a soft-limit warning to the current request's `Ordersmith-Limit-Warning` header."""
    collected = _warnings.get()
    if collected is not None:
        collected.append(warning)


async def enforce_limit(
    session: AsyncSession | AsyncConnection,
    tenant: TenantContext,
    entitlements: Entitlements,
    limit: Limit,
    *,
    current: int,
    adding: int = 1,
) -> LimitWarning | None:
    """`check_limit`; a soft limit gone over warns the caller and, once per crossing, the admins."""
    warning = check_limit(entitlements, limit, current=current, adding=adding)
    if warning is None:
        return None
    note_limit_warning(warning)
    if warning.crossed:
        # In the caller's transaction: admins hear of it only if the change commits.
        await record_event(
            session,
            tenant,
            SOFT_LIMIT_EXCEEDED,
            {"limit": limit.value, "used": warning.used, "allowed": warning.allowed, "plan": warning.plan},
        )
    return warning


# ---- resolution, cached per tenant and revision -----------------------------------------------------

_cache: dict[uuid.UUID, tuple[int, tuple[Override, ...]]] = {}


def override_of(row: EntitlementOverride) -> Override:
    """The view of an override row."""
    value: bool | int | None = row.enabled if row.kind == "feature" else row.limit_value
    return Override(
        row.id,
        row.key,
        value,
        row.reason,
        row.expires_at,
        row.created_by,
        row.created_at,
        row.ended_at,
        row.ended_by,
    )


_BILLING = select(
    Tenant.id,
    Tenant.plan,
    Tenant.trial_ends_at,
    Tenant.billing_status,
    Tenant.past_due_since,
    Tenant.entitlements_revision,
)


async def load_billing(session: AsyncSession, tenant_id: uuid.UUID) -> TenantBilling:
    """A tenant's plan and billing state, read now."""
    row = (await session.execute(_BILLING.where(Tenant.id == tenant_id))).one()
    return TenantBilling(*row)


async def _cached_overrides(session: AsyncSession, billing: TenantBilling) -> tuple[Override, ...]:
    cached = _cache.get(billing.tenant_id)
    if cached is not None and cached[0] == billing.revision:
        return cached[1]
    rows = await session.scalars(
        select(EntitlementOverride)
        .where(EntitlementOverride.tenant_id == billing.tenant_id, EntitlementOverride.ended_at.is_(None))
        .order_by(EntitlementOverride.key)
    )
    overrides = tuple(override_of(row) for row in rows)
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()
    # Read after the revision: a change committed in between is cached under the old
    # revision and reloaded on the next call, never the other way round.
    _cache[billing.tenant_id] = (billing.revision, overrides)
    return overrides


async def resolve_entitlements(
    database: Database, tenant_id: uuid.UUID, *, now: dt.datetime | None = None
) -> Entitlements:
    """A tenant's entitlements now: its plan with the live overrides applied."""
    async with database.platform_reader() as session:
        return await entitlements_in(session, tenant_id, now=now)


async def entitlements_in(
    session: AsyncSession, tenant_id: uuid.UUID, *, now: dt.datetime | None = None
) -> Entitlements:
    """`resolve_entitlements` inside the caller's platform session (and its locks)."""
    billing = await load_billing(session, tenant_id)
    overrides = await _cached_overrides(session, billing)
    return merge_entitlements(billing, overrides, now or dt.datetime.now(dt.UTC))


async def entitlements_of(
    database: Database, record: TenantRecord, *, now: dt.datetime | None = None
) -> Entitlements:
    """A tenant's entitlements from the record read for this request: no read while the cache is current."""
    billing = billing_of(record)
    cached = _cache.get(billing.tenant_id)
    if cached is not None and cached[0] == billing.revision:
        overrides = cached[1]
    else:
        async with database.platform_reader() as session:
            overrides = await _cached_overrides(session, billing)
    return merge_entitlements(billing, overrides, now or dt.datetime.now(dt.UTC))


def billing_of(record: TenantRecord) -> TenantBilling:
    """The billing state a tenant record was read with (no second read)."""
    return TenantBilling(
        record.id,
        record.plan,
        record.trial_ends_at,
        record.billing_status,
        record.past_due_since,
        record.entitlements_revision,
    )


async def bump_revision(session: AsyncSession | AsyncConnection, tenant_id: uuid.UUID) -> None:
    """Tell every process's cache that this tenant's entitlements changed, in the caller's transaction."""
    await session.execute(
        Tenant.__table__.update()  # type: ignore[attr-defined]
        .where(Tenant.id == tenant_id)
        .values(entitlements_revision=Tenant.entitlements_revision + 1)
    )
