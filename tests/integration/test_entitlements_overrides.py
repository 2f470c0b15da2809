"""The feature guard on the SSO routes, and vendor staff's overrides: unlock, expire, end, audited."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from tests.support.http import bearer, sign_up
from tests.support.members import audit_trail
from tests.support.staff import staff_token

SSO_BODY = {"issuer": "not a url", "client_id": "acme", "client_secret": "s3cret"}
FEATURE_NOT_IN_PLAN = {
    "type": "urn:ordersmith:problem:feature_not_in_plan",
    "title": "Feature not in plan",
    "status": 402,
    "detail": "sso is not in your Trial plan; it comes with the Enterprise plan; "
    "change plan at POST /api/v1/billing/plan",
    "code": "feature_not_in_plan",
    "feature": "sso",
    "plan": "trial",
    "cheapest_plan": "enterprise",
}


def _problem(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    body.pop("request_id", None)
    return body


async def _sso_answers(client: AsyncTestClient[Litestar], owner: dict[str, Any]) -> tuple[int, str, int, str]:
    """(status, code) of configuring SSO and of starting an SSO sign-in."""
    headers = bearer(owner["token"]["access_token"])
    configured = await client.put("/api/v1/sso", json=SSO_BODY, headers=headers)
    started = await client.get(f"/api/v1/auth/sso/{owner['tenant']['slug']}/login", follow_redirects=False)
    return configured.status_code, configured.json()["code"], started.status_code, started.json()["code"]


async def test_sso_needs_the_feature_and_the_402_names_the_cheapest_plan(
    client: AsyncTestClient[Litestar],
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    configured = await client.put("/api/v1/sso", json=SSO_BODY, headers=headers)
    assert _problem(configured) == FEATURE_NOT_IN_PLAN
    started = await client.get(f"/api/v1/auth/sso/{owner['tenant']['slug']}/login", follow_redirects=False)
    assert _problem(started) == FEATURE_NOT_IN_PLAN
    # Reading and removing the settings stay open (here: there are none), so a store that lost
    # SSO still sees and clears what it had.
    for method in ("GET", "DELETE"):
        response = await client.request(method, "/api/v1/sso", headers=headers)
        assert (response.status_code, response.json()["code"]) == (404, "sso_not_configured"), method


async def test_an_override_unlocks_a_feature_and_its_expiry_locks_it_again(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    slug, tenant_id = owner["tenant"]["slug"], owner["tenant"]["id"]
    support, token = await staff_token(client, database, "support")
    expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    response = await client.put(
        f"/admin/api/v1/tenants/{slug}/entitlements/sso",
        json={"value": True, "reason": "ticket 812: SSO pilot", "expires_at": expires_at.isoformat()},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["key"], body["kind"], body["value"], body["reason"], body["is_live"]) == (
        "sso",
        "feature",
        True,
        "ticket 812: SSO pilot",
        True,
    )
    assert body["created_by"] == str(support.id)
    # Unlocked: the guard lets both through; what answers now is the SSO code itself.
    assert await _sso_answers(client, owner) == (422, "validation_failed", 404, "sso_not_configured")
    trail = await audit_trail(database, tenant_id)
    assert trail[-1] == {
        "action": "entitlement.override_set",
        "actor_type": "staff",
        "actor_id": str(support.id),
        "target_type": "entitlement",
        "target_id": "sso",
        "data": {
            "value": True,
            "reason": "ticket 812: SSO pilot",
            "expires_at": expires_at.isoformat(),
            "replaced": None,
            "had_override": False,
        },
    }
    # Nothing changes at expiry (no job, no revision bump): the resolution itself stops applying it.
    await asyncio.sleep(max(0.0, (expires_at - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)
    assert await _sso_answers(client, owner) == (402, "feature_not_in_plan", 402, "feature_not_in_plan")
    listed = await client.get(f"/admin/api/v1/tenants/{slug}/entitlements", headers=bearer(token))
    assert listed.json()["features"]["sso"] is False
    assert [(item["key"], item["is_live"]) for item in listed.json()["overrides"]] == [("sso", False)]


async def test_staff_end_an_override_and_a_replaced_one_becomes_history(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    slug, tenant_id = owner["tenant"]["slug"], owner["tenant"]["id"]
    superadmin, token = await staff_token(client, database, "superadmin")
    path = f"/admin/api/v1/tenants/{slug}/entitlements/seats"
    for value in (12, None):
        response = await client.put(path, json={"value": value, "reason": "deal 7"}, headers=bearer(token))
        assert response.status_code == 200, response.text
    listed = (await client.get(f"/admin/api/v1/tenants/{slug}/entitlements", headers=bearer(token))).json()
    assert listed["limits"] == {"seats": None, "locations": 4, "api_requests_per_minute": 60}
    assert [(item["value"], item["is_live"], item["ended_by"]) for item in listed["overrides"]] == [
        (None, True, None),
        (12, False, str(superadmin.id)),
    ]
    ended = await client.delete(path, headers=bearer(token))
    assert (ended.status_code, ended.json()["value"], ended.json()["is_live"]) == (200, None, False)
    again = await client.delete(path, headers=bearer(token))
    assert (again.status_code, again.json()["code"]) == (404, "override_not_found")
    listed = (await client.get(f"/admin/api/v1/tenants/{slug}/entitlements", headers=bearer(token))).json()
    assert listed["limits"]["seats"] == 5
    trail = await audit_trail(database, tenant_id)
    assert [(entry["action"], entry["data"].get("replaced")) for entry in trail[-3:]] == [
        ("entitlement.override_set", None),
        ("entitlement.override_set", 12),
        ("entitlement.override_ended", None),
    ]


async def test_bad_overrides_are_422_with_each_field_named(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    _, token = await staff_token(client, database, "support")
    base = f"/admin/api/v1/tenants/{owner['tenant']['slug']}/entitlements"
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    cases = [
        ("teleport", {"value": True, "reason": "x"}, ["key"]),
        ("sso", {"value": 3, "reason": "x"}, ["value"]),
        ("seats", {"value": True, "reason": "x"}, ["value"]),
        ("seats", {"value": -1, "reason": " ", "expires_at": past}, ["value", "reason", "expires_at"]),
    ]
    for key, body, fields in cases:
        response = await client.put(f"{base}/{key}", json=body, headers=bearer(token))
        assert response.status_code == 422, response.text
        assert [error["field"] for error in response.json()["errors"]] == fields, key
    unknown = await client.put(
        "/admin/api/v1/tenants/no-such-store/entitlements/sso",
        json={"value": True, "reason": "x"},
        headers=bearer(token),
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "tenant_not_found")


async def test_only_support_and_superadmins_change_overrides(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    base = f"/admin/api/v1/tenants/{owner['tenant']['slug']}/entitlements"
    _, auditor = await staff_token(client, database, "auditor")
    body = {"value": True, "reason": "x"}
    refused = await client.put(f"{base}/sso", json=body, headers=bearer(auditor))
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    assert (await client.get(base, headers=bearer(auditor))).status_code == 200
    # A store's own owner cannot reach the staff routes at all.
    tenant_token = bearer(owner["token"]["access_token"])
    assert (await client.put(f"{base}/sso", json=body, headers=tenant_token)).status_code == 401


async def test_an_override_on_one_store_does_not_reach_another(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store_a, store_b = await sign_up(client), await sign_up(client)
    _, token = await staff_token(client, database, "support")
    response = await client.put(
        f"/admin/api/v1/tenants/{store_a['tenant']['slug']}/entitlements/sso",
        json={"value": True, "reason": "pilot"},
        headers=bearer(token),
    )
    assert response.status_code == 200
    assert (await _sso_answers(client, store_a))[0] == 422
    assert await _sso_answers(client, store_b) == (402, "feature_not_in_plan", 402, "feature_not_in_plan")
    plan_b = await client.get("/api/v1/billing/plan", headers=bearer(store_b["token"]["access_token"]))
    assert plan_b.json()["overrides"] == []


async def test_a_limit_override_past_the_32_bit_range_is_a_422_naming_the_maximum(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    _, token = await staff_token(client, database, "support")
    path = f"/admin/api/v1/tenants/{owner['tenant']['slug']}/entitlements/locations"
    refused = await client.put(
        path, json={"value": 2_147_483_648, "reason": "deal 42"}, headers=bearer(token)
    )
    assert (refused.status_code, refused.json()["errors"]) == (
        422,
        [
            {
                "field": "value",
                "message": "a limit's override is a whole number from 0 to 2,147,483,647,"
                " or null for unlimited",
            }
        ],
    )
    largest = await client.put(
        path, json={"value": 2_147_483_647, "reason": "deal 42"}, headers=bearer(token)
    )
    assert (largest.status_code, largest.json()["value"]) == (200, 2_147_483_647)


async def test_an_expired_override_is_not_in_force_to_end_nor_to_replace(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    slug, tenant_id = owner["tenant"]["slug"], owner["tenant"]["id"]
    support, token = await staff_token(client, database, "support")
    path = f"/admin/api/v1/tenants/{slug}/entitlements/sso"
    expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    pilot = {"value": True, "reason": "pilot", "expires_at": expires_at.isoformat()}
    assert (await client.put(path, json=pilot, headers=bearer(token))).status_code == 200
    await asyncio.sleep(max(0.0, (expires_at - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)

    ended = await client.delete(path, headers=bearer(token))
    assert (ended.status_code, ended.json()["code"]) == (404, "override_not_found")
    # Nothing ended, so nothing audited: the trail still ends with the override being set.
    assert (await audit_trail(database, tenant_id))[-1]["action"] == "entitlement.override_set"

    again = await client.put(path, json={"value": False, "reason": "pilot over"}, headers=bearer(token))
    assert again.status_code == 200, again.text
    assert (await audit_trail(database, tenant_id))[-1]["data"] == {
        "value": False,
        "reason": "pilot over",
        "expires_at": None,
        "replaced": None,
        "had_override": False,
    }
    # The expired one is history, ended when it expired and by no one.
    listed = (await client.get(f"/admin/api/v1/tenants/{slug}/entitlements", headers=bearer(token))).json()
    live, expired = listed["overrides"]
    assert (live["value"], live["is_live"], live["created_by"], live["ended_at"]) == (
        False,
        True,
        str(support.id),
        None,
    )
    assert (expired["value"], expired["is_live"], expired["ended_by"]) == (True, False, None)
    assert dt.datetime.fromisoformat(expired["ended_at"]) == expires_at
