"""Vendor staff sign-in over HTTP, and the wall between the staff and tenant realms."""

from __future__ import annotations

import uuid

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.errors import ValidationFailedError
from ordersmith.platform.identity.models import AuditEntry, StaffAccount
from ordersmith.platform.identity.staff import StaffEmailTakenError, create_staff_account
from tests.support.http import PASSWORD, bearer, sign_up
from tests.support.staff import create_staff, staff_token

BAD_CREDENTIALS = "the email and password do not match an active staff account; check them"


async def _platform_entries(
    database: Database, email: str
) -> list[tuple[str, str | None, dict[str, object]]]:
    async with database.platform_session() as session:
        rows = (
            await session.execute(
                select(AuditEntry)
                .where(AuditEntry.chain == "platform", AuditEntry.data["email"].astext == email)
                .order_by(AuditEntry.id)
            )
        ).scalars()
        return [(row.action, row.actor_type, row.data) for row in rows]


async def test_a_staff_member_signs_in_for_a_15_minute_staff_token(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    member = await create_staff(database, "support")
    response = await client.post(
        "/admin/api/v1/auth/token", json={"email": member.email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] in range(895, 901)
    assert (body["staff_id"], body["role"]) == (str(member.id), "support")

    me = await client.get("/admin/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json() == {"staff_id": str(member.id), "role": "support"}

    async with database.platform_session() as session:
        signed_in = (
            await session.execute(
                select(AuditEntry).where(
                    AuditEntry.chain == "platform",
                    AuditEntry.action == "staff.signed_in",
                    AuditEntry.actor_id == str(member.id),
                )
            )
        ).scalar_one()
    assert (signed_in.tenant_id, signed_in.actor_type, signed_in.client_address) == (
        None,
        "staff",
        "testclient",
    )


async def test_a_wrong_password_is_401_and_audited_in_the_platform_chain(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    member = await create_staff(database, "auditor")
    response = await client.post(
        "/admin/api/v1/auth/token", json={"email": member.email, "password": "Wrong-Horse-Battery-7"}
    )
    assert response.status_code == 401
    assert (response.json()["code"], response.json()["detail"]) == ("invalid_credentials", BAD_CREDENTIALS)

    unknown = f"nobody-{uuid.uuid4().hex[:8]}@vendor.example.com"
    response = await client.post("/admin/api/v1/auth/token", json={"email": unknown, "password": PASSWORD})
    assert response.status_code == 401
    assert (response.json()["code"], response.json()["detail"]) == ("invalid_credentials", BAD_CREDENTIALS)

    assert await _platform_entries(database, member.email) == [
        ("staff.created", "system", {"email": member.email, "role": "auditor"}),
        ("staff.sign_in_failed", "staff", {"email": member.email, "reason": "bad_password"}),
    ]
    assert await _platform_entries(database, unknown) == [
        ("staff.sign_in_failed", "anonymous", {"email": unknown, "reason": "bad_password"}),
    ]


async def test_a_deactivated_staff_account_cannot_sign_in_nor_use_its_token(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    member, token = await staff_token(client, database, "superadmin")
    async with database.platform_session() as session:
        account = await session.get(StaffAccount, member.id)
        assert account is not None
        account.is_active = False

    response = await client.post(
        "/admin/api/v1/auth/token", json={"email": member.email, "password": PASSWORD}
    )
    assert (response.status_code, response.json()["code"]) == (401, "invalid_credentials")
    me = await client.get("/admin/api/v1/me", headers=bearer(token))
    assert me.status_code == 401
    assert me.json()["detail"] == "this staff account is not active; sign in again or use a valid API key"
    assert (await _platform_entries(database, member.email))[-1] == (
        "staff.sign_in_failed",
        "staff",
        {"email": member.email, "reason": "inactive"},
    )


async def test_repeated_failures_slow_staff_sign_in_down(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    member = await create_staff(database, "support")
    for _ in range(4):
        response = await client.post(
            "/admin/api/v1/auth/token", json={"email": member.email, "password": "Wrong-Horse-Battery-7"}
        )
        assert response.status_code == 401
    # Even the right password must wait after the fourth failure.
    response = await client.post(
        "/admin/api/v1/auth/token", json={"email": member.email, "password": PASSWORD}
    )
    assert response.status_code == 429
    assert response.json()["code"] == "too_many_attempts"
    assert response.headers["retry-after"] == "1"


async def test_tenant_credentials_never_open_staff_routes(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_token = owner["token"]["access_token"]
    for method, path in [
        ("GET", "/admin/api/v1/me"),
        ("GET", "/admin/api/v1/support-grants"),
        ("POST", f"/admin/api/v1/tenants/{owner['tenant']['slug']}/support-grants"),
        ("GET", f"/admin/api/v1/tenants/{owner['tenant']['slug']}/store"),
    ]:
        response = await client.request(method, path, headers=bearer(tenant_token), json={"reason": "x"})
        assert response.status_code == 401, (method, path)
        assert response.json()["code"] == "unauthenticated"
        assert response.json()["detail"] == (
            "the staff access token is invalid or expired; sign in again or use a valid API key"
        )

    anonymous = await client.get("/admin/api/v1/me")
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"] == "staff routes need 'Authorization: Bearer <staff access token>'"


async def test_staff_tokens_never_open_tenant_routes(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    _, token = await staff_token(client, database, "superadmin")
    for path in ["/api/v1/me", "/api/v1/store", "/api/v1/audit-log", "/api/v1/support-grants"]:
        response = await client.get(path, headers=bearer(token))
        assert response.status_code == 401, path
        assert response.json()["detail"] == (
            "the access token is invalid or expired; sign in again or use a valid API key"
        )


async def test_staff_emails_are_unique_and_passwords_follow_the_rules(database: Database) -> None:
    member = await create_staff(database, "support")
    with pytest.raises(StaffEmailTakenError) as taken:
        await create_staff_account(database, email=member.email.upper(), role="auditor", password=PASSWORD)
    assert (
        taken.value.detail
        == f"a staff account with the email {member.email!r} already exists; use another address"
    )

    with pytest.raises(ValidationFailedError) as invalid:
        await create_staff_account(database, email="not-an-email", role="janitor", password="short")
    assert [(item.field, item.message) for item in invalid.value.errors] == [
        ("email", "must be an email address like name@example.com"),
        ("role", "must be one of support, auditor, superadmin"),
    ]
