"""Signing in through a store's OpenID Connect provider, driven over HTTP like a browser would.

The provider is a real one on loopback (tests/support/oidc_provider.py). Each test plays
the browser: it calls /login, follows the Location to the provider by hand, and takes
the provider's redirect back to our callback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update

from ordersmith.api.sso import CALLBACK_PATH
from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import AuditEntry, Membership, User
from ordersmith.platform.identity.oidc import providers
from ordersmith.platform.identity.permissions import ROLE_PERMISSIONS, Role
from ordersmith.platform.plans import Limit
from ordersmith.platform.settings import Settings
from tests.support.entitlements import set_limit, set_tenant_billing, sign_up_with_sso
from tests.support.http import PASSWORD, bearer, sign_up
from tests.support.mail import queued_email
from tests.support.members import invitation_token, invite, verify_email
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, TestUser, serve_oidc_provider


@pytest.fixture(autouse=True)
def _stores_have_sso(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Single sign-on is an Enterprise feature: every store these tests sign up has it."""

    async def sign_up_having_sso(client: AsyncTestClient[Litestar], **extra: Any) -> dict[str, Any]:
        return await sign_up_with_sso(client, database, **extra)

    monkeypatch.setattr(sys.modules[__name__], "sign_up", sign_up_having_sso)


@pytest.fixture(scope="module")
def provider_server(settings: Settings) -> Iterator[OidcProvider]:
    with serve_oidc_provider(f"{settings.public_url}{CALLBACK_PATH}") as provider:
        yield provider


@pytest.fixture
def provider(provider_server: OidcProvider) -> OidcProvider:
    """The provider, well-behaved, vouching for a person no other test uses."""
    provider_server.reset()
    providers.clear()  # tests change the discovery document
    name = uuid.uuid4().hex[:10]
    provider_server.user = TestUser(sub=f"sub-{name}", email=f"{name}@acme-idp.example", name="Ada Lovelace")
    return provider_server


@pytest.fixture
async def strict_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app as production runs it by default: identity providers on public addresses only."""
    strict = dataclasses.replace(settings, sso_allow_private_addresses=False)
    async with AsyncTestClient(create_app(strict)) as client:
        yield client


async def _store_with_sso(
    client: AsyncTestClient[Litestar], provider: OidcProvider, **settings: Any
) -> dict[str, Any]:
    owner = await sign_up(client)
    body = {"issuer": provider.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **settings}
    response = await client.put("/api/v1/sso", json=body, headers=bearer(owner["token"]["access_token"]))
    assert response.status_code == 200, response.text
    return owner


async def _callback_query(client: AsyncTestClient[Litestar], slug: str, **params: str) -> str:
    """Start at /login, pass through the provider, and return the query it sends back."""
    login = await client.get(f"/api/v1/auth/sso/{slug}/login", params=params, follow_redirects=False)
    assert login.status_code == 302, login.text
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(login.headers["location"], follow_redirects=False)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == f"http://127.0.0.1:8000{CALLBACK_PATH}"
    return back.query


@contextlib.contextmanager
def _refusing_port() -> Iterator[int]:
    """A loopback port bound but never listening: connections to it are refused."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


async def _sso_sign_in(client: AsyncTestClient[Litestar], slug: str, **params: str) -> httpx.Response:
    return await client.get(f"{CALLBACK_PATH}?{await _callback_query(client, slug, **params)}")


async def _audit(database: Database, tenant_id: str, action: str) -> list[AuditEntry]:
    async with database.platform_session() as session:
        rows = await session.execute(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == uuid.UUID(tenant_id), AuditEntry.action == action)
            .order_by(AuditEntry.id)
        )
        return list(rows.scalars())


async def test_login_redirects_to_the_provider_with_state_nonce_and_pkce(
    client: AsyncTestClient[Litestar], provider: OidcProvider
) -> None:
    owner = await _store_with_sso(client, provider)

    login = await client.get(f"/api/v1/auth/sso/{owner['tenant']['slug']}/login", follow_redirects=False)

    assert login.status_code == 302
    location = urlsplit(login.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{provider.issuer}/authorize"
    query = {name: values[0] for name, values in parse_qs(location.query).items()}
    assert set(query) == {
        "response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
        "code_challenge", "code_challenge_method",
    }  # fmt: skip
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == f"http://127.0.0.1:8000{CALLBACK_PATH}"
    assert query["scope"] == "openid email profile"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) == 43
    assert len(query["nonce"]) == 43
    assert len(query["code_challenge"]) == 43


