"""Who an existing account belongs to: the address's owner, proven by email, not whoever made it.

Single sign-on may make a password-less account for an address on one store's
provider's word: a reset link reaches it, and setting a password makes it the owner's.
Someone may sign up with an address they do not own: an invitation joins that account
only with its password, which the address's owner takes back by a reset.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.api.sso import CALLBACK_PATH
from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import AttemptCounter, Membership, User
from ordersmith.platform.identity.oidc import providers
from ordersmith.platform.settings import Settings
from tests.support.entitlements import sign_up_with_sso
from tests.support.http import PASSWORD, bearer, seen_from, sign_in, sign_up
from tests.support.mail import queued_email, token_in
from tests.support.members import invitation_token, invite, verify_email
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, TestUser, serve_oidc_provider
from tests.support.services import new_client_address, new_slug

NEW_PASSWORD = "Quiet-Lantern-Harbor-42"
SQUATTER_PASSWORD = "Squatters-Keep-Out-19"
EMAIL_TAKEN = (
    "an account with this email already exists; to start a new store with it, sign up again with that "
    "account's password, or, if you do not know it or it has none (an account made by single sign-on), "
    "ask for a reset link (POST /api/v1/auth/password-reset): the link emailed to this address sets the "
    "password"
)
RESET_THEN_AGAIN = (
    "if you do not know it, reset it from the 'Forgot your password?' page with this address, "
    "then open this invitation link again"
)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app, seeing this test's requests come from an address of its own.

    Its failed sign-ins count against that address, not against the one every other
    test's requests come from.
    """
    address = new_client_address()
    async with AsyncTestClient(seen_from(create_app(settings), lambda: address)) as client:
        yield client


@pytest.fixture(scope="module")
def provider_server(settings: Settings) -> Iterator[OidcProvider]:
    with serve_oidc_provider(f"{settings.public_url}{CALLBACK_PATH}") as provider:
        yield provider


@pytest.fixture
def provider(provider_server: OidcProvider) -> OidcProvider:
    provider_server.reset()
    providers.clear()
    return provider_server


def _email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@bigcorp.example"


