"""Support grants over HTTP: staff reach a tenant's data only through an active grant of their own."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import SupportGrant
from ordersmith.tenants.store.service import MAX_REVIEW_THRESHOLD
from tests.support.http import bearer, sign_up
from tests.support.staff import staff_token

STORE = {
    "display_name": "Acme Outdoor",
    "default_currency": "EUR",
    "timezone": "UTC",
    "review_orders_over_amount": None,
    "review_first_orders": False,
}


async def _grant(client: AsyncTestClient[Litestar], token: str, slug: str, **body: Any) -> dict[str, Any]:
    body = {"reason": "ticket 4711: orders stuck", "minutes": 30, **body}
    response = await client.post(
        f"/admin/api/v1/tenants/{slug}/support-grants", json=body, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _tenant_audit(
    client: AsyncTestClient[Litestar], owner_token: str, **query: str
) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/v1/audit-log", params={"limit": "200", **query}, headers=bearer(owner_token)
    )
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["data"]
    return entries


def _required(slug: str, *, had_grant: bool = False) -> str:
    ended = (
        f"your last support grant for store {slug!r} has expired or was revoked"
        if had_grant
        else f"you have no support grant for store {slug!r}"
    )
    return f"{ended}; request one with a reason, then try again"


async def test_the_whole_support_flow_is_granted_elevated_revoked_and_visible_to_the_tenant(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client, company_name="Acme Outdoor")
    slug, owner_token = owner["tenant"]["slug"], owner["token"]["access_token"]
    store_path = f"/admin/api/v1/tenants/{slug}/store"
    support, support_token = await staff_token(client, database, "support")
    boss, boss_token = await staff_token(client, database, "superadmin")

    # No grant: no data, and the attempt is on the tenant's record.
    response = await client.get(store_path, headers=bearer(support_token))
    assert response.status_code == 403
    assert (response.json()["code"], response.json()["detail"]) == ("support_grant_required", _required(slug))

    before = dt.datetime.now(dt.UTC)
    grant = await _grant(client, support_token, slug)
    assert {key: grant[key] for key in grant if key not in ("id", "created_at", "expires_at")} == {
        "staff_id": str(support.id),
        "staff_email": support.email,
        "tenant_id": owner["tenant"]["id"],
        "tenant_slug": slug,
        "reason": "ticket 4711: orders stuck",
        "access": "read_only",
        "elevated_by": None,
        "revoked_at": None,
        "is_active": True,
    }
    created_at = dt.datetime.fromisoformat(grant["created_at"])
    assert before <= created_at <= dt.datetime.now(dt.UTC)
    assert dt.datetime.fromisoformat(grant["expires_at"]) - created_at == dt.timedelta(minutes=30)

    response = await client.get(store_path, headers=bearer(support_token))
    assert response.status_code == 200, response.text
    assert response.json() == STORE

    response = await client.patch(store_path, json={"display_name": "Fixed"}, headers=bearer(support_token))
    assert response.status_code == 403
    assert (response.json()["code"], response.json()["detail"]) == (
        "support_grant_read_only",
        f"your support grant {grant['id']} for store {slug!r} is read-only; "
        "ask a superadmin other than the holder to elevate it to read_write",
    )

    # Support cannot elevate; a superadmin can.
    response = await client.post(
        f"/admin/api/v1/support-grants/{grant['id']}/elevate", headers=bearer(support_token)
    )
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    response = await client.post(
        f"/admin/api/v1/support-grants/{grant['id']}/elevate", headers=bearer(boss_token)
    )
    assert response.status_code == 200, response.text
    assert (response.json()["access"], response.json()["elevated_by"]) == ("read_write", str(boss.id))

    response = await client.patch(
        store_path, json={"display_name": "Fixed by support"}, headers=bearer(support_token)
    )
    assert response.status_code == 200, response.text
    assert response.json() == {**STORE, "display_name": "Fixed by support"}
    own_view = await client.get("/api/v1/store", headers=bearer(owner_token))
    assert own_view.json()["display_name"] == "Fixed by support"

    response = await client.delete(
        f"/admin/api/v1/support-grants/{grant['id']}", headers=bearer(support_token)
    )
    assert response.status_code == 200, response.text
    assert (response.json()["is_active"], response.json()["revoked_at"] is not None) == (False, True)
    response = await client.get(store_path, headers=bearer(support_token))
    assert (response.status_code, response.json()["code"]) == (403, "support_grant_required")
    assert response.json()["detail"] == _required(slug, had_grant=True)

    # The tenant's admins see the grant ...
    response = await client.get("/api/v1/support-grants", headers=bearer(owner_token))
    assert response.status_code == 200, response.text
    listed = response.json()
    assert listed["next_cursor"] is None
    [seen] = listed["data"]
    assert seen == {
        "id": grant["id"],
        "staff_email": support.email,
        "reason": "ticket 4711: orders stuck",
        "access": "read_write",
        "created_at": grant["created_at"],
        "expires_at": grant["expires_at"],
        "revoked_at": seen["revoked_at"],
        "is_active": False,
    }
    assert seen["revoked_at"] is not None

    # ... and every step of it, in their own audit trail.
    support_entries = [
        entry for entry in await _tenant_audit(client, owner_token) if entry["actor_type"] == "staff"
    ]
    get, patch = {"method": "GET", "path": store_path}, {"method": "PATCH", "path": store_path}
    assert [(entry["action"], entry["actor_id"], entry["data"]) for entry in reversed(support_entries)] == [
        ("support.access_denied", str(support.id), {**get, "reason": "support_grant_required"}),
        (
            "support.grant_created",
            str(support.id),
            {"grant_id": grant["id"], "reason": "ticket 4711: orders stuck", "minutes": 30},
        ),
        ("support.accessed", str(support.id), {"grant_id": grant["id"], **get}),
        ("support.access_denied", str(support.id), {**patch, "reason": "support_grant_read_only"}),
        ("support.grant_elevated", str(boss.id), {"grant_id": grant["id"], "staff_id": str(support.id)}),
        ("support.accessed", str(support.id), {"grant_id": grant["id"], **patch}),
        (
            "store.profile_changed",
            str(support.id),
            {"changes": {"display_name": {"old": "Acme Outdoor", "new": "Fixed by support"}}},
        ),
        ("support.grant_revoked", str(support.id), {"grant_id": grant["id"]}),
        ("support.access_denied", str(support.id), {**get, "reason": "support_grant_required"}),
    ]
    assert {entry["client_address"] for entry in support_entries} == {"testclient"}
    accessed = await _tenant_audit(client, owner_token, action="support.accessed")
    assert [entry["data"]["method"] for entry in accessed] == ["PATCH", "GET"]


async def test_a_read_write_grant_changes_every_store_field_the_tenant_can(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client, company_name="Acme Outdoor")
    slug, owner_token = owner["tenant"]["slug"], owner["token"]["access_token"]
    store_path = f"/admin/api/v1/tenants/{slug}/store"
    _, support_token = await staff_token(client, database, "support")
    _, boss_token = await staff_token(client, database, "superadmin")
    grant = await _grant(client, support_token, slug, reason="ticket 4712: hold first orders for review")
    response = await client.post(
        f"/admin/api/v1/support-grants/{grant['id']}/elevate", headers=bearer(boss_token)
    )
    assert response.status_code == 200, response.text

    # The staff route takes the tenant's body and applies all of it, the review rules too.
    response = await client.patch(
        store_path,
        json={"review_first_orders": True, "review_orders_over_amount": 50000},
        headers=bearer(support_token),
    )
    assert response.status_code == 200, response.text
    changed = {**STORE, "review_first_orders": True, "review_orders_over_amount": 50000}
    assert response.json() == changed
    assert (await client.get("/api/v1/store", headers=bearer(owner_token))).json() == changed

    # Absent leaves the threshold as it is; null turns it off, as on the tenant's own route.
    response = await client.patch(
        store_path, json={"timezone": "Europe/Paris"}, headers=bearer(support_token)
    )
    assert response.json() == {**changed, "timezone": "Europe/Paris"}
    response = await client.patch(
        store_path, json={"review_orders_over_amount": None}, headers=bearer(support_token)
    )
    assert response.json() == {**changed, "timezone": "Europe/Paris", "review_orders_over_amount": None}

    response = await client.patch(
        store_path, json={"review_orders_over_amount": 0}, headers=bearer(support_token)
    )
    assert (response.status_code, response.json()["errors"]) == (
        422,
        [
            {
                "field": "review_orders_over_amount",
                "message": f"must be a whole amount in minor units from 1 to {MAX_REVIEW_THRESHOLD}, "
                "or null to hold no order for review",
            }
        ],
    )
    changes = [
        entry["data"]["changes"]
        for entry in reversed(await _tenant_audit(client, owner_token, action="store.profile_changed"))
    ]
    assert changes == [
        {
            "review_first_orders": {"old": False, "new": True},
            "review_orders_over_amount": {"old": None, "new": 50000},
        },
        {"timezone": {"old": "UTC", "new": "Europe/Paris"}},
        {"review_orders_over_amount": {"old": 50000, "new": None}},
    ]


async def test_an_expired_grant_opens_nothing(client: AsyncTestClient[Litestar], database: Database) -> None:
    owner = await sign_up(client)
    slug = owner["tenant"]["slug"]
    _, token = await staff_token(client, database, "support")
    grant = await _grant(client, token, slug, minutes=5)
    async with database.platform_session() as session:
        await session.execute(
            update(SupportGrant)
            .where(SupportGrant.id == uuid.UUID(grant["id"]))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    response = await client.get(f"/admin/api/v1/tenants/{slug}/store", headers=bearer(token))
    assert response.status_code == 403
    assert (response.json()["code"], response.json()["detail"]) == (
        "support_grant_required",
        _required(slug, had_grant=True),
    )
    _, boss_token = await staff_token(client, database, "superadmin")
    response = await client.post(
        f"/admin/api/v1/support-grants/{grant['id']}/elevate", headers=bearer(boss_token)
    )
    assert response.status_code == 409
    assert (response.json()["code"], response.json()["detail"]) == (
        "support_grant_inactive",
        f"support grant {grant['id']} has expired or was revoked; its holder must request a new one",
    )
    listed = await client.get("/api/v1/support-grants", headers=bearer(owner["token"]["access_token"]))
    assert [(item["id"], item["is_active"]) for item in listed.json()["data"]] == [(grant["id"], False)]


async def test_a_grant_is_personal_and_for_one_tenant_only(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    first, second = await sign_up(client), await sign_up(client)
    _, holder_token = await staff_token(client, database, "support")
    _, colleague_token = await staff_token(client, database, "support")
    grant = await _grant(client, holder_token, first["tenant"]["slug"])

    other_store = await client.get(
        f"/admin/api/v1/tenants/{second['tenant']['slug']}/store", headers=bearer(holder_token)
    )
    assert (other_store.status_code, other_store.json()["code"]) == (403, "support_grant_required")
    colleague = await client.get(
        f"/admin/api/v1/tenants/{first['tenant']['slug']}/store", headers=bearer(colleague_token)
    )
    assert (colleague.status_code, colleague.json()["code"]) == (403, "support_grant_required")
    revoke = await client.delete(
        f"/admin/api/v1/support-grants/{grant['id']}", headers=bearer(colleague_token)
    )
    assert revoke.status_code == 403
    assert revoke.json()["detail"] == "only the grant's holder or a superadmin may revoke it"

    # Tenant B's admins see neither tenant A's grant nor the access attempts on tenant A.
    second_token = second["token"]["access_token"]
    grants = await client.get("/api/v1/support-grants", headers=bearer(second_token))
    assert grants.json() == {"data": [], "next_cursor": None}
    assert [entry["action"] for entry in await _tenant_audit(client, second_token)] == [
        "support.access_denied",
        "tenant.signed_up",
    ]
    first_actions = [entry["action"] for entry in await _tenant_audit(client, first["token"]["access_token"])]
    assert first_actions == ["support.access_denied", "support.grant_created", "tenant.signed_up"]


async def test_who_may_request_elevate_and_revoke(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    slug = owner["tenant"]["slug"]
    _, auditor_token = await staff_token(client, database, "auditor")
    boss, boss_token = await staff_token(client, database, "superadmin")
    _, other_boss_token = await staff_token(client, database, "superadmin")

    response = await client.post(
        f"/admin/api/v1/tenants/{slug}/support-grants", json={"reason": "look"}, headers=bearer(auditor_token)
    )
    assert response.status_code == 403
    assert (response.json()["code"], response.json()["detail"]) == (
        "permission_denied",
        "this needs a staff role among superadmin, support; yours is 'auditor'",
    )
    auditor_read = await client.get(f"/admin/api/v1/tenants/{slug}/store", headers=bearer(auditor_token))
    assert auditor_read.status_code == 403

    # A superadmin too needs a grant, and cannot make their own grant read_write.
    grant = await _grant(client, boss_token, slug, minutes=480)
    assert grant["staff_id"] == str(boss.id)
    response = await client.post(
        f"/admin/api/v1/support-grants/{grant['id']}/elevate", headers=bearer(boss_token)
    )
    assert response.status_code == 403
    assert (response.json()["code"], response.json()["detail"]) == (
        "support_grant_self_elevation",
        "a grant cannot be elevated by its own holder; ask another superadmin",
    )
    response = await client.delete(
        f"/admin/api/v1/support-grants/{grant['id']}", headers=bearer(other_boss_token)
    )
    assert (response.status_code, response.json()["is_active"]) == (200, False)
    again = await client.delete(f"/admin/api/v1/support-grants/{grant['id']}", headers=bearer(boss_token))
    assert (again.status_code, again.json()["revoked_at"]) == (200, response.json()["revoked_at"])
    revoked = await _tenant_audit(client, owner["token"]["access_token"], action="support.grant_revoked")
    assert len(revoked) == 1

    missing = str(uuid.uuid4())
    for path in [f"/admin/api/v1/support-grants/{missing}", "/admin/api/v1/support-grants/not-an-id"]:
        response = await client.delete(path, headers=bearer(boss_token))
        assert (response.status_code, response.json()["code"]) == (404, "support_grant_not_found")
    response = await client.get("/admin/api/v1/tenants/no-such-store/store", headers=bearer(boss_token))
    assert (response.status_code, response.json()["code"]) == (404, "tenant_not_found")


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"minutes": 30}, [("reason", "say why you need access, e.g. the ticket you are working on")]),
        (
            {"reason": "   ", "minutes": 30},
            [("reason", "say why you need access, e.g. the ticket you are working on")],
        ),
        ({"reason": "t-1", "minutes": 0}, [("minutes", "must be from 1 to 480 (8 hours)")]),
        ({"reason": "t-1", "minutes": 481}, [("minutes", "must be from 1 to 480 (8 hours)")]),
    ],
)
async def test_a_grant_needs_a_reason_and_a_bounded_duration(
    client: AsyncTestClient[Litestar],
    database: Database,
    tenant: Any,
    body: dict[str, Any],
    errors: list[Any],
) -> None:
    _, token = await staff_token(client, database, "support")
    response = await client.post(
        f"/admin/api/v1/tenants/{tenant.slug}/support-grants", json=body, headers=bearer(token)
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"
    assert [(item["field"], item["message"]) for item in response.json()["errors"]] == errors


async def test_staff_list_grants_by_tenant_and_state(
    client: AsyncTestClient[Litestar], database: Database, tenant: Any
) -> None:
    _, token = await staff_token(client, database, "support")
    _, auditor_token = await staff_token(client, database, "auditor")
    older = await _grant(client, token, tenant.slug, reason="first")
    newer = await _grant(client, token, tenant.slug, reason="second")
    await client.delete(f"/admin/api/v1/support-grants/{older['id']}", headers=bearer(token))

    page = await client.get(
        "/admin/api/v1/support-grants",
        params={"tenant": tenant.slug, "limit": "1"},
        headers=bearer(auditor_token),
    )
    assert page.status_code == 200, page.text
    assert [item["reason"] for item in page.json()["data"]] == ["second"]
    rest = await client.get(
        "/admin/api/v1/support-grants",
        params={"tenant": tenant.slug, "limit": "1", "cursor": page.json()["next_cursor"]},
        headers=bearer(auditor_token),
    )
    assert ([item["reason"] for item in rest.json()["data"]], rest.json()["next_cursor"]) == (["first"], None)
    active = await client.get(
        "/admin/api/v1/support-grants",
        params={"tenant": tenant.slug, "is_active": "true"},
        headers=bearer(token),
    )
    assert [item["id"] for item in active.json()["data"]] == [newer["id"]]
    inactive = await client.get(
        "/admin/api/v1/support-grants",
        params={"tenant": tenant.slug, "is_active": "false"},
        headers=bearer(token),
    )
    assert [item["id"] for item in inactive.json()["data"]] == [older["id"]]