async def test_a_first_sign_in_creates_a_member_with_the_default_role(
    client: AsyncTestClient[Litestar], provider: OidcProvider, database: Database
) -> None:
    owner = await _store_with_sso(client, provider, default_role="manager")

    response = await _sso_sign_in(client, owner["tenant"]["slug"], redirect_uri="/orders?status=placed")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["role"] == "manager"
    assert body["created_user"] is True
    assert body["tenant_slug"] == owner["tenant"]["slug"]
    assert body["redirect_uri"] == "/orders?status=placed"
    assert body["expires_in"] in range(895, 901)
    me = await client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["user"] == {
        "id": body["user_id"],
        "email": provider.user.email,
        "full_name": "Ada Lovelace",
        "email_verified": True,
    }
    assert me.json()["role"] == "manager"
    assert me.json()["permissions"] == sorted(ROLE_PERMISSIONS[Role.MANAGER])
    assert me.json()["reminders"] == []
    async with database.platform_session() as session:
        user = await session.get(User, uuid.UUID(body["user_id"]))
    assert user is not None
    assert user.password_hash is None
    assert user.email_verified_at is not None
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200
    [entry] = await _audit(database, owner["tenant"]["id"], "auth.sso_signed_in")
    assert (entry.actor_type, entry.actor_id) == ("user", body["user_id"])
    assert entry.data == {"issuer": provider.issuer, "created_user": True}
    assert provider.token_requests == ["client_secret_basic"]


async def test_a_second_sign_in_links_the_same_person(
    client: AsyncTestClient[Litestar], provider: OidcProvider, database: Database
) -> None:
    owner = await _store_with_sso(client, provider)
    first = (await _sso_sign_in(client, owner["tenant"]["slug"])).json()
    provider.user.email = provider.user.email.upper()  # providers do not all keep the case

    second = await _sso_sign_in(client, owner["tenant"]["slug"])

    assert second.status_code == 200, second.text
    assert second.json()["user_id"] == first["user_id"]
    assert second.json()["created_user"] is False
    assert second.json()["role"] == "agent"
    async with database.platform_session() as session:
        users = await session.scalar(select(func.count()).where(User.email == provider.user.email.lower()))
        memberships = await session.scalar(
            select(func.count()).where(Membership.user_id == uuid.UUID(first["user_id"]))
        )
    assert (users, memberships) == (1, 1)


def _newcomer(provider: OidcProvider) -> str:
    """Have the provider vouch for someone the store has never seen; their email."""
    name = uuid.uuid4().hex[:10]
    provider.user = TestUser(sub=f"sub-{name}", email=f"{name}@acme-idp.example", name="New Person")
    return provider.user.email


async def _active_members(database: Database, tenant_id: str) -> int:
    async with database.platform_session() as session:
        count = await session.scalar(
            select(func.count()).where(
                Membership.tenant_id == uuid.UUID(tenant_id), Membership.status == "active"
            )
        )
    return int(count or 0)


