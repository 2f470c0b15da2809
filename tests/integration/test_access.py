"""Who may do what: invited roles, viewers, scoped API keys, declared access, and tenant walls."""

from __future__ import annotations

import re
import uuid

from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import AsyncTestClient

from ordersmith.api.access import KNOWN_ACCESS, PUBLIC, declared_access
from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.identity.permissions import ROLE_PERMISSIONS, Permission, Role
from ordersmith.platform.identity.tokens import TokenSigner
from ordersmith.platform.settings import Settings
from tests.support.http import PASSWORD, bearer, sign_in, sign_up
from tests.support.members import add_member, audit_trail, invitation_email, invitation_token, invite

# Routes anyone may call, without a credential. A new public route fails the test below
# until it is added here on purpose.
PUBLIC_ROUTES = frozenset(
    {
        "GET /healthz",
        "GET /readyz",
        "GET /api/v1/signup/slug-availability",
        "POST /api/v1/signup",
        "POST /api/v1/auth/token",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/auth/logout",
        "POST /api/v1/invitations/accept",
        "POST /api/v1/auth/verify-email",
        "POST /api/v1/auth/password-reset",
        "POST /api/v1/auth/password-reset/confirm",
        # Answers only outside production (404 there).
        "GET /api/v1/dev/mailbox",
        "GET /api/v1/auth/sso/{tenant_slug}/login",
        "GET /api/v1/auth/sso/callback",
        # Proven by the store's Stripe signing secret, not a bearer token.
        "POST /api/v1/payments/stripe/webhook/{store}",
        # Vendor staff sign in here; every other staff route needs a staff token.
        "POST /admin/api/v1/auth/token",
        # Stripe's webhooks: verified by their signature, not a credential.
        "POST /api/v1/billing/stripe/webhook",
    }
)
_TYPED_PARAMETER = re.compile(r"\{(\w+):\w+\}")


async def test_an_invited_person_joins_with_the_invited_role(
    client: AsyncTestClient[Litestar], database: Database, settings: Settings
) -> None:
    owner = await sign_up(client, company_name="Harbor Tea")
    owner_headers = bearer(await sign_in(client, owner["email"], owner["tenant"]["slug"]))
    me = await client.get("/api/v1/me", headers=owner_headers)
    assert (me.json()["role"], me.json()["user"]["email"]) == ("owner", owner["email"])

    email = f"mia-{uuid.uuid4().hex[:8]}@example.com"
    invitation = await invite(client, owner_headers, email, "manager")
    assert invitation["email"] == email
    assert invitation["role"] == "manager"
    assert invitation["status"] == "pending"
    assert invitation["invited_by"] == owner["user_id"]
    token = await invitation_token(database, email)
    assert await invitation_email(database, email) == {
        "store_name": "Harbor Tea",
        "inviter_email": owner["email"],
        "role": "manager",
        "link": f"{settings.public_url}/accept-invitation?token={token}",
        "expires_in_days": 7,
    }

    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token, "password": PASSWORD, "full_name": "Mia Chen"}
    )
    assert accepted.status_code == 201, accepted.text
    body = accepted.json()
    assert (body["role"], body["tenant"]["slug"]) == ("manager", owner["tenant"]["slug"])
    member_me = await client.get("/api/v1/me", headers=bearer(body["token"]["access_token"]))
    assert member_me.status_code == 200
    assert member_me.json()["user"] == {
        "id": body["user_id"],
        "email": email,
        "full_name": "Mia Chen",
        "email_verified": True,
    }
    assert member_me.json()["role"] == "manager"
    assert member_me.json()["permissions"] == sorted(ROLE_PERMISSIONS[Role.MANAGER])
    assert member_me.json()["reminders"] == []
    # The new password works for ordinary sign-in too.
    assert await sign_in(client, email, owner["tenant"]["slug"])

    trail = await audit_trail(database, owner["tenant"]["id"])
    assert [entry["action"] for entry in trail] == [
        "tenant.signed_up",
        "auth.signed_in",
        "invitation.created",
        "invitation.accepted",
        "auth.signed_in",
    ]
    assert trail[2] == {
        "action": "invitation.created",
        "actor_type": "user",
        "actor_id": owner["user_id"],
        "target_type": "invitation",
        "target_id": invitation["id"],
        "data": {"email": email, "role": "manager", "replaced": 0},
    }
    assert trail[3] == {
        "action": "invitation.accepted",
        "actor_type": "user",
        "actor_id": body["user_id"],
        "target_type": "invitation",
        "target_id": invitation["id"],
        "data": {"email": email, "role": "manager", "new_account": True},
    }


