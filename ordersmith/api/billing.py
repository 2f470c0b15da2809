"""The store's plan: what it is and entitles to, how the plans compare on the store's own usage, changing it.

Owners and admins read (`billing.read`); only owners change plan (`billing.manage`).
Changing plan works even while the store is read-only: it is how an owner gets out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from ordersmith.api.access import requires
from ordersmith.api.entitlements import WRITABLE_WHEN_READ_ONLY
from ordersmith.api.problems import PROBLEMS
from ordersmith.billing.metering import last_month_usage, month_of
from ordersmith.billing.prices import PRICES
from ordersmith.billing.rating import rate
from ordersmith.billing.subscriptions import change_plan
from ordersmith.platform.entitlement_usage import (
    current_usage,
    downgrade_excesses,
    require_known_plan,
    trial_lacks,
)
from ordersmith.platform.entitlements import (
    Entitlements,
    Override,
    access_of,
    merge_entitlements,
    resolve_entitlements,
)
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.plans import PLANS, TRIAL_DAYS, Feature, Limit, Meter


class FeatureEntitlement(msgspec.Struct):
    feature: str
    enabled: bool
    # "plan", or "override" when vendor staff set it for this store.
    source: str
    override_expires_at: dt.datetime | None = None


class LimitEntitlement(msgspec.Struct):
    limit: str
    # None: unlimited.
    allowed: int | None
    # What the store uses now, as its limit counts it (seats: active members and pending
    # invitations; locations: active ones).
    used: int | None
    # A soft limit warns and tells the admins instead of refusing.
    is_soft: bool
    source: str
    override_expires_at: dt.datetime | None = None


class OverrideSummary(msgspec.Struct):
    key: str
    value: bool | int | None
    reason: str
    expires_at: dt.datetime | None


class PlanState(msgspec.Struct):
    plan: str
    plan_name: str
    # trialing, trial_ended, active, past_due, payment_overdue or canceled.
    state: str
    is_read_only: bool
    trial_ends_at: dt.datetime | None
    past_due_since: dt.datetime | None
    # When a past_due store turns (or turned) read-only.
    grace_ends_at: dt.datetime | None
    features: list[FeatureEntitlement]
    limits: list[LimitEntitlement]
    included: dict[str, int]
    overrides: list[OverrideSummary]


class Tier(msgspec.Struct):
    # Overage units up to this one (inclusive); None: no end.
    up_to: int | None
    unit_amount: int


class PlanPrice(msgspec.Struct):
    currency: str
    base_amount: int
    order_tiers: list[Tier]


class CostLine(msgspec.Struct):
    kind: str
    description: str
    quantity: int
    unit_amount: int
    amount: int


class LastMonthCost(msgspec.Struct):
    currency: str
    total_amount: int
    lines: list[CostLine]


class LimitBlock(msgspec.Struct):
    limit: str
    current: int
    allowed: int
    over_by: int


class PlanOffer(msgspec.Struct):
    code: str
    name: str
    is_current: bool
    # False for the trial: it cannot be chosen.
    is_selectable: bool
    price: PlanPrice
    features: list[str]
    limits: dict[str, int | None]
    soft_limits: list[str]
    included: dict[str, int]
    # What the store's last month of usage would have cost on this plan.
    last_month_cost: LastMonthCost
    # Limits the store is over on this plan today: a change to it is refused until they are fixed.
    blocked_by: list[LimitBlock]


class PlanComparison(msgspec.Struct):
    current_plan: str
    usage_period_start: dt.datetime
    usage_period_end: dt.datetime
    usage: dict[str, int]
    plans: list[PlanOffer]
    # What the trial does not have, in plain words.
    trial_lacks: list[str]


class PlanChange(msgspec.Struct, forbid_unknown_fields=True):
    plan: str


def _override_by_key(entitlements: Entitlements) -> dict[str, Override]:
    return {override.key: override for override in entitlements.overrides}


def _plan_state(entitlements: Entitlements, usage: dict[Limit, int], now: dt.datetime) -> PlanState:
    billing = entitlements.billing
    access = access_of(billing, now)
    overrides = _override_by_key(entitlements)

    def source(key: str) -> tuple[str, dt.datetime | None]:
        override = overrides.get(key)
        return ("override", override.expires_at) if override else ("plan", None)

    return PlanState(
        plan=entitlements.plan.code,
        plan_name=entitlements.plan.name,
        state=access.state,
        is_read_only=not access.is_writable,
        trial_ends_at=billing.trial_ends_at,
        past_due_since=billing.past_due_since,
        grace_ends_at=access.grace_ends_at,
        features=[
            FeatureEntitlement(feature.value, entitlements.has(feature), *source(feature.value))
            for feature in Feature
        ],
        limits=[
            LimitEntitlement(
                limit.value,
                entitlements.limit(limit),
                usage.get(limit),
                limit in entitlements.soft_limits,
                *source(limit.value),
            )
            for limit in Limit
        ],
        included={meter.value: amount for meter, amount in entitlements.plan.included.items()},
        overrides=[
            OverrideSummary(item.key, item.value, item.reason, item.expires_at)
            for item in entitlements.overrides
        ],
    )


async def _current_state(state: State, principal: Principal) -> PlanState:
    assert principal.tenant is not None
    now = dt.datetime.now(dt.UTC)
    entitlements = await resolve_entitlements(state.database, principal.tenant.id, now=now)
    usage = await current_usage(state.database, principal.tenant.id)
    return _plan_state(entitlements, usage, now)


@get(
    "/api/v1/billing/plan",
    operation_id="getBillingPlan",
    summary="The store's plan, trial or billing state, and its entitlements with overrides applied.",
    opt=requires(Permission.BILLING_READ),
    tags=["billing"],
)
async def read_plan(state: State, principal: NamedDependency[Principal]) -> PlanState:
    """Each feature and limit says whether it comes from the plan or a vendor override, and until when."""
    return await _current_state(state, principal)


def _offer(
    code: str, current: Entitlements, usage: dict[Limit, int], orders: dict[Meter, int], now: dt.datetime
) -> PlanOffer:
    plan, price = PLANS[code], PRICES[code]
    cost = rate(code, orders)
    # Judged as the store would be on it: with its overrides still applied.
    target = merge_entitlements(dataclasses.replace(current.billing, plan=code), current.overrides, now)
    return PlanOffer(
        code=code,
        name=plan.name,
        is_current=code == current.plan.code,
        is_selectable=plan.is_paid,
        price=PlanPrice(
            currency=cost.currency,
            base_amount=price.base_amount,
            order_tiers=[Tier(tier.up_to, tier.unit_amount) for tier in price.order_tiers],
        ),
        features=sorted(feature.value for feature in plan.features),
        limits={limit.value: allowed for limit, allowed in plan.limits.items()},
        soft_limits=sorted(limit.value for limit in plan.soft_limits),
        included={meter.value: amount for meter, amount in plan.included.items()},
        last_month_cost=LastMonthCost(
            currency=cost.currency,
            total_amount=cost.total,
            lines=[
                CostLine(line.kind, line.description, line.quantity, line.unit_amount, line.amount)
                for line in cost.lines
            ],
        ),
        blocked_by=[
            LimitBlock(item.limit.value, item.current, item.allowed, item.over_by)
            for item in downgrade_excesses(target, usage)
        ]
        if plan.is_paid
        else [],
    )


@get(
    "/api/v1/billing/plans",
    operation_id="comparePlans",
    summary="Every plan's price, features and limits, and what last month would have cost on each.",
    opt=requires(Permission.BILLING_READ),
    tags=["billing"],
)
async def compare_plans(state: State, principal: NamedDependency[Principal]) -> PlanComparison:
    """Last month's orders rated on each plan; `blocked_by` lists what to fix before moving to a plan."""
    assert principal.tenant is not None
    tenant_id = principal.tenant.id
    now = dt.datetime.now(dt.UTC)
    current = await resolve_entitlements(state.database, tenant_id, now=now)
    usage = await current_usage(state.database, tenant_id)
    async with state.database.platform_reader() as session:
        orders = await last_month_usage(session, tenant_id, now=now)
    this_month, _ = month_of(now)
    start, end = month_of(this_month - dt.timedelta(days=1))
    return PlanComparison(
        current_plan=current.plan.code,
        usage_period_start=start,
        usage_period_end=end,
        usage={meter.value: amount for meter, amount in orders.items()},
        plans=[_offer(code, current, usage, orders, now) for code in PLANS],
        trial_lacks=trial_lacks(TRIAL_DAYS),
    )


@post(
    "/api/v1/billing/plan",
    operation_id="changeBillingPlan",
    summary="Move the store to a paid plan (with proration when billed through Stripe).",
    opt={**requires(Permission.BILLING_MANAGE), **WRITABLE_WHEN_READ_ONLY, PROBLEMS: frozenset({502})},
    tags=["billing"],
    status_code=HTTP_200_OK,
)
async def change_billing_plan(
    state: State, principal: NamedDependency[Principal], data: JSONBody[PlanChange]
) -> PlanState:
    """An unknown plan is 422 listing the plans; one the store does not fit is 409 `downgrade_blocked`."""
    assert principal.tenant is not None
    require_known_plan(data.plan)
    await change_plan(state.database, principal.tenant.id, data.plan, actor=principal.actor)
    return await _current_state(state, principal)


ROUTES = [read_plan, compare_plans, change_billing_plan]