async def test_first_sign_ins_stop_at_the_plans_hard_seat_limit(
    client: AsyncTestClient[Litestar], provider: OidcProvider, database: Database
) -> None:
    # A trial store: 5 seats, a hard limit. The owner holds the first.
    owner = await _store_with_sso(client, provider)
    slug, tenant_id = owner["tenant"]["slug"], owner["tenant"]["id"]
    statuses = []
    for _ in range(4):
        _newcomer(provider)
        statuses.append((await _sso_sign_in(client, slug)).status_code)
    assert statuses == [200, 200, 200, 200]
    sixth = _newcomer(provider)

    refused = await _sso_sign_in(client, slug)

    body = refused.json()
    assert (refused.status_code, body["code"], body["detail"]) == (
        402,
        "limit_reached",
        f"store {slug!r} has no free seat for a new member, so you cannot join it yet; ask a store admin "
        "to make room (your Trial plan allows 5 seats and the store uses 5; deactivate a member or withdraw "
        "a pending invitation first, or change to the Growth plan at POST /api/v1/billing/plan), then sign "
        "in with single sign-on again",
    )
    assert {key: body[key] for key in ("limit", "current", "allowed", "plan", "cheapest_plan")} == {
        "limit": "seats",
        "current": 5,
        "allowed": 5,
        "plan": "trial",
        "cheapest_plan": "growth",
    }
    # Inviting a sixth person is refused the same way; nothing of the refused one is kept.
    assert await _active_members(database, tenant_id) == 5
    async with database.platform_session() as session:
        assert await session.scalar(select(func.count()).where(User.email == sixth)) == 0
    failures = await _audit(database, tenant_id, "auth.sso_sign_in_failed")
    assert [entry.data for entry in failures] == [{"issuer": provider.issuer, "reason": "limit_reached"}]


async def test_a_soft_seat_limit_lets_a_newcomer_in_and_warns(
    client: AsyncTestClient[Litestar], provider: OidcProvider, database: Database
) -> None:
    owner = await _store_with_sso(client, provider)
    # Seats are soft on Growth; an override makes the limit small enough to pass.
    await set_tenant_billing(database, owner["tenant"]["id"], plan="growth")
    await set_limit(database, owner["tenant"]["id"], Limit.SEATS, 1)
    _newcomer(provider)

    response = await _sso_sign_in(client, owner["tenant"]["slug"])

    assert response.status_code == 200, response.text
    assert response.headers["ordersmith-limit-warning"] == 'seats;used=2;allowed=1;plan="growth"'
    assert await _active_members(database, owner["tenant"]["id"]) == 2
    email = await queued_email(database, owner["email"], "limit_exceeded")
    assert email.context() == {
        "store_name": "Acme Outdoor",
        "limit": "seats",
        "used": 2,
        "allowed": 1,
        "plan_name": "Growth",
    }


async def test_a_newcomer_invited_takes_the_seat_held_for_them(
    client: AsyncTestClient[Litestar], provider: OidcProvider, database: Database
) -> None:
    owner = await _store_with_sso(client, provider)
    headers = bearer(owner["token"]["access_token"])
    invited = _newcomer(provider)
    # The owner and four pending invitations hold the trial's five seats, one of them for this person.
    for email in (invited, *(f"{uuid.uuid4().hex[:10]}@example.com" for _ in range(3))):
        await invite(client, headers, email, "viewer")

    response = await _sso_sign_in(client, owner["tenant"]["slug"])

    assert response.status_code == 200, response.text
    assert "ordersmith-limit-warning" not in response.headers
    _newcomer(provider)
    uninvited = await _sso_sign_in(client, owner["tenant"]["slug"])
    assert (uninvited.status_code, uninvited.json()["code"]) == (402, "limit_reached")
    assert await _active_members(database, owner["tenant"]["id"]) == 2


