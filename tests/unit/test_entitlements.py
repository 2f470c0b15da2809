"""Pure entitlement rules: overrides merged over the plan, expiry, read-only states, limits, downgrades."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from ordersmith.billing.lifecycle import trial_notice_due
from ordersmith.platform.entitlement_usage import (
    LimitExcess,
    downgrade_excesses,
    refuse_downgrade,
    require_known_plan,
    trial_lacks,
)
from ordersmith.platform.entitlements import (
    PAST_DUE_GRACE,
    DowngradeBlockedError,
    FeatureNotInPlanError,
    LimitReachedError,
    LimitWarning,
    Override,
    PaymentOverdueError,
    SubscriptionCanceledError,
    TenantBilling,
    TrialEndedError,
    UnknownPlanError,
    access_of,
    check_feature,
    check_limit,
    merge_entitlements,
    require_writable,
)
from ordersmith.platform.plans import PLANS, Feature, Limit

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
TENANT = uuid.UUID(int=1)
STAFF = uuid.UUID(int=2)


def billing(plan: str = "growth", *, status: str = "active", **extra: dt.datetime | None) -> TenantBilling:
    return TenantBilling(
        TENANT, plan, extra.get("trial_ends_at"), status, extra.get("past_due_since"), revision=0
    )


def override(key: str, value: bool | int | None, *, expires_at: dt.datetime | None = None) -> Override:
    return Override(uuid.uuid4(), key, value, "ticket 42", expires_at, STAFF, NOW - dt.timedelta(days=1))


def test_without_overrides_the_plan_decides() -> None:
    entitlements = merge_entitlements(billing("starter"), (), NOW)
    assert entitlements.features == PLANS["starter"].features
    assert dict(entitlements.limits) == {
        Limit.SEATS: 3,
        Limit.LOCATIONS: 1,
        Limit.API_REQUESTS_PER_MINUTE: 120,
    }
    assert entitlements.overrides == ()


def test_an_override_wins_over_the_plan_both_ways() -> None:
    overrides = (
        override("sso", True),
        override("returns", False),
        override("seats", 40),
        override("locations", None),
    )
    entitlements = merge_entitlements(billing("growth"), overrides, NOW)
    assert entitlements.has(Feature.SSO) is True
    assert entitlements.has(Feature.RETURNS) is False
    assert entitlements.limit(Limit.SEATS) == 40
    # None: unlimited.
    assert entitlements.limit(Limit.LOCATIONS) is None
    assert entitlements.limit(Limit.API_REQUESTS_PER_MINUTE) == 600
    assert [item.key for item in entitlements.overrides] == ["sso", "returns", "seats", "locations"]


def test_an_override_stops_applying_at_its_expiry() -> None:
    expires_at = NOW + dt.timedelta(hours=1)
    overrides = (override("sso", True, expires_at=expires_at),)
    assert merge_entitlements(billing(), overrides, expires_at - dt.timedelta(microseconds=1)).has(
        Feature.SSO
    )
    at_expiry = merge_entitlements(billing(), overrides, expires_at)
    assert at_expiry.has(Feature.SSO) is False
    assert at_expiry.overrides == ()


def test_an_ended_override_does_not_apply() -> None:
    ended = Override(uuid.uuid4(), "seats", 99, "deal", None, STAFF, NOW, ended_at=NOW, ended_by=STAFF)
    assert merge_entitlements(billing("starter"), (ended,), NOW).limit(Limit.SEATS) == 3


@pytest.mark.parametrize(
    ("plan", "status", "fields", "state", "is_writable"),
    [
        ("trial", "active", {"trial_ends_at": NOW + dt.timedelta(seconds=1)}, "trialing", True),
        ("trial", "active", {"trial_ends_at": NOW}, "trial_ended", False),
        ("trial", "active", {"trial_ends_at": None}, "trialing", True),
        ("growth", "active", {"trial_ends_at": NOW - dt.timedelta(days=30)}, "active", True),
        (
            "growth",
            "past_due",
            {"past_due_since": NOW - PAST_DUE_GRACE + dt.timedelta(seconds=1)},
            "past_due",
            True,
        ),
        ("growth", "past_due", {"past_due_since": NOW - PAST_DUE_GRACE}, "payment_overdue", False),
        ("growth", "unpaid", {}, "payment_overdue", False),
        ("growth", "canceled", {}, "canceled", False),
    ],
)
def test_access_states(
    plan: str, status: str, fields: dict[str, dt.datetime | None], state: str, is_writable: bool
) -> None:
    access = access_of(billing(plan, status=status, **fields), NOW)
    assert (access.state, access.is_writable) == (state, is_writable)


def test_each_read_only_state_has_its_own_402() -> None:
    with pytest.raises(TrialEndedError) as ended:
        require_writable(billing("trial", trial_ends_at=NOW - dt.timedelta(days=1)), NOW)
    assert ended.value.status == 402
    assert ended.value.extensions == {
        "trial_ended_at": "2026-11-27T12:00:00+00:00",
        "plans": ["starter", "growth", "enterprise"],
    }
    assert ended.value.detail.startswith("the free trial ended on 2026-11-27; the store is read-only")
    with pytest.raises(PaymentOverdueError):
        require_writable(billing(status="unpaid"), NOW)
    with pytest.raises(SubscriptionCanceledError):
        require_writable(billing(status="canceled"), NOW)
    require_writable(billing(status="past_due", past_due_since=NOW), NOW)


def test_a_missing_feature_names_the_cheapest_plan_with_it() -> None:
    with pytest.raises(FeatureNotInPlanError) as refused:
        check_feature(merge_entitlements(billing("starter"), (), NOW), Feature.RETURNS)
    assert (refused.value.status, refused.value.code) == (402, "feature_not_in_plan")
    assert refused.value.extensions == {"feature": "returns", "plan": "starter", "cheapest_plan": "growth"}
    assert refused.value.detail == (
        "returns is not in your Starter plan; it comes with the Growth plan; "
        "change plan at POST /api/v1/billing/plan"
    )


def test_a_hard_limit_refuses_with_what_to_do() -> None:
    trial = merge_entitlements(billing("trial"), (), NOW)
    assert check_limit(trial, Limit.SEATS, current=4) is None
    with pytest.raises(LimitReachedError) as refused:
        check_limit(trial, Limit.SEATS, current=5)
    assert (refused.value.status, refused.value.code) == (402, "limit_reached")
    assert refused.value.extensions == {
        "limit": "seats",
        "current": 5,
        "allowed": 5,
        "plan": "trial",
        "cheapest_plan": "growth",
    }
    assert refused.value.detail == (
        "your Trial plan allows 5 seats and the store uses 5; deactivate a member or withdraw a pending "
        "invitation first, or change to the Growth plan at POST /api/v1/billing/plan"
    )


def test_a_soft_limit_warns_and_says_when_it_was_crossed() -> None:
    growth = merge_entitlements(billing("growth"), (), NOW)
    assert check_limit(growth, Limit.SEATS, current=14) is None
    assert check_limit(growth, Limit.SEATS, current=15) == LimitWarning(
        Limit.SEATS, 16, 15, "growth", crossed=True
    )
    later = check_limit(growth, Limit.SEATS, current=16)
    assert later == LimitWarning(Limit.SEATS, 17, 15, "growth", crossed=False)
    assert later.header_value() == 'seats;used=17;allowed=15;plan="growth"'


def test_an_unlimited_limit_never_refuses() -> None:
    enterprise = merge_entitlements(billing("enterprise"), (), NOW)
    assert check_limit(enterprise, Limit.LOCATIONS, current=10_000, adding=5) is None


def test_a_downgrade_lists_each_hard_limit_exceeded_and_by_how_much() -> None:
    starter = merge_entitlements(billing("starter"), (), NOW)
    usage = {Limit.SEATS: 5, Limit.LOCATIONS: 1}
    assert downgrade_excesses(starter, usage) == [LimitExcess(Limit.SEATS, 5, 3)]
    with pytest.raises(DowngradeBlockedError) as refused:
        refuse_downgrade(starter.plan, downgrade_excesses(starter, {Limit.SEATS: 5, Limit.LOCATIONS: 3}))
    assert (refused.value.status, refused.value.code) == (409, "downgrade_blocked")
    assert refused.value.extensions == {
        "plan": "starter",
        "blocked_by": [
            {"limit": "seats", "current": 5, "allowed": 3, "over_by": 2},
            {"limit": "locations", "current": 3, "allowed": 1, "over_by": 2},
        ],
    }
    assert refused.value.detail == (
        "the Starter plan allows less than the store uses; first deactivate a member or withdraw a pending "
        "invitation until seats is at most 3 (now 5, 2 too many); deactivate a location until locations is "
        "at most 1 (now 3, 2 too many)"
    )


def test_a_downgrade_ignores_soft_limits_and_honours_overrides() -> None:
    growth = merge_entitlements(billing("growth"), (), NOW)
    # Seats are soft on Growth: 40 members warn, they do not block.
    assert downgrade_excesses(growth, {Limit.SEATS: 40, Limit.LOCATIONS: 5}) == []
    starter_with_deal = merge_entitlements(billing("starter"), (override("locations", 3),), NOW)
    assert downgrade_excesses(starter_with_deal, {Limit.SEATS: 1, Limit.LOCATIONS: 3}) == []


def test_only_paid_plans_can_be_chosen() -> None:
    assert require_known_plan("growth").code == "growth"
    for code, what in (
        ("platinum", "there is no plan 'platinum'"),
        ("trial", "the trial cannot be chosen again"),
    ):
        with pytest.raises(UnknownPlanError) as refused:
            require_known_plan(code)
        assert (refused.value.status, refused.value.code) == (422, "unknown_plan")
        assert refused.value.detail == f"{what}; choose one of starter, growth, enterprise"
        assert refused.value.extensions == {"plans": ["starter", "growth", "enterprise"]}


def test_the_trial_notice_due_is_the_latest_one() -> None:
    ends = NOW + dt.timedelta(days=10)
    assert trial_notice_due(ends, ends - dt.timedelta(days=3, seconds=1)) is None
    assert trial_notice_due(ends, ends - dt.timedelta(days=3)) == "ends_in_3_days"
    assert trial_notice_due(ends, ends - dt.timedelta(days=1, seconds=1)) == "ends_in_3_days"
    assert trial_notice_due(ends, ends - dt.timedelta(days=1)) == "ends_in_1_day"
    assert trial_notice_due(ends, ends - dt.timedelta(seconds=1)) == "ends_in_1_day"
    assert trial_notice_due(ends, ends) == "ended"


def test_what_the_trial_lacks_is_said_plainly() -> None:
    assert trial_lacks(14) == [
        "It lasts 14 days; then the store is read-only (nothing is deleted, reads and exports keep working) "
        "until an owner chooses a paid plan.",
        "No sso: it comes with Enterprise.",
        "No audit_log_export: it comes with Enterprise.",
        "At most 5 seats (Growth: 15).",
        "At most 4 active locations (Growth: 5).",
        "At most 60 API requests a minute (Growth: 600).",
        "100 orders included (Growth: 3,000 a month).",
    ]
