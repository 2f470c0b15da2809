"""Plan limits in the services: seats (invite, accept, reactivate) and locations; soft limits warn."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from ordersmith.platform.database import Database
from ordersmith.platform.mail import EMAIL_REQUESTED
from ordersmith.platform.models import OutboxEvent
from tests.support.entitlements import set_tenant_billing
from tests.support.http import PASSWORD, bearer, sign_up
from tests.support.mail import queued_email, run_email_producers
from tests.support.members import add_member, invitation_token, invite
from tests.support.staff import staff_token


def _email() -> str:
    return f"person-{uuid.uuid4().hex[:10]}@example.com"


async def _override(
    client: AsyncTestClient[Litestar], database: Database, slug: str, key: str, value: Any
) -> None:
    _, token = await staff_token(client, database, "support")
    response = await client.put(
        f"/admin/api/v1/tenants/{slug}/entitlements/{key}",
        json={"value": value, "reason": "limit test"},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text


def _refusal(response: Any) -> tuple[int, str, dict[str, Any]]:
    body = response.json()
    return (
        response.status_code,
        body["code"],
        {key: body[key] for key in ("limit", "current", "allowed", "plan", "cheapest_plan")},
    )


async def test_pending_invitations_hold_seats_up_to_the_trial_limit(
    client: AsyncTestClient[Litestar],
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    emails = [_email() for _ in range(4)]
    for email in emails:
        await invite(client, headers, email, "agent")
    refused = await client.post(
        "/api/v1/invitations", json={"email": _email(), "role": "agent"}, headers=headers
    )
    assert _refusal(refused) == (
        402,
        "limit_reached",
        {"limit": "seats", "current": 5, "allowed": 5, "plan": "trial", "cheapest_plan": "growth"},
    )
    # Inviting the same address again replaces its invitation: it takes no second seat.
    again = await client.post(
        "/api/v1/invitations", json={"email": emails[0], "role": "viewer"}, headers=headers
    )
    assert again.status_code == 201, again.text
    assert "ordersmith-limit-warning" not in again.headers


async def test_accepting_and_reactivating_are_refused_once_the_plan_has_no_seat_left(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    slug, headers = owner["tenant"]["slug"], bearer(owner["token"]["access_token"])
    member = await add_member(client, database, headers, "agent")
    email = _email()
    await invite(client, headers, email, "viewer")
    deactivated = await client.patch(
        f"/api/v1/users/{member.user_id}", json={"status": "deactivated"}, headers=headers
    )
    assert deactivated.status_code == 200, deactivated.text
    await _override(client, database, slug, "seats", 1)
    accepted = await client.post(
        "/api/v1/invitations/accept",
        json={"token": await invitation_token(database, email), "password": PASSWORD, "full_name": "Late"},
    )
    assert _refusal(accepted) == (
        402,
        "limit_reached",
        {"limit": "seats", "current": 1, "allowed": 1, "plan": "trial", "cheapest_plan": "starter"},
    )
    reactivated = await client.patch(
        f"/api/v1/users/{member.user_id}", json={"status": "active"}, headers=headers
    )
    assert _refusal(reactivated)[:2] == (402, "limit_reached")
    members = (await client.get("/api/v1/users", headers=headers)).json()["data"]
    assert sorted(item["status"] for item in members) == ["active", "deactivated"]


async def test_reactivating_does_not_take_the_seat_a_pending_invitation_holds(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    slug, headers = owner["tenant"]["slug"], bearer(owner["token"]["access_token"])
    member = await add_member(client, database, headers, "agent")
    deactivated = await client.patch(
        f"/api/v1/users/{member.user_id}", json={"status": "deactivated"}, headers=headers
    )
    assert deactivated.status_code == 200, deactivated.text
    await _override(client, database, slug, "seats", 2)
    email = _email()
    await invite(client, headers, email, "viewer")  # the owner and this invitation: 2 seats of 2

    # Seats count as inviting counts them: the invitation's seat is not free to take.
    reactivated = await client.patch(
        f"/api/v1/users/{member.user_id}", json={"status": "active"}, headers=headers
    )
    assert _refusal(reactivated) == (
        402,
        "limit_reached",
        {"limit": "seats", "current": 2, "allowed": 2, "plan": "trial", "cheapest_plan": "starter"},
    )
    accepted = await client.post(
        "/api/v1/invitations/accept",
        json={"token": await invitation_token(database, email), "password": PASSWORD, "full_name": "Late"},
    )
    assert accepted.status_code == 201, accepted.text
    members = (await client.get("/api/v1/users", headers=headers)).json()["data"]
    assert sorted((item["role"], item["status"]) for item in members) == [
        ("agent", "deactivated"),
        ("owner", "active"),
        ("viewer", "active"),
    ]


async def test_locations_past_the_limit_are_refused_and_so_is_reactivating_one(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    slug, headers = owner["tenant"]["slug"], bearer(owner["token"]["access_token"])
    await _override(client, database, slug, "locations", 1)

    async def add(code: str) -> Any:
        return await client.post(
            "/api/v1/locations", json={"code": code, "name": code, "kind": "warehouse"}, headers=headers
        )

    first = await add("WH-1")
    assert first.status_code == 201, first.text
    assert _refusal(await add("WH-2")) == (
        402,
        "limit_reached",
        {"limit": "locations", "current": 1, "allowed": 1, "plan": "trial", "cheapest_plan": "growth"},
    )
    # An inactive location holds no place: deactivate one, and another fits.
    path = f"/api/v1/locations/{first.json()['id']}"
    assert (await client.patch(path, json={"is_active": False}, headers=headers)).status_code == 200
    assert (await add("WH-2")).status_code == 201
    reactivated = await client.patch(path, json={"is_active": True}, headers=headers)
    assert _refusal(reactivated)[:2] == (402, "limit_reached")
    renamed = await client.patch(path, json={"name": "Old warehouse"}, headers=headers)
    assert (renamed.status_code, renamed.json()["is_active"]) == (200, False)


async def _limit_emails(database: Database, to: str) -> int:
    await run_email_producers(database)
    async with database.platform_session() as session:
        count = await session.scalar(
            select(func.count()).where(
                OutboxEvent.topic == EMAIL_REQUESTED,
                OutboxEvent.payload["to"].astext == to,
                OutboxEvent.payload["template"].astext == "limit_exceeded",
            )
        )
    return int(count or 0)


async def test_a_soft_limit_lets_the_change_through_warns_and_tells_the_admins_once(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client, company_name="Soft Seats Co")
    slug, headers = owner["tenant"]["slug"], bearer(owner["token"]["access_token"])
    # Seats are soft on Growth; an override makes the limit small enough to pass.
    await set_tenant_billing(database, owner["tenant"]["id"], plan="growth")
    await _override(client, database, slug, "seats", 1)
    first = await client.post(
        "/api/v1/invitations", json={"email": _email(), "role": "agent"}, headers=headers
    )
    assert first.status_code == 201, first.text
    assert first.headers["ordersmith-limit-warning"] == 'seats;used=2;allowed=1;plan="growth"'
    email = await queued_email(database, owner["email"], "limit_exceeded")
    assert email.context() == {
        "store_name": "Soft Seats Co",
        "limit": "seats",
        "used": 2,
        "allowed": 1,
        "plan_name": "Growth",
    }
    second = await client.post(
        "/api/v1/invitations", json={"email": _email(), "role": "agent"}, headers=headers
    )
    assert second.status_code == 201
    assert second.headers["ordersmith-limit-warning"] == 'seats;used=3;allowed=1;plan="growth"'
    # Admins hear of the crossing, not of every seat after it.
    assert await _limit_emails(database, owner["email"]) == 1