async def test_an_account_from_another_store_signs_in_only_once_invited(
    client: AsyncTestClient[Litestar], provider: OidcProvider, database: Database
) -> None:
    store = await _store_with_sso(client, provider, default_role="viewer")
    elsewhere = await sign_up(client, email=provider.user.email)
    await verify_email(client, database, provider.user.email)

    # The store's admin chose the provider: its word alone must not bring in someone else's account.
    refused = await _sso_sign_in(client, store["tenant"]["slug"])

    email = provider.user.email
    assert (refused.status_code, refused.json()["code"], refused.json()["detail"]) == (
        409,
        "account_not_member",
        f"an Ordersmith account already uses {email} and is not a member of this store; ask a store "
        f"admin to invite {email}, accept the invitation emailed to you, then sign in with single "
        "sign-on again",
    )
    async with database.platform_session() as session:
        joined = (
            await session.scalars(
                select(Membership.tenant_id).where(Membership.user_id == uuid.UUID(elsewhere["user_id"]))
            )
        ).all()
    assert joined == [uuid.UUID(elsewhere["tenant"]["id"])]
    [failure] = await _audit(database, store["tenant"]["id"], "auth.sso_sign_in_failed")
    assert failure.data == {"issuer": provider.issuer, "reason": "account_not_member"}

    await invite(client, bearer(store["token"]["access_token"]), email, "agent")
    accepted = await client.post(
        "/api/v1/invitations/accept",
        json={"token": await invitation_token(database, email), "password": PASSWORD},
    )
    assert accepted.status_code == 201, accepted.text
    joined_now = await _sso_sign_in(client, store["tenant"]["slug"])
    assert joined_now.status_code == 200, joined_now.text
    assert joined_now.json()["user_id"] == elsewhere["user_id"]
    assert joined_now.json()["created_user"] is False
    assert joined_now.json()["role"] == "agent"  # the invitation's role, not the provider's default
    await client.put(
        "/api/v1/sso",
        json={"issuer": provider.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        headers=bearer(elsewhere["token"]["access_token"]),
    )
    as_owner = await _sso_sign_in(client, elsewhere["tenant"]["slug"])
    assert as_owner.json()["role"] == "owner"


async def test_an_account_with_an_unverified_email_is_not_linked(
    client: AsyncTestClient[Litestar], provider: OidcProvider, database: Database
) -> None:
    store = await _store_with_sso(client, provider, default_role="admin")
    # Someone who does not own the address signs up with it before its owner uses SSO.
    squatter = await sign_up(client, email=provider.user.email)

    response = await _sso_sign_in(client, store["tenant"]["slug"])

    assert (response.status_code, response.json()["code"], response.json()["detail"]) == (
        409,
        "account_unverified",
        f"an account for {provider.user.email} exists but its email address was never confirmed, so single "
        "sign-on cannot use it; confirm the address with the link emailed at sign-up, or reset that "
        "account's password (the emailed reset link confirms the address too), then sign in again",
    )
    async with database.platform_session() as session:
        users = await session.scalar(select(func.count()).where(User.email == provider.user.email))
        joined = (
            await session.scalars(
                select(Membership.tenant_id).where(Membership.user_id == uuid.UUID(squatter["user_id"]))
            )
        ).all()
    assert (users, joined) == (1, [uuid.UUID(squatter["tenant"]["id"])])
    [failure] = await _audit(database, store["tenant"]["id"], "auth.sso_sign_in_failed")
    assert failure.data == {"issuer": provider.issuer, "reason": "account_unverified"}
    assert await _audit(database, store["tenant"]["id"], "auth.sso_signed_in") == []
    denied = await client.post(
        "/api/v1/auth/token",
        json={"email": provider.user.email, "password": PASSWORD, "tenant": store["tenant"]["slug"]},
    )
    assert (denied.status_code, denied.json()["code"]) == (401, "invalid_credentials")

    # Confirmed by mail, the address is the owner's; the account still joins only by invitation.
    await verify_email(client, database, provider.user.email)
    not_member = await _sso_sign_in(client, store["tenant"]["slug"])
    assert (not_member.status_code, not_member.json()["code"]) == (409, "account_not_member")


async def test_an_unknown_state_is_refused(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get(f"{CALLBACK_PATH}?code=anything&state=made-up")

    assert response.status_code == 400
    assert response.json()["code"] == "sso_state_invalid"
    assert (
        response.json()["detail"] == "this sign-in attempt is unknown, expired or already used; start again"
    )


async def test_a_replayed_answer_is_refused(
    client: AsyncTestClient[Litestar], provider: OidcProvider
) -> None:
    owner = await _store_with_sso(client, provider)
    query = await _callback_query(client, owner["tenant"]["slug"])
    assert (await client.get(f"{CALLBACK_PATH}?{query}")).status_code == 200

    replay = await client.get(f"{CALLBACK_PATH}?{query}")

    assert replay.status_code == 400
    assert replay.json()["code"] == "sso_state_invalid"


@pytest.mark.parametrize(
    ("misbehaviour", "reason"),
    [
        ({"id_token_overrides": {"nonce": "someone-elses-nonce"}}, "invalid_claim: Invalid claim: 'nonce'"),
        ({"id_token_overrides": {"aud": "another-client"}}, "invalid_claim: Invalid claim: 'aud'"),
        ({"id_token_overrides": {"iss": "https://evil.example"}}, "invalid_claim: Invalid claim: 'iss'"),
        ({"id_token_overrides": {"exp": 1_000_000_000}}, "expired_token: The token is expired"),
        ({"sign_with_foreign_key": True}, "bad_signature"),
    ],
    ids=["wrong-nonce", "wrong-audience", "wrong-issuer", "expired", "forged-signature"],
)
async def test_a_bad_id_token_is_refused(
    client: AsyncTestClient[Litestar],
    provider: OidcProvider,
    database: Database,
    misbehaviour: dict[str, Any],
    reason: str,
) -> None:
    owner = await _store_with_sso(client, provider)
    for name, value in misbehaviour.items():
        setattr(provider, name, value)

    response = await _sso_sign_in(client, owner["tenant"]["slug"])

    assert response.status_code == 401
    assert response.json()["code"] == "sso_token_invalid"
    assert response.json()["detail"] == (
        f"the identity provider's ID token was rejected ({reason}); start the sign-in again, "
        "or ask a store admin to check the SSO settings"
    )
    [entry] = await _audit(database, owner["tenant"]["id"], "auth.sso_sign_in_failed")
    assert entry.data == {"issuer": provider.issuer, "reason": "sso_token_invalid"}
    async with database.platform_session() as session:
        assert await session.scalar(select(User.id).where(User.email == provider.user.email)) is None


@pytest.mark.parametrize("verified", [False, "false", None])
async def test_an_unverified_email_is_refused(
    client: AsyncTestClient[Litestar], provider: OidcProvider, verified: bool | str
) -> None:
    owner = await _store_with_sso(client, provider)
    provider.user.email_verified = verified

    response = await _sso_sign_in(client, owner["tenant"]["slug"])

    assert response.status_code == 403
    assert response.json()["code"] == "sso_email_unverified"


async def test_an_email_from_the_userinfo_needs_its_own_verified_claim(
    client: AsyncTestClient[Litestar], provider: OidcProvider, database: Database
) -> None:
    owner = await _store_with_sso(client, provider)
    provider.claims_in_id_token = False
    # The ID token says "verified" about no email; the userinfo names one without saying so.
    provider.id_token_overrides = {"email_verified": True}
    provider.user.email_verified = None

    response = await _sso_sign_in(client, owner["tenant"]["slug"])

    assert (response.status_code, response.json()["code"]) == (403, "sso_email_unverified")
    async with database.platform_session() as session:
        assert await session.scalar(select(User.id).where(User.email == provider.user.email)) is None


async def test_claims_found_only_in_the_userinfo_are_used(
    client: AsyncTestClient[Litestar], provider: OidcProvider
) -> None:
    owner = await _store_with_sso(client, provider)
    provider.claims_in_id_token = False

    response = await _sso_sign_in(client, owner["tenant"]["slug"])

    assert response.status_code == 200, response.text
    me = await client.get("/api/v1/me", headers=bearer(response.json()["access_token"]))
    assert me.json()["user"]["email"] == provider.user.email


async def test_the_secret_goes_in_the_body_when_the_provider_wants_it_there(
    client: AsyncTestClient[Litestar], provider: OidcProvider
) -> None:
    owner = await _store_with_sso(client, provider)
    provider.auth_methods = ["client_secret_post"]

    response = await _sso_sign_in(client, owner["tenant"]["slug"])

    assert response.status_code == 200, response.text
    assert provider.token_requests == ["client_secret_post"]


async def test_a_wrong_client_secret_is_reported(
    client: AsyncTestClient[Litestar], provider: OidcProvider
) -> None:
    owner = await _store_with_sso(client, provider, client_secret="not-the-secret")

    response = await _sso_sign_in(client, owner["tenant"]["slug"])

    assert response.status_code == 401
    assert response.json()["code"] == "sso_code_rejected"
    assert response.json()["detail"] == (
        "the identity provider refused the sign-in code (invalid_client); start the sign-in again, "
        "or ask a store admin to check the client id and secret"
    )


async def test_a_refusal_by_the_provider_is_reported(
    client: AsyncTestClient[Litestar], provider: OidcProvider
) -> None:
    owner = await _store_with_sso(client, provider)
    provider.deny_with = "access_denied"

    response = await _sso_sign_in(client, owner["tenant"]["slug"])

    assert response.status_code == 401
    assert response.json()["code"] == "sso_denied"


async def test_a_deactivated_member_is_not_let_back_in(
    client: AsyncTestClient[Litestar], provider: OidcProvider, database: Database
) -> None:
    owner = await _store_with_sso(client, provider)
    first = (await _sso_sign_in(client, owner["tenant"]["slug"])).json()
    async with database.platform_session() as session:
        await session.execute(
            update(Membership)
            .where(Membership.user_id == uuid.UUID(first["user_id"]))
            .values(status="deactivated")
        )

    response = await _sso_sign_in(client, owner["tenant"]["slug"])

    assert response.status_code == 403
    assert response.json()["code"] == "membership_deactivated"
    async with database.platform_session() as session:
        status = await session.scalar(
            select(Membership.status).where(Membership.user_id == uuid.UUID(first["user_id"]))
        )
    assert status == "deactivated"


async def test_a_store_without_sso_answers_404(
    client: AsyncTestClient[Litestar], provider: OidcProvider
) -> None:
    plain = await sign_up(client)
    disabled = await _store_with_sso(client, provider, enabled=False)

    for slug in (plain["tenant"]["slug"], disabled["tenant"]["slug"], "no-such-store"):
        response = await client.get(f"/api/v1/auth/sso/{slug}/login", follow_redirects=False)
        assert response.status_code == 404
        assert response.json()["code"] == "sso_not_configured"
        assert response.json()["detail"] == (
            f"store {slug!r} does not offer single sign-on; sign in with your email and password, "
            "or ask a store admin to set SSO up"
        )


async def test_sso_turned_off_mid_sign_in_answers_404(
    client: AsyncTestClient[Litestar], provider: OidcProvider
) -> None:
    owner = await _store_with_sso(client, provider)
    query = await _callback_query(client, owner["tenant"]["slug"])
    await client.delete("/api/v1/sso", headers=bearer(owner["token"]["access_token"]))

    response = await client.get(f"{CALLBACK_PATH}?{query}")

    assert response.status_code == 404
    assert response.json()["code"] == "sso_not_configured"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "orders",
        # Browsers drop tabs and line breaks and read a backslash as a slash: each is //evil.example.
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r/evil.example",
        "/\\evil.example",
        "/orders\\..\\evil",
        "/\x0c/evil.example",
        "/orders\x7f",
    ],
)
async def test_the_return_path_must_stay_on_this_site(
    client: AsyncTestClient[Litestar], provider: OidcProvider, target: str
) -> None:
    owner = await _store_with_sso(client, provider)

    response = await client.get(
        f"/api/v1/auth/sso/{owner['tenant']['slug']}/login", params={"redirect_uri": target}
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "redirect_uri", "message": "must be a path on this site starting with /, like /orders"}
    ]


