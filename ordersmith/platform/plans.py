"""What each plan entitles a store to: features, limits and included usage.

Plans are code, not rows: a change ships with a release and is reviewed like one. Every
room checks entitlements, so they live in `platform`; prices, metering and rating live in
`ordersmith/billing/prices.py`. Per-store overrides by vendor staff win over these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Feature(enum.StrEnum):
    # Returns, refunds against them, exchanges.
    RETURNS = "returns"
    # More than one stock location.
    MULTI_LOCATION = "multi_location"
    # Signed webhooks to the merchant's own systems.
    WEBHOOKS = "webhooks"
    # Sign-in through the store's own OpenID Connect provider.
    SSO = "sso"
    # API keys for integrations.
    API_ACCESS = "api_access"
    # Reports beyond the built-in KPIs.
    ADVANCED_REPORTS = "advanced_reports"
    # Export of the audit trail.
    AUDIT_LOG_EXPORT = "audit_log_export"


class Limit(enum.StrEnum):
    # Active members of the store.
    SEATS = "seats"
    # Active stock locations.
    LOCATIONS = "locations"
    # API requests a minute, per store.
    API_REQUESTS_PER_MINUTE = "api_requests_per_minute"


class Meter(enum.StrEnum):
    # Orders placed (not drafts), counted once each. The one billed meter.
    ORDERS = "orders"
    # Authenticated API requests of a store's users and keys; measured, not billed.
    API_REQUESTS = "api_requests"
    # Active members, taken once an hour; a level (a period shows its peak), not billed.
    SEATS = "seats"


# A limit of None means unlimited.
UNLIMITED = None


@dataclass(frozen=True)
class Plan:
    """One plan's entitlements."""

    code: str
    name: str
    features: frozenset[Feature]
    limits: dict[Limit, int | None]
    # Units of each meter included per billing period before overage applies.
    included: dict[Meter, int]
    # Whether the store may keep this plan after its trial (the trial may not).
    is_paid: bool = True
    # Where a plan's limit is soft, going over warns and notifies admins instead of refusing.
    soft_limits: frozenset[Limit] = field(default_factory=frozenset)


_GROWTH_FEATURES = frozenset(
    {
        Feature.RETURNS,
        Feature.MULTI_LOCATION,
        Feature.WEBHOOKS,
        Feature.API_ACCESS,
        Feature.ADVANCED_REPORTS,
    }
)

TRIAL_DAYS = 14

PLANS: dict[str, Plan] = {
    plan.code: plan
    for plan in (
        Plan(
            code="trial",
            name="Trial",
            # The growth features, for 14 days, with modest limits: enough for a small team
            # to try several locations, below Growth's.
            features=_GROWTH_FEATURES,
            limits={Limit.SEATS: 5, Limit.LOCATIONS: 4, Limit.API_REQUESTS_PER_MINUTE: 60},
            included={Meter.ORDERS: 100},
            is_paid=False,
        ),
        Plan(
            code="starter",
            name="Starter",
            features=frozenset({Feature.API_ACCESS}),
            limits={Limit.SEATS: 3, Limit.LOCATIONS: 1, Limit.API_REQUESTS_PER_MINUTE: 120},
            included={Meter.ORDERS: 500},
        ),
        Plan(
            code="growth",
            name="Growth",
            features=_GROWTH_FEATURES,
            limits={Limit.SEATS: 15, Limit.LOCATIONS: 5, Limit.API_REQUESTS_PER_MINUTE: 600},
            included={Meter.ORDERS: 3_000},
            # Seats past 15 are let in with a warning to the admins (a true-up, not a refusal).
            soft_limits=frozenset({Limit.SEATS, Limit.API_REQUESTS_PER_MINUTE}),
        ),
        Plan(
            code="enterprise",
            name="Enterprise",
            features=frozenset(Feature),
            limits={
                Limit.SEATS: UNLIMITED,
                Limit.LOCATIONS: UNLIMITED,
                Limit.API_REQUESTS_PER_MINUTE: 3_000,
            },
            included={Meter.ORDERS: 20_000},
            soft_limits=frozenset({Limit.API_REQUESTS_PER_MINUTE}),
        ),
    )
}

# Cheapest first: the order in which a missing feature's remedy is looked up.
PAID_PLANS_BY_PRICE = ("starter", "growth", "enterprise")


def plan_named(code: str) -> Plan | None:
    """The plan with this code, or None."""
    return PLANS.get(code)


def cheapest_plan_with(feature: Feature) -> Plan | None:
    """The cheapest paid plan that includes a feature (what a 402 suggests)."""
    for code in PAID_PLANS_BY_PRICE:
        if feature in PLANS[code].features:
            return PLANS[code]
    return None
