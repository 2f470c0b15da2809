"""The store's plan over HTTP: what it entitles to, the comparison on last month's usage, changing plan."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.billing.metering import month_of
from ordersmith.platform.billing_models import UsageHour
from ordersmith.platform.database import Database
from ordersmith.platform.entitlement_usage import trial_lacks
from tests.support.http import bearer, sign_up
from tests.support.members import add_member, audit_trail, invite

TRIAL_FEATURES = {
    "returns": True,
    "multi_location": True,
    "webhooks": True,
    "sso": False,
    "api_access": True,
    "advanced_reports": True,
    "audit_log_export": False,
}


async def _add_locations(
    client: AsyncTestClient[Litestar], headers: dict[str, str], *codes: str
) -> list[str]:
    ids = []
    for code in codes:
        response = await client.post(
            "/api/v1/locations", json={"code": code, "name": code, "kind": "warehouse"}, headers=headers
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def _last_month_orders(database: Database, tenant_id: str, quantity: int) -> None:
    this_month, _ = month_of(dt.datetime.now(dt.UTC))
    last_month, _ = month_of(this_month - dt.timedelta(days=1))
    async with database.platform_session() as session:
        session.add(
            UsageHour(
                tenant_id=uuid.UUID(tenant_id),
                meter="orders",
                hour=last_month + dt.timedelta(days=5, hours=9),
                quantity=quantity,
            )
        )


async def test_a_new_store_sees_its_trial_and_every_entitlement(client: AsyncTestClient[Litestar]) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    await _add_locations(client, headers, "WH-1")
    body = (await client.get("/api/v1/billing/plan", headers=headers)).json()
    assert dt.datetime.fromisoformat(body.pop("trial_ends_at")) == dt.datetime.fromisoformat(
        owner["tenant"]["trial_ends_at"]
    )
    assert body == {
        "plan": "trial",
        "plan_name": "Trial",
        "state": "trialing",
        "is_read_only": False,
        "past_due_since": None,
        "grace_ends_at": None,
        "features": [
            {"feature": feature, "enabled": enabled, "source": "plan", "override_expires_at": None}
            for feature, enabled in TRIAL_FEATURES.items()
        ],
        "limits": [
            {
                "limit": "seats",
                "allowed": 5,
                "used": 1,
                "is_soft": False,
                "source": "plan",
                "override_expires_at": None,
            },
            {
                "limit": "locations",
                "allowed": 4,
                "used": 1,
                "is_soft": False,
                "source": "plan",
                "override_expires_at": None,
            },
            {
                "limit": "api_requests_per_minute",
                "allowed": 60,
                "used": None,
                "is_soft": False,
                "source": "plan",
                "override_expires_at": None,
            },
        ],
        "included": {"orders": 100},
        "overrides": [],
    }


async def test_admins_read_the_plan_and_only_owners_change_it(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    admin = await add_member(client, database, headers, "admin")
    manager = await add_member(client, database, headers, "manager")
    for path in ("/api/v1/billing/plan", "/api/v1/billing/plans"):
        assert (await client.get(path, headers=admin.headers)).status_code == 200, path
        refused = await client.get(path, headers=manager.headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied"), path
    changed = await client.post("/api/v1/billing/plan", json={"plan": "growth"}, headers=admin.headers)
    assert (changed.status_code, changed.json()["code"]) == (403, "permission_denied")


async def test_the_comparison_rates_last_month_on_every_plan_and_says_what_blocks_a_move(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    await _add_locations(client, headers, "WH-1", "WH-2")
    await _last_month_orders(database, owner["tenant"]["id"], 3_600)
    body = (await client.get("/api/v1/billing/plans", headers=headers)).json()
    assert body["current_plan"] == "trial"
    assert body["usage"] == {"orders": 3_600}
    assert body["trial_lacks"] == trial_lacks(14)
    summary = {
        plan["code"]: (
            plan["is_current"],
            plan["is_selectable"],
            plan["price"]["base_amount"],
            plan["last_month_cost"]["total_amount"],
            plan["blocked_by"],
        )
        for plan in body["plans"]
    }
    # By hand: starter 29.00 + 1,000 * 0.08 + 2,100 * 0.06 (3,100 over its 500);
    # growth 99.00 + 600 * 0.05 (over its 3,000); enterprise's 20,000 cover it all.
    assert summary == {
        "trial": (True, False, 0, 0, []),
        "starter": (
            False,
            True,
            2_900,
            23_500,
            [{"limit": "locations", "current": 2, "allowed": 1, "over_by": 1}],
        ),
        "growth": (False, True, 9_900, 12_900, []),
        "enterprise": (False, True, 49_900, 49_900, []),
    }
    growth = next(plan for plan in body["plans"] if plan["code"] == "growth")
    assert growth["price"] == {
        "currency": "usd",
        "base_amount": 9_900,
        "order_tiers": [
            {"up_to": 5_000, "unit_amount": 5},
            {"up_to": 20_000, "unit_amount": 4},
            {"up_to": None, "unit_amount": 3},
        ],
    }
    assert growth["limits"] == {"seats": 15, "locations": 5, "api_requests_per_minute": 600}
    assert growth["soft_limits"] == ["api_requests_per_minute", "seats"]
    assert [
        (line["kind"], line["quantity"], line["amount"]) for line in growth["last_month_cost"]["lines"]
    ] == [
        ("base", 1, 9_900),
        ("included", 3_000, 0),
        ("overage", 600, 3_000),
    ]


async def _problem(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    body.pop("request_id", None)
    return body


async def test_an_unknown_plan_is_422_listing_the_plans(client: AsyncTestClient[Litestar]) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    for plan, what in (
        ("platinum", "there is no plan 'platinum'"),
        ("trial", "the trial cannot be chosen again"),
    ):
        response = await client.post("/api/v1/billing/plan", json={"plan": plan}, headers=headers)
        assert await _problem(response) == {
            "type": "urn:ordersmith:problem:unknown_plan",
            "title": "Unknown plan",
            "status": 422,
            "detail": f"{what}; choose one of starter, growth, enterprise",
            "code": "unknown_plan",
            "plans": ["starter", "growth", "enterprise"],
            "errors": [{"field": "plan", "message": "must be one of starter, growth, enterprise"}],
        }


async def test_a_downgrade_the_store_does_not_fit_is_refused_with_what_to_change_first(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    first, _ = await _add_locations(client, headers, "WH-1", "WH-2")
    refused = await client.post("/api/v1/billing/plan", json={"plan": "starter"}, headers=headers)
    assert await _problem(refused) == {
        "type": "urn:ordersmith:problem:downgrade_blocked",
        "title": "Downgrade blocked",
        "status": 409,
        "detail": "the Starter plan allows less than the store uses; first deactivate a location until "
        "locations is at most 1 (now 2, 1 too many)",
        "code": "downgrade_blocked",
        "plan": "starter",
        "blocked_by": [{"limit": "locations", "current": 2, "allowed": 1, "over_by": 1}],
    }
    assert (await client.get("/api/v1/billing/plan", headers=headers)).json()["plan"] == "trial"
    deactivated = await client.patch(f"/api/v1/locations/{first}", json={"is_active": False}, headers=headers)
    assert deactivated.status_code == 200
    changed = await client.post("/api/v1/billing/plan", json={"plan": "starter"}, headers=headers)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["plan"], body["state"], body["is_read_only"]) == ("starter", "active", False)
    assert [item["feature"] for item in body["features"] if item["enabled"]] == ["api_access"]
    trail = await audit_trail(database, owner["tenant"]["id"])
    assert [entry["data"] for entry in trail if entry["action"] == "billing.plan_changed"][-1][
        "to"
    ] == "starter"


async def test_a_downgrade_counts_pending_invitations_as_seats_as_inviting_does(
    client: AsyncTestClient[Litestar],
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    invitations = [
        await invite(client, headers, f"agent-{uuid.uuid4().hex[:10]}@example.com", "agent") for _ in range(4)
    ]
    # The owner and four invitations hold five seats; Starter has three, and each acceptance needs one.
    refused = await client.post("/api/v1/billing/plan", json={"plan": "starter"}, headers=headers)
    assert await _problem(refused) == {
        "type": "urn:ordersmith:problem:downgrade_blocked",
        "title": "Downgrade blocked",
        "status": 409,
        "detail": "the Starter plan allows less than the store uses; first deactivate a member or withdraw "
        "a pending invitation until seats is at most 3 (now 5, 2 too many)",
        "code": "downgrade_blocked",
        "plan": "starter",
        "blocked_by": [{"limit": "seats", "current": 5, "allowed": 3, "over_by": 2}],
    }
    plan = (await client.get("/api/v1/billing/plan", headers=headers)).json()
    assert (plan["plan"], plan["limits"][0]["limit"], plan["limits"][0]["used"]) == ("trial", "seats", 5)
    plans = (await client.get("/api/v1/billing/plans", headers=headers)).json()["plans"]
    assert next(item for item in plans if item["code"] == "starter")["blocked_by"] == [
        {"limit": "seats", "current": 5, "allowed": 3, "over_by": 2}
    ]
    for invitation in invitations[:2]:
        withdrawn = await client.delete(f"/api/v1/invitations/{invitation['id']}", headers=headers)
        assert withdrawn.status_code == 204, withdrawn.text
    changed = await client.post("/api/v1/billing/plan", json={"plan": "starter"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["plan"], changed.json()["limits"][0]["used"]) == ("starter", 3)


async def test_each_store_sees_only_its_own_plan_and_usage(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store_a, store_b = await sign_up(client), await sign_up(client)
    headers_a, headers_b = bearer(store_a["token"]["access_token"]), bearer(store_b["token"]["access_token"])
    await _last_month_orders(database, store_a["tenant"]["id"], 250)
    assert (
        await client.post("/api/v1/billing/plan", json={"plan": "growth"}, headers=headers_a)
    ).status_code == 200
    plans_a = (await client.get("/api/v1/billing/plans", headers=headers_a)).json()
    plans_b = (await client.get("/api/v1/billing/plans", headers=headers_b)).json()
    assert (plans_a["current_plan"], plans_a["usage"]) == ("growth", {"orders": 250})
    assert (plans_b["current_plan"], plans_b["usage"]) == ("trial", {"orders": 0})
    assert (await client.get("/api/v1/billing/plan", headers=headers_b)).json()["plan"] == "trial"