async def test_an_unreachable_provider_is_502(client: AsyncTestClient[Litestar]) -> None:
    owner = await sign_up(client)
    with _refusing_port() as port:
        body = {"issuer": f"http://127.0.0.1:{port}", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        await client.put("/api/v1/sso", json=body, headers=bearer(owner["token"]["access_token"]))

        response = await client.get(
            f"/api/v1/auth/sso/{owner['tenant']['slug']}/login", follow_redirects=False
        )

    assert response.status_code == 502
    assert response.json()["code"] == "sso_provider_unavailable"


async def test_a_provider_on_a_private_address_is_refused_when_not_allowed(
    client: AsyncTestClient[Litestar], strict_client: AsyncTestClient[Litestar], provider: OidcProvider
) -> None:
    # Configured while loopback was allowed; the deployment no longer allows it.
    owner = await _store_with_sso(client, provider)
    slug = owner["tenant"]["slug"]
    refused = (
        "single sign-on refused to connect to the identity provider: 127.0.0.1 is a loopback address; "
        "a store admin should check the issuer URL"
    )

    login = await strict_client.get(f"/api/v1/auth/sso/{slug}/login", follow_redirects=False)

    assert (login.status_code, login.json()["code"], login.json()["detail"]) == (
        502,
        "sso_provider_address_refused",
        refused,
    )
    # The token endpoint is checked too, even with the discovery document already cached.
    query = await _callback_query(client, slug)
    callback = await strict_client.get(f"{CALLBACK_PATH}?{query}")
    assert (callback.status_code, callback.json()["code"], callback.json()["detail"]) == (
        502,
        "sso_provider_address_refused",
        refused,
    )
    assert provider.token_requests == []


async def test_a_redirect_from_the_provider_is_not_followed(
    client: AsyncTestClient[Litestar], provider: OidcProvider
) -> None:
    owner = await _store_with_sso(client, provider)
    with _refusing_port() as port:
        # Followed, the redirect would end in a refused connection (ConnectError).
        provider.discovery_redirect = f"http://127.0.0.1:{port}/.well-known/openid-configuration"

        response = await client.get(
            f"/api/v1/auth/sso/{owner['tenant']['slug']}/login", follow_redirects=False
        )

    assert (response.status_code, response.json()["code"], response.json()["detail"]) == (
        502,
        "sso_provider_unavailable",
        f"could not read the identity provider's discovery document at "
        f"{provider.issuer}/.well-known/openid-configuration (HTTPStatusError); "
        "try again later, or ask a store admin to check the issuer URL",
    )


async def test_a_viewer_signed_in_through_sso_cannot_change_it(
    client: AsyncTestClient[Litestar], provider: OidcProvider
) -> None:
    owner = await _store_with_sso(client, provider, default_role="viewer")
    viewer = (await _sso_sign_in(client, owner["tenant"]["slug"])).json()
    assert viewer["role"] == "viewer"

    change = await client.put(
        "/api/v1/sso",
        json={"issuer": provider.issuer, "client_id": "hijacked"},
        headers=bearer(viewer["access_token"]),
    )
    removal = await client.delete("/api/v1/sso", headers=bearer(viewer["access_token"]))

    assert (change.status_code, change.json()["code"]) == (403, "permission_denied")
    assert (removal.status_code, removal.json()["code"]) == (403, "permission_denied")
    read = await client.get("/api/v1/sso", headers=bearer(viewer["access_token"]))
    assert read.status_code == 200
    assert read.json()["client_id"] == CLIENT_ID


async def test_an_admin_of_another_store_sees_only_their_own_settings(
    client: AsyncTestClient[Litestar], provider: OidcProvider
) -> None:
    store_a = await _store_with_sso(client, provider, default_role="agent")
    await client.put(
        "/api/v1/sso",
        json={"issuer": provider.issuer, "client_id": "client-of-a"},
        headers=bearer(store_a["token"]["access_token"]),
    )
    store_b = await _store_with_sso(client, provider, default_role="admin")
    admin_b = (await _sso_sign_in(client, store_b["tenant"]["slug"])).json()
    assert admin_b["role"] == "admin"

    seen = await client.get("/api/v1/sso", headers=bearer(admin_b["access_token"]))

    assert seen.status_code == 200
    assert seen.json()["client_id"] == CLIENT_ID
    assert seen.json()["default_role"] == "admin"
    assert seen.json()["login_url"].endswith(f"/api/v1/auth/sso/{store_b['tenant']['slug']}/login")
    # Removing the provider is the owner's, even in their own store.
    assert (await client.delete("/api/v1/sso", headers=bearer(admin_b["access_token"]))).status_code == 403
    assert (
        await client.delete("/api/v1/sso", headers=bearer(store_b["token"]["access_token"]))
    ).status_code == 204
    still_a = await client.get("/api/v1/sso", headers=bearer(store_a["token"]["access_token"]))
    assert still_a.json()["client_id"] == "client-of-a"
