"""Helpers for tests about a store's people: invite, accept, read the audit trail."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import AuditEntry
from tests.support.http import PASSWORD, bearer
from tests.support.mail import queued_email, token_in


@dataclass(frozen=True)
class Member:
    """A person who joined a store through an invitation, signed in."""

    user_id: str
    email: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


async def invitation_email(database: Database, email: str) -> dict[str, Any]:
    """The context of the newest invitation email queued for an address, its link unsealed."""
    return (await queued_email(database, email, "invitation")).context()


async def invitation_token(database: Database, email: str) -> str:
    """The raw token of the newest invitation sent to an address, read from its link."""
    link: str = (await invitation_email(database, email))["link"]
    return parse_qs(urlsplit(link).query)["token"][0]


async def invite(
    client: AsyncTestClient[Litestar], headers: dict[str, str], email: str, role: str
) -> dict[str, Any]:
    """Invite an address to the store of `headers`; returns the invitation."""
    response = await client.post("/api/v1/invitations", json={"email": email, "role": role}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def add_member(
    client: AsyncTestClient[Litestar],
    database: Database,
    headers: dict[str, str],
    role: str,
    email: str | None = None,
) -> Member:
    """Invite a new person with `role`, accept as them, and return them signed in."""
    email = email or f"{role}-{uuid.uuid4().hex[:10]}@example.com"
    await invite(client, headers, email, role)
    token = await invitation_token(database, email)
    response = await client.post(
        "/api/v1/invitations/accept", json={"token": token, "password": PASSWORD, "full_name": "New Person"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Member(
        body["user_id"], email, body["role"], body["token"]["access_token"], body["token"]["refresh_token"]
    )


async def audit_trail(database: Database, tenant_id: str, *, since: int = 0) -> list[dict[str, Any]]:
    """A tenant's audit entries after id `since`, oldest first, as plain dicts."""
    async with database.platform_session() as session:
        entries = (
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.tenant_id == uuid.UUID(tenant_id), AuditEntry.id > since)
                .order_by(AuditEntry.id)
            )
        ).all()
    return [
        {
            "action": entry.action,
            "actor_type": entry.actor_type,
            "actor_id": entry.actor_id,
            "target_type": entry.target_type,
            "target_id": entry.target_id,
            "data": entry.data,
        }
        for entry in entries
    ]


async def last_audit_id(database: Database, tenant_id: str) -> int:
    """The id of a tenant's newest audit entry (0 when there is none)."""
    async with database.platform_session() as session:
        newest = await session.scalar(
            select(AuditEntry.id)
            .where(AuditEntry.tenant_id == uuid.UUID(tenant_id))
            .order_by(AuditEntry.id.desc())
            .limit(1)
        )
    return newest or 0


async def verify_email(client: AsyncTestClient[Litestar], database: Database, email: str) -> None:
    """Confirm an address with the newest verification link emailed to it, as its owner would."""
    link = (await queued_email(database, email, "verify_email")).context()["link"]
    response = await client.post("/api/v1/auth/verify-email", json={"token": token_in(link)})
    assert response.status_code == 200, response.text