async def _store_with_sso(
    client: AsyncTestClient[Litestar], database: Database, provider: OidcProvider
) -> Any:
    """A trial store whose owner pointed its single sign-on at `provider`."""
    owner = await sign_up_with_sso(client, database)
    body = {"issuer": provider.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    response = await client.put("/api/v1/sso", json=body, headers=bearer(owner["token"]["access_token"]))
    assert response.status_code == 200, response.text
    return owner


async def _sso_sign_in(client: AsyncTestClient[Litestar], slug: str) -> httpx.Response:
    login = await client.get(f"/api/v1/auth/sso/{slug}/login", follow_redirects=False)
    assert login.status_code == 302, login.text
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(login.headers["location"], follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return await client.get(f"{CALLBACK_PATH}?{urlsplit(answer.headers['location']).query}")


async def _reset_password(
    client: AsyncTestClient[Litestar], database: Database, email: str
) -> dict[str, Any]:
    """Ask for a reset link, as the address's owner, and set NEW_PASSWORD with it."""
    asked = await client.post("/api/v1/auth/password-reset", json={"email": email})
    assert asked.status_code == 202, asked.text
    link = (await queued_email(database, email, "reset_password")).context()["link"]
    reset = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token_in(link), "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 200, reset.text
    body: dict[str, Any] = reset.json()
    return body


# C: an account single sign-on made, without a password, is the address owner's to claim.


async def test_the_owner_of_an_address_a_stores_provider_claimed_gets_the_account_by_a_reset(
    client: AsyncTestClient[Litestar], database: Database, provider: OidcProvider
) -> None:
    # A trial merchant points single sign-on at a provider they run, which vouches for someone else's address.
    claimer = await _store_with_sso(client, database, provider)
    email = _email("ceo")
    provider.user = TestUser(sub="claimed", email=email, name="CEO")
    claimed = await _sso_sign_in(client, claimer["tenant"]["slug"])
    assert claimed.status_code == 200, claimed.text
    user_id = claimed.json()["user_id"]

    # The address's real owner cannot start a trial with it; the answer says how to get the account.
    signup = await client.post(
        "/api/v1/signup",
        json={"company_name": "BigCorp", "email": email, "password": PASSWORD, "slug": new_slug("big")},
    )
    assert (signup.status_code, signup.json()["code"], signup.json()["detail"]) == (
        409,
        "email_taken",
        EMAIL_TAKEN,
    )

    # A reset link reaches the password-less account; following it sets its password.
    assert await _reset_password(client, database, email) == {
        "user_id": user_id,
        "email": email,
        "sessions_ended": 1,
    }
    async with database.platform_session() as session:
        account = await session.get(User, uuid.UUID(user_id))
    assert account is not None
    assert account.password_hash is not None
    # The session the provider opened is over, and the owner signs in with the new password.
    ended = await client.post("/api/v1/auth/refresh", json={"refresh_token": claimed.json()["refresh_token"]})
    assert (ended.status_code, ended.json()["code"]) == (401, "invalid_credentials")
    assert await sign_in(client, email, claimer["tenant"]["slug"], NEW_PASSWORD)


# D: an invitation joins an existing account with a password only when given that password.


async def test_an_invitation_does_not_let_whoever_signed_up_with_the_address_into_the_store(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    email = _email("cfo")
    # Someone signs up with an address they do not own; its owner clicks the verification link sent there.
    squatter = await sign_up(client, email=email, password=SQUATTER_PASSWORD)
    await verify_email(client, database, email)
    employer = await sign_up(client, company_name="BigCorp")
    await invite(client, bearer(employer["token"]["access_token"]), email, "admin")
    token = await invitation_token(database, email)

    # The owner opens the invitation: the link alone no longer joins the squatter's account.
    refused = await client.post("/api/v1/invitations/accept", json={"token": token, "full_name": "CFO"})
    assert (refused.status_code, refused.json()["code"], refused.json()["errors"]) == (
        422,
        "validation_failed",
        [
            {
                "field": "password",
                "message": f"required: an Ordersmith account already uses {email}; enter its password "
                f"({RESET_THEN_AGAIN})",
            }
        ],
    )
    async with database.platform_session() as session:
        stores = (
            await session.scalars(
                select(Membership.tenant_id).where(Membership.user_id == uuid.UUID(squatter["user_id"]))
            )
        ).all()
    assert stores == [uuid.UUID(squatter["tenant"]["id"])]
    denied = await client.post(
        "/api/v1/auth/token",
        json={"email": email, "password": SQUATTER_PASSWORD, "tenant": employer["tenant"]["slug"]},
    )
    assert (denied.status_code, denied.json()["code"]) == (401, "invalid_credentials")

    # As the error says: the owner resets the password by email, then accepts with it.
    await _reset_password(client, database, email)
    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token, "password": NEW_PASSWORD}
    )
    assert accepted.status_code == 201, accepted.text
    assert (accepted.json()["user_id"], accepted.json()["role"]) == (squatter["user_id"], "admin")
    squatter_again = await client.post(
        "/api/v1/auth/token",
        json={"email": email, "password": SQUATTER_PASSWORD, "tenant": employer["tenant"]["slug"]},
    )
    assert (squatter_again.status_code, squatter_again.json()["code"]) == (401, "invalid_credentials")


async def test_guessing_an_accounts_password_through_an_invitation_counts_like_signing_in(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    person = await sign_up(client)
    email = person["email"]
    await verify_email(client, database, email)
    store = await sign_up(client)
    await invite(client, bearer(store["token"]["access_token"]), email, "viewer")
    token = await invitation_token(database, email)

    # Three tries go through at once; the fourth makes the next wait a second.
    statuses = [
        (
            await client.post("/api/v1/invitations/accept", json={"token": token, "password": f"Guess-{n}-x"})
        ).status_code
        for n in range(4)
    ]
    limited = await client.post("/api/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    assert statuses == [422, 422, 422, 422]
    assert (limited.status_code, limited.json()["code"], limited.headers["retry-after"]) == (
        429,
        "too_many_attempts",
        "1",
    )
    assert (
        limited.json()["detail"] == "too many failed sign-ins; try again in 1 second, or reset your password"
    )
    async with database.platform_session() as session:
        attempts = await session.scalar(
            select(AttemptCounter.attempts).where(AttemptCounter.key == f"account:tenant:{email}")
        )
    assert attempts == 4


async def test_an_account_without_a_password_joins_by_the_emailed_link_alone(
    client: AsyncTestClient[Litestar], database: Database, provider: OidcProvider
) -> None:
    sso_store = await _store_with_sso(client, database, provider)
    email = _email("engineer")
    provider.user = TestUser(sub="engineer", email=email, name="Engineer")
    made = await _sso_sign_in(client, sso_store["tenant"]["slug"])
    assert made.status_code == 200, made.text
    other = await sign_up(client)
    await invite(client, bearer(other["token"]["access_token"]), email, "manager")

    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": await invitation_token(database, email)}
    )
    assert accepted.status_code == 201, accepted.text
    assert (accepted.json()["user_id"], accepted.json()["role"], accepted.json()["tenant"]["slug"]) == (
        made.json()["user_id"],
        "manager",
        other["tenant"]["slug"],
    )