async def test_a_viewer_reads_but_cannot_write(client: AsyncTestClient[Litestar], database: Database) -> None:
    owner = await sign_up(client, company_name="Quiet Books")
    viewer = await add_member(client, database, bearer(owner["token"]["access_token"]), "viewer")

    store = await client.get("/api/v1/store", headers=viewer.headers)
    assert store.status_code == 200
    assert store.json()["display_name"] == "Quiet Books"
    refused = await client.patch("/api/v1/store", json={"display_name": "Mine now"}, headers=viewer.headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert refused.json()["detail"] == (
        "this needs the 'settings.manage' permission, which your role or key lacks; ask a store admin"
    )
    for method, path in (("GET", "/api/v1/users"), ("POST", "/api/v1/api-keys")):
        response = await client.request(
            method, path, headers=viewer.headers, json={"name": "x", "scopes": []}
        )
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied"), path
    unchanged = await client.get("/api/v1/store", headers=viewer.headers)
    assert unchanged.json()["display_name"] == "Quiet Books"


async def test_an_api_key_does_only_what_its_scopes_allow(client: AsyncTestClient[Litestar]) -> None:
    owner = await sign_up(client, company_name="Scoped Shop")
    headers = bearer(owner["token"]["access_token"])
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "Reporting", "scopes": ["settings.read", "orders.read"]},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    key_headers = bearer(created.json()["key"])

    store = await client.get("/api/v1/store", headers=key_headers)
    assert store.status_code == 200
    assert store.json()["display_name"] == "Scoped Shop"
    refused = await client.patch("/api/v1/store", json={"display_name": "Hacked"}, headers=key_headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    me = await client.get("/api/v1/me", headers=key_headers)
    assert me.json()["user"] is None
    assert me.json()["api_key_id"] == created.json()["api_key"]["id"]
    assert me.json()["role"] is None
    assert me.json()["permissions"] == ["orders.read", "settings.read"]

    orders_only = await client.post(
        "/api/v1/api-keys", json={"name": "Orders feed", "scopes": ["orders.read"]}, headers=headers
    )
    orders_headers = bearer(orders_only.json()["key"])
    for method in ("GET", "PATCH"):
        response = await client.request(
            method, "/api/v1/store", headers=orders_headers, json={"timezone": "UTC"}
        )
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied"), method


def _routes_by_method(app: Litestar) -> dict[str, dict[str, object]]:
    routes = {}
    for methods_and_path, opt in declared_access(app).items():
        methods, path = methods_and_path.split(" ", 1)
        untyped = _TYPED_PARAMETER.sub(r"{\1}", path)
        for method in methods.split("/"):
            routes[f"{method} {untyped}"] = opt
    return routes


def _unexpected_public(routes: dict[str, dict[str, object]]) -> list[str]:
    return sorted(
        route for route, opt in routes.items() if opt.get("access") == "public" and route not in PUBLIC_ROUTES
    )


def test_every_route_declares_who_may_call_it(settings: Settings) -> None:
    routes = _routes_by_method(create_app(settings))
    assert "POST /api/v1/invitations/accept" in routes
    undeclared = sorted(route for route, opt in routes.items() if opt.get("access") not in KNOWN_ACCESS)
    assert undeclared == [], "routes without an access declaration"
    assert _unexpected_public(routes) == [], (
        "new public routes: declare a permission, or add them to PUBLIC_ROUTES on purpose"
    )
    known_permissions = set(Permission)
    for route, opt in routes.items():
        if opt["access"] == "permission":
            assert opt["permission"] in known_permissions, route
        if opt["access"] == "staff":
            assert opt["staff_roles"], route


def test_the_check_catches_a_new_public_route() -> None:
    @get("/api/v1/orders/{order_id:str}/peek", opt=PUBLIC)
    async def peek(order_id: FromPath[str]) -> None:
        """A route someone forgot to protect."""

    routes = _routes_by_method(Litestar(route_handlers=[peek], openapi_config=None))
    assert _unexpected_public(routes) == ["GET /api/v1/orders/{order_id}/peek"]


async def test_another_store_s_ids_are_not_found(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store_a = await sign_up(client, company_name="Store A")
    a_headers = bearer(store_a["token"]["access_token"])
    a_member = await add_member(client, database, a_headers, "agent")
    a_invitation = await invite(client, a_headers, f"pending-{uuid.uuid4().hex[:8]}@example.com", "viewer")
    a_key = (
        await client.post(
            "/api/v1/api-keys", json={"name": "A feed", "scopes": ["orders.read"]}, headers=a_headers
        )
    ).json()

    store_b = await sign_up(client, company_name="Store B")
    b_headers = bearer(store_b["token"]["access_token"])
    b_key = (
        await client.post(
            "/api/v1/api-keys",
            json={"name": "B admin", "scopes": ["users.manage", "api_keys.manage"]},
            headers=b_headers,
        )
    ).json()["key"]

    attempts = [
        ("GET", f"/api/v1/users/{a_member.user_id}", None),
        ("PATCH", f"/api/v1/users/{a_member.user_id}", {"status": "deactivated"}),
        ("PATCH", f"/api/v1/users/{store_a['user_id']}", {"role": "viewer"}),
        ("GET", f"/api/v1/invitations/{a_invitation['id']}", None),
        ("DELETE", f"/api/v1/invitations/{a_invitation['id']}", None),
        ("GET", f"/api/v1/api-keys/{a_key['api_key']['id']}", None),
        ("DELETE", f"/api/v1/api-keys/{a_key['api_key']['id']}", None),
    ]
    for headers in (b_headers, bearer(b_key)):
        for method, path, body in attempts:
            response = await client.request(method, path, headers=headers, json=body)
            assert (response.status_code, response.json()["code"]) == (404, "not_found"), (method, path)

    # Nothing of A moved.
    assert (await client.get("/api/v1/me", headers=a_member.headers)).json()["role"] == "agent"
    owner_a = await client.get(f"/api/v1/users/{store_a['user_id']}", headers=a_headers)
    assert owner_a.json()["role"] == "owner"
    invitation = await client.get(f"/api/v1/invitations/{a_invitation['id']}", headers=a_headers)
    assert invitation.json()["status"] == "pending"
    key = await client.get("/api/v1/me", headers=bearer(a_key["key"]))
    assert key.status_code == 200
    # B's lists hold only B's people and keys.
    b_users = (await client.get("/api/v1/users", headers=b_headers)).json()
    assert [user["id"] for user in b_users["data"]] == [store_b["user_id"]]
    assert (await client.get("/api/v1/invitations", headers=b_headers)).json()["data"] == []
    b_keys = (await client.get("/api/v1/api-keys", headers=b_headers)).json()["data"]
    assert [key["name"] for key in b_keys] == ["B admin"]


async def test_no_trick_reaches_another_store(client: AsyncTestClient[Litestar], settings: Settings) -> None:
    store_a = await sign_up(client, company_name="Alpha Goods")
    store_b = await sign_up(client, company_name="Beta Goods")
    a_headers = bearer(store_a["token"]["access_token"])
    b_headers = bearer(store_b["token"]["access_token"])
    a_slug, a_id = store_a["tenant"]["slug"], store_a["tenant"]["id"]

    for extra in ({"X-Tenant": a_slug}, {"X-Tenant-Id": a_id}):
        store = await client.get("/api/v1/store", headers={**b_headers, **extra})
        assert store.json()["display_name"] == "Beta Goods"
    # A store named in the query is no parameter of any route: refused, naming it, showing nothing.
    for name, value in (("tenant", a_slug), ("tenant_id", a_id)):
        store = await client.get(f"/api/v1/store?{name}={value}", headers=b_headers)
        assert (store.status_code, store.json()["errors"]) == (
            422,
            [{"field": name, "message": "is not a parameter of this request, which takes none; remove it"}],
        )
        users = await client.get(f"/api/v1/users?{name}={value}", headers=b_headers)
        assert (users.status_code, users.json()["errors"]) == (
            422,
            [{"field": name, "message": "is not a parameter of this request; it takes cursor, limit"}],
        )
    me = await client.get("/api/v1/me", headers={**b_headers, "X-Tenant": a_slug})
    assert me.json()["tenant"]["slug"] == store_b["tenant"]["slug"]

    # A's slug in the body is ignored: B changes B's store.
    changed = await client.patch(
        "/api/v1/store",
        json={"tenant": a_slug, "tenant_id": a_id, "display_name": "Beta Goods 2"},
        headers=b_headers,
    )
    assert changed.json()["display_name"] == "Beta Goods 2"
    assert (await client.get("/api/v1/store", headers=a_headers)).json()["display_name"] == "Alpha Goods"
    invited = await client.post(
        "/api/v1/invitations",
        json={"email": f"x-{uuid.uuid4().hex[:8]}@example.com", "role": "viewer", "tenant": a_slug},
        headers=b_headers,
    )
    assert invited.status_code == 201
    assert (await client.get("/api/v1/invitations", headers=a_headers)).json()["data"] == []

    # A token claiming A's tenant: signed with a wrong key, or rightly signed for B's owner.
    b_owner = uuid.UUID(store_b["user_id"])
    forged, _ = TokenSigner("not-the-server-secret").issue(
        subject=b_owner, tenant_id=uuid.UUID(a_id), role="owner"
    )
    genuine_key, _ = TokenSigner(settings.secret_key).issue(
        subject=b_owner, tenant_id=uuid.UUID(a_id), role="owner"
    )
    for token in (forged, genuine_key):
        for path in ("/api/v1/store", "/api/v1/users", "/api/v1/me"):
            response = await client.get(path, headers=bearer(token))
            assert (response.status_code, response.json()["code"]) == (401, "unauthenticated"), path
