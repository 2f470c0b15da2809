"""Members of a store: listing, roles, the last owner, deactivation."""

from __future__ import annotations

import asyncio
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.identity.members import change_member
from ordersmith.platform.identity.models import Membership
from ordersmith.platform.identity.permissions import permissions_of
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.tenancy import get_tenant_by_id
from tests.support.concurrency import wait_for_lock_waiters
from tests.support.http import PASSWORD, bearer, sign_up
from tests.support.members import add_member, audit_trail, last_audit_id

LAST_OWNER = "this is the store's last active owner; make someone else owner first"


async def test_members_are_listed_oldest_first_in_pages(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    agent = await add_member(client, database, headers, "agent")
    viewer = await add_member(client, database, headers, "viewer")

    first = await client.get("/api/v1/users?limit=2", headers=headers)
    assert first.status_code == 200
    page = first.json()
    assert [user["id"] for user in page["data"]] == [owner["user_id"], agent.user_id]
    owner_row = page["data"][0]
    assert {key: owner_row[key] for key in ("email", "full_name", "role", "status", "email_verified")} == {
        "email": owner["email"],
        "full_name": "",
        "role": "owner",
        "status": "active",
        "email_verified": False,
    }
    assert owner_row["created_at"].endswith(("Z", "+00:00"))
    assert page["next_cursor"] is not None
    second = (await client.get(f"/api/v1/users?limit=2&cursor={page['next_cursor']}", headers=headers)).json()
    assert [(user["id"], user["role"], user["full_name"]) for user in second["data"]] == [
        (viewer.user_id, "viewer", "New Person")
    ]
    assert second["next_cursor"] is None
    one = await client.get(f"/api/v1/users/{viewer.user_id}", headers=headers)
    assert one.json() == second["data"][0]


async def test_list_parameters_and_ids_are_checked(client: AsyncTestClient[Litestar]) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    bad = await client.get("/api/v1/users?limit=0&cursor=nonsense", headers=headers)
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {"field": "limit", "message": "must be a whole number from 1 to 200"},
        {"field": "cursor", "message": "use the next_cursor of the previous page, or omit it to start over"},
    ]
    for user_id in ("not-an-id", str(uuid.uuid4())):
        missing = await client.patch(f"/api/v1/users/{user_id}", json={"role": "viewer"}, headers=headers)
        assert missing.status_code == 404
        assert missing.json()["detail"] == (
            f"no member has the id {user_id!r} in this store; list them to find it"
        )
    invalid = await client.patch(
        f"/api/v1/users/{owner['user_id']}", json={"role": "boss", "status": "gone"}, headers=headers
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"] == [
        {"field": "role", "message": "must be one of owner, admin, manager, agent, viewer"},
        {"field": "status", "message": "must be active or deactivated"},
    ]
    empty = await client.patch(f"/api/v1/users/{owner['user_id']}", json={}, headers=headers)
    assert empty.json()["errors"] == [{"field": "role", "message": "send a new role, a new status, or both"}]


