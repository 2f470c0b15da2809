"""What a member leaves behind: their API keys and invitations follow their status and role."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, update

from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import Membership
from tests.support.http import PASSWORD, bearer, sign_up
from tests.support.members import add_member, audit_trail, invitation_token, invite, last_audit_id

REVOKED = "the API key was revoked; sign in again or use a valid API key"
CREATOR_GONE = (
    "the person who created this API key no longer has access to this store; "
    "sign in again or use a valid API key"
)
WITHDRAWN = "this invitation was withdrawn; ask the store's admin to invite you again"


async def _key(
    client: AsyncTestClient[Litestar], headers: dict[str, str], name: str, scopes: list[str]
) -> dict[str, Any]:
    response = await client.post("/api/v1/api-keys", json={"name": name, "scopes": scopes}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return {**created["api_key"], "headers": bearer(created["key"])}


async def _me(client: AsyncTestClient[Litestar], key: dict[str, Any]) -> tuple[int, Any]:
    response = await client.get("/api/v1/me", headers=key["headers"])
    body = response.json()
    return response.status_code, body["permissions"] if response.status_code == 200 else body["detail"]


async def _accept(client: AsyncTestClient[Litestar], database: Database, email: str) -> tuple[int, str, str]:
    token = await invitation_token(database, email)
    response = await client.post(
        "/api/v1/invitations/accept", json={"token": token, "password": PASSWORD, "full_name": "Late"}
    )
    body = response.json()
    return response.status_code, body.get("code", ""), body.get("detail", "")


def _email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


def _revoked(key: dict[str, Any], actor_id: str, reason: str) -> dict[str, Any]:
    return {
        "action": "api_key.revoked",
        "actor_type": "user",
        "actor_id": actor_id,
        "target_type": "api_key",
        "target_id": key["id"],
        "data": {"name": key["name"], "prefix": key["prefix"], "reason": reason},
    }


def _withdrawn(invitation: dict[str, Any], actor_id: str, reason: str) -> dict[str, Any]:
    return {
        "action": "invitation.revoked",
        "actor_type": "user",
        "actor_id": actor_id,
        "target_type": "invitation",
        "target_id": invitation["id"],
        "data": {"email": invitation["email"], "role": invitation["role"], "reason": reason},
    }


async def test_deactivating_a_member_revokes_their_keys_and_pending_invitations(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_id, headers = owner["tenant"]["id"], bearer(owner["token"]["access_token"])
    admin = await add_member(client, database, headers, "admin")
    sync = await _key(client, admin.headers, "Warehouse sync", ["orders.read", "users.manage"])
    feed = await _key(client, admin.headers, "Price feed", ["catalog.read"])
    owners_key = await _key(client, headers, "Owner's own", ["orders.read"])
    pending = await invite(client, admin.headers, _email("hire"), "agent")
    owners_invitation = await invite(client, headers, _email("other"), "viewer")
    since = await last_audit_id(database, tenant_id)

    response = await client.patch(
        f"/api/v1/users/{admin.user_id}", json={"status": "deactivated"}, headers=headers
    )
    assert response.status_code == 200, response.text

    assert await _me(client, sync) == (401, REVOKED)
    assert await _me(client, feed) == (401, REVOKED)
    assert await _me(client, owners_key) == (200, ["orders.read"])
    assert await _accept(client, database, pending["email"]) == (410, "token_gone", WITHDRAWN)
    listed = (await client.get("/api/v1/invitations", headers=headers)).json()["data"]
    assert [invitation["id"] for invitation in listed] == [owners_invitation["id"]]
    assert await audit_trail(database, tenant_id, since=since) == [
        {
            "action": "member.deactivated",
            "actor_type": "user",
            "actor_id": owner["user_id"],
            "target_type": "user",
            "target_id": admin.user_id,
            "data": {},
        },
        _revoked(sync, owner["user_id"], "creator_deactivated"),
        _revoked(feed, owner["user_id"], "creator_deactivated"),
        _withdrawn(pending, owner["user_id"], "inviter_deactivated"),
    ]

    # Coming back brings neither back: whoever needs a key makes a new one.
    response = await client.patch(
        f"/api/v1/users/{admin.user_id}", json={"status": "active"}, headers=headers
    )
    assert response.status_code == 200
    assert await _me(client, sync) == (401, REVOKED)
    stored = (await client.get(f"/api/v1/api-keys/{sync['id']}", headers=headers)).json()
    assert (stored["scopes"], stored["revoked_at"] is not None) == (["orders.read", "users.manage"], True)


async def test_keys_and_invitations_a_members_key_made_go_with_the_member(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_id, headers = owner["tenant"]["id"], bearer(owner["token"]["access_token"])
    admin = await add_member(client, database, headers, "admin")
    maker = await _key(client, admin.headers, "Key maker", ["api_keys.manage", "users.manage", "orders.read"])
    child = await _key(client, maker["headers"], "Made by a key", ["api_keys.manage", "orders.read"])
    grandchild = await _key(client, child["headers"], "Made by that key", ["orders.read"])
    pending = await invite(client, maker["headers"], _email("hire"), "agent")
    assert (child["created_by"], grandchild["created_by"], pending["invited_by"]) == (admin.user_id,) * 3
    since = await last_audit_id(database, tenant_id)

    response = await client.patch(
        f"/api/v1/users/{admin.user_id}", json={"status": "deactivated"}, headers=headers
    )
    assert response.status_code == 200, response.text

    for key in (maker, child, grandchild):
        assert await _me(client, key) == (401, REVOKED)
    assert await _accept(client, database, pending["email"]) == (410, "token_gone", WITHDRAWN)
    assert [entry["target_id"] for entry in await audit_trail(database, tenant_id, since=since)] == [
        admin.user_id,
        maker["id"],
        child["id"],
        grandchild["id"],
        pending["id"],
    ]


async def test_demoting_a_member_narrows_their_keys_and_withdraws_what_they_could_no_longer_send(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_id, headers = owner["tenant"]["id"], bearer(owner["token"]["access_token"])
    admin = await add_member(client, database, headers, "admin")
    mixed = await _key(client, admin.headers, "Mixed", ["orders.read", "users.manage", "settings.manage"])
    managing = await _key(client, admin.headers, "Managing", ["users.manage", "api_keys.manage"])
    reader = await _key(client, admin.headers, "Reader", ["orders.read", "orders.write"])
    pending = await invite(client, admin.headers, _email("hire"), "manager")
    since = await last_audit_id(database, tenant_id)

    response = await client.patch(f"/api/v1/users/{admin.user_id}", json={"role": "agent"}, headers=headers)
    assert response.status_code == 200, response.text

    # The agent role still grants orders.read and orders.write, nothing else these keys held.
    assert await _me(client, mixed) == (200, ["orders.read"])
    users = await client.get("/api/v1/users", headers=mixed["headers"])
    assert (users.status_code, users.json()["code"]) == (403, "permission_denied")
    assert await _me(client, managing) == (401, REVOKED)
    assert await _me(client, reader) == (200, ["orders.read", "orders.write"])
    narrowed = (await client.get(f"/api/v1/api-keys/{mixed['id']}", headers=headers)).json()
    assert (narrowed["scopes"], narrowed["revoked_at"]) == (["orders.read"], None)
    assert await _accept(client, database, pending["email"]) == (410, "token_gone", WITHDRAWN)
    assert await audit_trail(database, tenant_id, since=since) == [
        {
            "action": "member.role_changed",
            "actor_type": "user",
            "actor_id": owner["user_id"],
            "target_type": "user",
            "target_id": admin.user_id,
            "data": {"old": "admin", "new": "agent"},
        },
        {
            "action": "api_key.scopes_reduced",
            "actor_type": "user",
            "actor_id": owner["user_id"],
            "target_type": "api_key",
            "target_id": mixed["id"],
            "data": {
                "name": "Mixed",
                "prefix": mixed["prefix"],
                "old": ["orders.read", "settings.manage", "users.manage"],
                "new": ["orders.read"],
                "reason": "creator_role_changed",
            },
        },
        _revoked(managing, owner["user_id"], "creator_role_changed"),
        _withdrawn(pending, owner["user_id"], "inviter_role_changed"),
    ]

    # Promoting again changes the role only: what was cut stays cut.
    since = await last_audit_id(database, tenant_id)
    response = await client.patch(f"/api/v1/users/{admin.user_id}", json={"role": "admin"}, headers=headers)
    assert response.status_code == 200
    assert await _me(client, mixed) == (200, ["orders.read"])
    assert [entry["action"] for entry in await audit_trail(database, tenant_id, since=since)] == [
        "member.role_changed"
    ]


async def test_an_owner_made_admin_keeps_the_invitations_an_admin_may_send(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_id, headers = owner["tenant"]["id"], bearer(owner["token"]["access_token"])
    co_owner = await add_member(client, database, headers, "owner")
    billing = await _key(client, co_owner.headers, "Billing", ["billing.manage", "orders.read"])
    as_owner = await invite(client, co_owner.headers, _email("boss"), "owner")
    as_admin = await invite(client, co_owner.headers, _email("helper"), "admin")
    since = await last_audit_id(database, tenant_id)

    response = await client.patch(
        f"/api/v1/users/{co_owner.user_id}", json={"role": "admin"}, headers=headers
    )
    assert response.status_code == 200, response.text

    assert await _me(client, billing) == (200, ["orders.read"])
    listed = (await client.get("/api/v1/invitations", headers=headers)).json()["data"]
    assert [invitation["id"] for invitation in listed] == [as_admin["id"]]
    assert [
        (entry["action"], entry["target_id"], entry["data"].get("reason"))
        for entry in await audit_trail(database, tenant_id, since=since)
    ] == [
        ("member.role_changed", co_owner.user_id, None),
        ("api_key.scopes_reduced", billing["id"], "creator_role_changed"),
        ("invitation.revoked", as_owner["id"], "inviter_role_changed"),
    ]


async def test_a_key_is_refused_or_narrowed_whenever_its_creator_lost_access(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    # Defence in depth: even when the key itself was left untouched (here, the membership
    # is changed behind the service's back), the guard reads the creator's membership.
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    admin = await add_member(client, database, headers, "admin")
    key = await _key(client, admin.headers, "Untouched", ["orders.read", "users.manage"])
    assert await _me(client, key) == (200, ["orders.read", "users.manage"])
    membership = (Membership.tenant_id == uuid.UUID(owner["tenant"]["id"])) & (
        Membership.user_id == uuid.UUID(admin.user_id)
    )

    async def set_membership(**values: str) -> None:
        async with database.platform_session() as session:
            await session.execute(update(Membership).where(membership).values(**values))

    await set_membership(status="deactivated")
    assert await _me(client, key) == (401, CREATOR_GONE)
    refused = await client.get("/api/v1/users", headers=key["headers"])
    assert (refused.status_code, refused.json()["code"]) == (401, "unauthenticated")

    await set_membership(status="active", role="viewer")
    assert await _me(client, key) == (200, ["orders.read"])
    users = await client.get("/api/v1/users", headers=key["headers"])
    assert (users.status_code, users.json()["code"]) == (403, "permission_denied")

    async with database.platform_session() as session:
        await session.execute(delete(Membership).where(membership))
    assert await _me(client, key) == (401, CREATOR_GONE)
