"""The plan catalogue: every plan is priced, and a missing feature names the cheapest remedy."""

from __future__ import annotations

from ordersmith.billing.prices import PRICES
from ordersmith.platform.plans import PLANS, Feature, Limit, Meter, cheapest_plan_with, plan_named


def test_every_plan_has_a_price_limits_for_every_limit_and_an_order_allowance() -> None:
    assert set(PRICES) == set(PLANS) == {"trial", "starter", "growth", "enterprise"}
    for plan in PLANS.values():
        assert set(plan.limits) == set(Limit)
        assert set(plan.included) == {Meter.ORDERS}
        assert PRICES[plan.code].order_tiers[-1].up_to is None


def test_the_cheapest_plan_with_a_feature() -> None:
    assert cheapest_plan_with(Feature.API_ACCESS).code == "starter"  # type: ignore[union-attr]
    assert cheapest_plan_with(Feature.RETURNS).code == "growth"  # type: ignore[union-attr]
    assert cheapest_plan_with(Feature.SSO).code == "enterprise"  # type: ignore[union-attr]
    assert plan_named("platinum") is None


def test_the_trial_has_the_growth_features_with_smaller_limits_and_is_not_paid() -> None:
    trial, growth = PLANS["trial"], PLANS["growth"]
    assert trial.features == growth.features
    assert trial.is_paid is False
    assert trial.limits[Limit.SEATS] == 5 < growth.limits[Limit.SEATS] == 15  # type: ignore[operator]
    assert trial.limits[Limit.LOCATIONS] == 4 < growth.limits[Limit.LOCATIONS] == 5  # type: ignore[operator]
