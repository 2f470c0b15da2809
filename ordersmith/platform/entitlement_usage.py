"""What a store uses of its limits, and whether a move to another plan fits it.

`count_seats` and `count_active_locations` are what the services pass to `check_limit`
when they add a seat or a location; `check_downgrade` refuses a plan change that would
leave the store over a hard limit, naming what to change first (seats counted as inviting
counts them: members and pending invitations); `lock_locations` is the lock a store's
location changes take, for a plan change to hold it; `trial_lacks` says in plain words
what the trial does not include.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Boolean, column, func, select, table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.entitlements import (
    LIMIT_REMEDIES,
    DowngradeBlockedError,
    Entitlements,
    TenantBilling,
    UnknownPlanError,
    merge_entitlements,
    resolve_entitlements,
)
from ordersmith.platform.errors import FieldError
from ordersmith.platform.identity.models import Invitation, Membership
from ordersmith.platform.plans import PAID_PLANS_BY_PRICE, PLANS, Feature, Limit, Plan, cheapest_plan_with
from ordersmith.platform.tenancy import get_tenant_by_id

# The inventory room owns this table; counting its active rows is all entitlements need,
# and platform imports nothing of ours, hence a lightweight reference and not its model.
_LOCATIONS = table("locations", column("is_active", Boolean))


async def count_seats(session: AsyncSession | AsyncConnection, tenant_id: uuid.UUID) -> int:
    """Active members of a store (a platform session)."""
    count = await session.scalar(
        select(func.count()).where(Membership.tenant_id == tenant_id, Membership.status == "active")
    )
    return int(count or 0)


async def count_held_seats(
    session: AsyncSession | AsyncConnection, tenant_id: uuid.UUID, *, now: dt.datetime
) -> int:
    """Seats a store holds: active members plus unexpired pending invitations (a platform session)."""
    # Inviting counts a pending invitation as a seat, and accepting it needs that seat.
    pending = await session.scalar(
        select(func.count()).where(
            Invitation.tenant_id == tenant_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
    )
    return await count_seats(session, tenant_id) + int(pending or 0)


async def lock_locations(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Hold off changes to the store's active locations until the transaction ends (any session)."""
    # The key `tenants.inventory.service` takes before counting locations: advisory locks
    # are per database, so a platform transaction holding it holds off the tenant's.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"ordersmith.locations:{tenant_id}"}
    )


async def count_active_locations(session: AsyncSession) -> int:
    """Active stock locations of the store whose tenant session this is."""
    count = await session.scalar(select(func.count()).select_from(_LOCATIONS).where(_LOCATIONS.c.is_active))
    return int(count or 0)


@dataclass(frozen=True)
class LimitExcess:
    """One limit a plan change would break: what the store uses, what the plan allows."""

    limit: Limit
    current: int
    allowed: int

    @property
    def over_by(self) -> int:
        return self.current - self.allowed


def downgrade_excesses(target: Entitlements, usage: Mapping[Limit, int]) -> list[LimitExcess]:
    """The hard limits of `target` the store's current `usage` is over (soft ones only warn)."""
    excesses = []
    for limit in Limit:
        allowed = target.limit(limit)
        current = usage.get(limit)
        if current is None or allowed is None or limit in target.soft_limits or current <= allowed:
            continue
        excesses.append(LimitExcess(limit, current, allowed))
    return excesses


def require_known_plan(plan_code: str) -> Plan:
    """A plan a store may choose (a paid one); `UnknownPlanError` listing them otherwise."""
    plan = PLANS.get(plan_code)
    if plan is not None and plan.is_paid:
        return plan
    known = ", ".join(PAID_PLANS_BY_PRICE)
    what = "the trial cannot be chosen again" if plan is not None else f"there is no plan {plan_code!r}"
    raise UnknownPlanError(
        f"{what}; choose one of {known}",
        errors=[FieldError("plan", f"must be one of {known}")],
        extensions={"plans": list(PAID_PLANS_BY_PRICE)},
    )


def refuse_downgrade(plan: Plan, excesses: list[LimitExcess]) -> None:
    """`DowngradeBlockedError` listing each limit exceeded and by how much, if any is."""
    if not excesses:
        return
    steps = "; ".join(
        f"{LIMIT_REMEDIES[item.limit]} until {item.limit.value} is at most {item.allowed} "
        f"(now {item.current}, {item.over_by} too many)"
        for item in excesses
    )
    raise DowngradeBlockedError(
        f"the {plan.name} plan allows less than the store uses; first {steps}",
        extensions={
            "plan": plan.code,
            "blocked_by": [
                {
                    "limit": item.limit.value,
                    "current": item.current,
                    "allowed": item.allowed,
                    "over_by": item.over_by,
                }
                for item in excesses
            ],
        },
    )


async def current_usage(
    database: Database, tenant_id: uuid.UUID, *, now: dt.datetime | None = None
) -> dict[Limit, int]:
    """What the store uses of each countable limit now: seats held (members, invitations), locations."""
    tenant = await get_tenant_by_id(database, tenant_id)
    async with database.platform_reader() as session:
        seats = await count_held_seats(session, tenant_id, now=now or dt.datetime.now(dt.UTC))
    async with database.tenant_session(tenant.context) as session:
        locations = await count_active_locations(session)
    return {Limit.SEATS: seats, Limit.LOCATIONS: locations}


async def check_downgrade(
    database: Database, tenant_id: uuid.UUID, plan_code: str, *, now: dt.datetime | None = None
) -> None:
    """Refuse a change to `plan_code` the store's use does not fit (409 `downgrade_blocked`).

    The target plan is judged with the tenant's live overrides applied, as it would be after
    the change; an unknown plan (or the trial) is a 422 `unknown_plan` listing the plans.
    """
    plan = require_known_plan(plan_code)
    current = await resolve_entitlements(database, tenant_id, now=now)
    target_billing = TenantBilling(
        tenant_id, plan.code, None, current.billing.billing_status, None, current.billing.revision
    )
    target = merge_entitlements(target_billing, current.overrides, now or dt.datetime.now(dt.UTC))
    refuse_downgrade(plan, downgrade_excesses(target, await current_usage(database, tenant_id, now=now)))


_LIMIT_WORDS = {
    Limit.SEATS: "seats",
    Limit.LOCATIONS: "active locations",
    Limit.API_REQUESTS_PER_MINUTE: "API requests a minute",
}


def _amount(value: int | None) -> str:
    return "unlimited" if value is None else f"{value:,}"


def trial_lacks(trial_days: int, *, compared_with: str = "growth") -> list[str]:
    """What the trial does not have, one plain sentence each, against the plan it previews."""
    trial, paid = PLANS["trial"], PLANS[compared_with]
    lacks = [
        f"It lasts {trial_days} days; then the store is read-only (nothing is deleted, reads and "
        f"exports keep working) until an owner chooses a paid plan."
    ]
    for feature in Feature:
        if feature not in trial.features:
            remedy = cheapest_plan_with(feature)
            lacks.append(f"No {feature.value}: it comes with {remedy.name if remedy else 'no plan yet'}.")
    for limit in Limit:
        ours, theirs = trial.limits.get(limit), paid.limits.get(limit)
        if ours is not None and (theirs is None or ours < theirs):
            lacks.append(f"At most {_amount(ours)} {_LIMIT_WORDS[limit]} ({paid.name}: {_amount(theirs)}).")
    for meter, included in trial.included.items():
        lacks.append(
            f"{included:,} {meter.value} included ({paid.name}: {paid.included.get(meter, 0):,} a month)."
        )
    return lacks
