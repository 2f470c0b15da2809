"""Vendor staff for tests: accounts made through the service, tokens through HTTP."""

from __future__ import annotations

import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from ordersmith.platform.identity.staff import StaffMember, create_staff_account
from tests.support.http import PASSWORD


async def create_staff(database: Database, role: str, *, email: str | None = None) -> StaffMember:
    """A new staff account with the tests' password."""
    email = email or f"{role}-{uuid.uuid4().hex[:10]}@vendor.example.com"
    return await create_staff_account(
        database, email=email, role=role, password=PASSWORD, full_name=role.title()
    )


async def staff_sign_in(client: AsyncTestClient[Litestar], email: str, password: str = PASSWORD) -> str:
    """A staff access token."""
    response = await client.post("/admin/api/v1/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def staff_token(
    client: AsyncTestClient[Litestar], database: Database, role: str
) -> tuple[StaffMember, str]:
    """A new staff member of `role`, signed in."""
    member = await create_staff(database, role)
    return member, await staff_sign_in(client, member.email)
