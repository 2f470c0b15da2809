"""API keys: shown once, stored hashed, scoped to their creator's permissions, revocable."""

from __future__ import annotations

import re
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import ApiKey
from ordersmith.platform.identity.tokens import secret_hash
from tests.support.http import bearer, sign_up
from tests.support.members import add_member, audit_trail, invitation_email, last_audit_id


async def test_a_key_is_shown_once_and_stored_hashed(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "  Warehouse sync ", "scopes": ["orders.read", "inventory.write", "orders.read"]},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key, api_key = body["key"], body["api_key"]
    match = re.fullmatch(r"osk_([a-z0-9]{8})_[A-Za-z0-9_-]{43}", key)
    assert match is not None, key
    assert api_key["prefix"] == match[1]
    assert api_key["name"] == "Warehouse sync"
    assert api_key["scopes"] == ["inventory.write", "orders.read"]
    assert api_key["created_by"] == owner["user_id"]
    assert (api_key["last_used_at"], api_key["revoked_at"]) == (None, None)

    async with database.platform_session() as session:
        stored = await session.scalar(select(ApiKey).where(ApiKey.id == uuid.UUID(api_key["id"])))
    assert stored is not None
    assert stored.secret_hash == secret_hash(key)
    assert key.encode() not in stored.secret_hash

    assert (await client.get("/api/v1/me", headers=bearer(key))).status_code == 200
    listed = await client.get("/api/v1/api-keys", headers=headers)
    assert listed.json()["next_cursor"] is None
    [row] = listed.json()["data"]
    assert "key" not in row
    assert key not in listed.text
    assert row["last_used_at"] is not None
    assert {name: row[name] for name in ("id", "name", "prefix", "scopes", "revoked_at")} == {
        "id": api_key["id"],
        "name": "Warehouse sync",
        "prefix": match[1],
        "scopes": ["inventory.write", "orders.read"],
        "revoked_at": None,
    }
    assert (await client.get(f"/api/v1/api-keys/{api_key['id']}", headers=headers)).json() == row


async def test_scopes_must_be_known_and_held_by_the_creator(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    unknown = await client.post(
        "/api/v1/api-keys",
        json={"name": "", "scopes": ["orders.read", "orders.delete", "root"]},
        headers=headers,
    )
    assert unknown.status_code == 422
    assert [error["field"] for error in unknown.json()["errors"]] == ["name", "scopes"]
    assert unknown.json()["errors"][1]["message"].startswith(
        "unknown permissions: orders.delete, root; known ones are "
    )
    empty = await client.post("/api/v1/api-keys", json={"name": "Nothing", "scopes": []}, headers=headers)
    assert empty.json()["errors"] == [
        {"field": "scopes", "message": "list at least one permission the key needs, e.g. orders.read"}
    ]

    admin = await add_member(client, database, headers, "admin")
    beyond = await client.post(
        "/api/v1/api-keys",
        json={"name": "Billing bot", "scopes": ["orders.read", "billing.manage"]},
        headers=admin.headers,
    )
    assert (beyond.status_code, beyond.json()["code"]) == (403, "permission_denied")
    assert beyond.json()["detail"] == (
        "a key cannot do more than whoever creates it; drop the scopes you do not hold: billing.manage"
    )
    # A key may create keys only within its own scopes.
    manager_key = (
        await client.post(
            "/api/v1/api-keys",
            json={"name": "Key maker", "scopes": ["api_keys.manage", "orders.read"]},
            headers=headers,
        )
    ).json()["key"]
    narrower = await client.post(
        "/api/v1/api-keys", json={"name": "Child", "scopes": ["orders.read"]}, headers=bearer(manager_key)
    )
    assert narrower.status_code == 201
    # Made by a key, it answers to the person who made that key.
    assert narrower.json()["api_key"]["created_by"] == owner["user_id"]
    wider = await client.post(
        "/api/v1/api-keys", json={"name": "Child", "scopes": ["orders.write"]}, headers=bearer(manager_key)
    )
    assert wider.status_code == 403


async def test_a_revoked_key_is_refused_at_once(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_id = owner["tenant"]["id"]
    headers = bearer(owner["token"]["access_token"])
    since = await last_audit_id(database, tenant_id)
    created = (
        await client.post(
            "/api/v1/api-keys", json={"name": "Old feed", "scopes": ["settings.read"]}, headers=headers
        )
    ).json()
    key_id, key_headers = created["api_key"]["id"], bearer(created["key"])
    assert (await client.get("/api/v1/store", headers=key_headers)).status_code == 200

    assert (await client.delete(f"/api/v1/api-keys/{key_id}", headers=headers)).status_code == 204
    refused = await client.get("/api/v1/store", headers=key_headers)
    assert (refused.status_code, refused.json()["code"]) == (401, "unauthenticated")
    assert refused.json()["detail"] == "the API key was revoked; sign in again or use a valid API key"
    assert (await client.delete(f"/api/v1/api-keys/{key_id}", headers=headers)).status_code == 204
    listed = (await client.get(f"/api/v1/api-keys/{key_id}", headers=headers)).json()
    assert listed["revoked_at"] is not None
    for missing in ("nope", str(uuid.uuid4())):
        response = await client.delete(f"/api/v1/api-keys/{missing}", headers=headers)
        assert response.status_code == 404

    assert await audit_trail(database, tenant_id, since=since) == [
        {
            "action": "api_key.created",
            "actor_type": "user",
            "actor_id": owner["user_id"],
            "target_type": "api_key",
            "target_id": key_id,
            "data": {"name": "Old feed", "prefix": created["api_key"]["prefix"], "scopes": ["settings.read"]},
        },
        {
            "action": "api_key.revoked",
            "actor_type": "user",
            "actor_id": owner["user_id"],
            "target_type": "api_key",
            "target_id": key_id,
            "data": {"name": "Old feed", "prefix": created["api_key"]["prefix"]},
        },
    ]


async def test_a_key_that_manages_users_acts_in_its_own_name(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client, company_name="Keyed Shop")
    headers = bearer(owner["token"]["access_token"])
    created = (
        await client.post(
            "/api/v1/api-keys", json={"name": "HR sync", "scopes": ["users.manage"]}, headers=headers
        )
    ).json()
    key_headers = bearer(created["key"])
    since = await last_audit_id(database, owner["tenant"]["id"])
    email = f"hire-{uuid.uuid4().hex[:8]}@example.com"
    invited = await client.post(
        "/api/v1/invitations", json={"email": email, "role": "agent"}, headers=key_headers
    )
    assert invited.status_code == 201
    # Sent in the name of the person the key answers to (the audit trail names the key).
    assert invited.json()["invited_by"] == owner["user_id"]
    assert (await invitation_email(database, email))["inviter_email"] == owner["email"]
    # A key has no role, so it can never touch owners.
    as_owner = await client.post(
        "/api/v1/invitations", json={"email": _other(), "role": "owner"}, headers=key_headers
    )
    assert as_owner.status_code == 403
    [entry] = await audit_trail(database, owner["tenant"]["id"], since=since)
    assert (entry["action"], entry["actor_type"], entry["actor_id"]) == (
        "invitation.created",
        "api_key",
        created["api_key"]["id"],
    )


def _other() -> str:
    return f"other-{uuid.uuid4().hex[:8]}@example.com"