async def test_the_last_owner_stays_until_another_owner_exists(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_id = owner["tenant"]["id"]
    headers = bearer(owner["token"]["access_token"])
    path = f"/api/v1/users/{owner['user_id']}"
    for change in ({"role": "admin"}, {"status": "deactivated"}, {"role": "viewer", "status": "deactivated"}):
        refused = await client.patch(path, json=change, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (409, "last_owner"), change
        assert refused.json()["detail"] == LAST_OWNER
    # Setting what is already true changes nothing and is allowed.
    same = await client.patch(path, json={"role": "owner", "status": "active"}, headers=headers)
    assert same.status_code == 200

    second = await add_member(client, database, headers, "admin")
    since = await last_audit_id(database, tenant_id)
    promoted = await client.patch(f"/api/v1/users/{second.user_id}", json={"role": "owner"}, headers=headers)
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "owner"
    # Nobody changes their own role, even with a co-owner around.
    own = await client.patch(path, json={"role": "admin"}, headers=headers)
    assert (own.status_code, own.json()["code"]) == (403, "permission_denied")
    assert own.json()["detail"] == "you cannot change your own role or status; ask another owner or admin"

    demoted = await client.patch(path, json={"role": "admin"}, headers=second.headers)
    assert demoted.status_code == 200
    assert demoted.json()["role"] == "admin"
    me = await client.get("/api/v1/me", headers=headers)
    assert me.json()["role"] == "admin"
    assert "billing.manage" not in me.json()["permissions"]
    # Now the second owner is the last one.
    last = await client.patch(
        f"/api/v1/users/{second.user_id}", json={"status": "deactivated"}, headers=headers
    )
    assert (last.status_code, last.json()["code"]) == (409, "last_owner")

    assert await audit_trail(database, tenant_id, since=since) == [
        {
            "action": "member.role_changed",
            "actor_type": "user",
            "actor_id": owner["user_id"],
            "target_type": "user",
            "target_id": second.user_id,
            "data": {"old": "admin", "new": "owner"},
        },
        {
            "action": "member.role_changed",
            "actor_type": "user",
            "actor_id": second.user_id,
            "target_type": "user",
            "target_id": owner["user_id"],
            "data": {"old": "owner", "new": "admin"},
        },
    ]


async def test_nobody_changes_their_own_role_or_status_through_their_api_key_either(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_id = owner["tenant"]["id"]
    admin = await add_member(client, database, bearer(owner["token"]["access_token"]), "admin")
    created = await client.post(
        "/api/v1/api-keys", json={"name": "Admin tooling", "scopes": ["users.manage"]}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    key_headers = bearer(created.json()["key"])
    since = await last_audit_id(database, tenant_id)

    # The key answers to the admin who made it: it is their own role and status too.
    for change in ({"role": "viewer"}, {"status": "deactivated"}):
        own = await client.patch(f"/api/v1/users/{admin.user_id}", json=change, headers=key_headers)
        assert (own.status_code, own.json()["code"]) == (403, "permission_denied"), change
        assert own.json()["detail"] == "you cannot change your own role or status; ask another owner or admin"
    unchanged = (await client.get(f"/api/v1/users/{admin.user_id}", headers=admin.headers)).json()
    assert (unchanged["role"], unchanged["status"]) == ("admin", "active")
    assert await audit_trail(database, tenant_id, since=since) == []
    # Anyone else's, the key changes as its creator could.
    other = await add_member(client, database, key_headers, "agent")
    changed = await client.patch(
        f"/api/v1/users/{other.user_id}", json={"role": "viewer"}, headers=key_headers
    )
    assert (changed.status_code, changed.json()["role"]) == (200, "viewer")


async def test_only_an_owner_grants_or_removes_the_owner_role(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    admin = await add_member(client, database, headers, "admin")
    manager = await add_member(client, database, headers, "manager")
    only_owners = (
        "only an owner can grant or remove the owner role, or change an owner's status; ask an owner"
    )
    attempts = [
        (manager.user_id, {"role": "owner"}),
        (owner["user_id"], {"role": "admin"}),
        (owner["user_id"], {"status": "deactivated"}),
    ]
    # The owner is the last one: demoting them is refused for that reason first.
    codes = []
    for user_id, change in attempts:
        response = await client.patch(f"/api/v1/users/{user_id}", json=change, headers=admin.headers)
        codes.append((response.status_code, response.json()["code"]))
    assert codes == [(403, "permission_denied"), (409, "last_owner"), (409, "last_owner")]
    second_owner = await add_member(client, database, headers, "owner")
    for user_id, change in attempts:
        response = await client.patch(f"/api/v1/users/{user_id}", json=change, headers=admin.headers)
        assert (response.status_code, response.json()["detail"]) == (403, only_owners), change
    invited = await client.post(
        "/api/v1/invitations", json={"email": "boss@example.com", "role": "owner"}, headers=admin.headers
    )
    assert (invited.status_code, invited.json()["code"]) == (403, "permission_denied")
    assert invited.json()["detail"] == (
        "only an owner can invite another owner; choose a lower role or ask an owner"
    )
    # Below owner, an admin manages roles freely.
    changed = await client.patch(
        f"/api/v1/users/{manager.user_id}", json={"role": "agent"}, headers=admin.headers
    )
    assert changed.json()["role"] == "agent"
    assert (await client.get("/api/v1/me", headers=manager.headers)).json()["role"] == "agent"
    assert (await client.get("/api/v1/me", headers=second_owner.headers)).json()["role"] == "owner"


async def test_a_deactivated_member_is_locked_out_at_once(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_id = owner["tenant"]["id"]
    headers = bearer(owner["token"]["access_token"])
    agent = await add_member(client, database, headers, "agent")
    assert (await client.get("/api/v1/me", headers=agent.headers)).status_code == 200
    since = await last_audit_id(database, tenant_id)

    deactivated = await client.patch(
        f"/api/v1/users/{agent.user_id}", json={"status": "deactivated"}, headers=headers
    )
    assert deactivated.status_code == 200
    assert deactivated.json()["status"] == "deactivated"
    refused = await client.get("/api/v1/me", headers=agent.headers)
    assert (refused.status_code, refused.json()["code"]) == (401, "unauthenticated")
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": agent.refresh_token})
    assert refresh.status_code == 401
    sign_in = await client.post(
        "/api/v1/auth/token",
        json={"email": agent.email, "password": PASSWORD, "tenant": owner["tenant"]["slug"]},
    )
    assert (sign_in.status_code, sign_in.json()["code"]) == (401, "invalid_credentials")

    reactivated = await client.patch(
        f"/api/v1/users/{agent.user_id}", json={"status": "active"}, headers=headers
    )
    assert reactivated.json()["status"] == "active"
    # The old access token works again (it has not expired), but its refresh token stays revoked.
    assert (await client.get("/api/v1/me", headers=agent.headers)).status_code == 200
    assert (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": agent.refresh_token})
    ).status_code == 401

    actions = [
        (entry["action"], entry["actor_id"], entry["target_id"], entry["data"])
        for entry in await audit_trail(database, tenant_id, since=since)
    ]
    assert actions == [
        ("member.deactivated", owner["user_id"], agent.user_id, {}),
        (
            "auth.sign_in_failed",
            agent.user_id,
            None,
            {"email": agent.email, "reason": "no_active_membership"},
        ),
        ("member.reactivated", owner["user_id"], agent.user_id, {}),
    ]


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    second = await add_member(client, database, bearer(owner["token"]["access_token"]), "owner")
    tenant = await get_tenant_by_id(database, uuid.UUID(owner["tenant"]["id"]))

    def as_owner(user_id: str) -> Principal:
        return Principal("user", uuid.UUID(user_id), tenant, "owner", permissions_of("owner"))

    # The test client runs one request at a time, so this race runs on the service itself.
    # Holding both owners' rows keeps both changes in flight until each has done its
    # check: only the store-wide lock on member changes stops both from passing it.
    async with database.platform_session() as session:
        await session.execute(
            select(Membership.id).where(Membership.tenant_id == tenant.id).with_for_update()
        )
        changes = asyncio.gather(
            change_member(database, as_owner(owner["user_id"]), second.user_id, role="admin", status=None),
            change_member(database, as_owner(second.user_id), owner["user_id"], role="admin", status=None),
            return_exceptions=True,
        )
        await wait_for_lock_waiters(database, 2)
    results = await changes
    assert sorted(type(result).__name__ for result in results) == ["LastOwnerError", "MemberView"]
    async with database.platform_session() as session:
        roles = (
            await session.scalars(select(Membership.role).where(Membership.tenant_id == tenant.id))
        ).all()
    assert sorted(roles) == ["admin", "owner"]
