"""Sign-up limits: sign-ups per client address and per hour, and the company name's length."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, select

from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import AttemptCounter, User
from ordersmith.platform.settings import Settings
from tests.support.http import PASSWORD, sign_up
from tests.support.services import new_slug

# Every request of the test client comes from this address.
TEST_CLIENT_SIGNUPS = "address:signup:testclient"


async def _forget_test_client_signups(database: Database) -> None:
    async with database.platform_session() as session:
        await session.execute(delete(AttemptCounter).where(AttemptCounter.key == TEST_CLIENT_SIGNUPS))


@pytest.fixture
async def limited_client(settings: Settings, database: Database) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app with 3 sign-ups an hour per address, counting afresh for the test client."""
    await _forget_test_client_signups(database)
    app = create_app(dataclasses.replace(settings, signup_limit_per_hour=3))
    try:
        async with AsyncTestClient(app) as client:
            yield client
    finally:
        # Every other test signs up from the same address, under a limit it must not inherit.
        await _forget_test_client_signups(database)


def _signup(email: str, **fields: str) -> dict[str, str]:
    return {
        "company_name": "Acme Outdoor",
        "email": email,
        "password": PASSWORD,
        "slug": new_slug(),
        **fields,
    }


async def test_sign_ups_from_one_address_stop_at_the_hourly_limit_refused_ones_included(
    limited_client: AsyncTestClient[Litestar], database: Database
) -> None:
    # Input refused before anything is looked up costs nothing.
    invalid = await limited_client.post("/api/v1/signup", json=_signup("not-an-email"))
    assert invalid.status_code == 422
    owner = await sign_up(limited_client)
    # Probing known addresses counts like signing up (with the account's password it would be one).
    for _ in range(2):
        taken = await limited_client.post(
            "/api/v1/signup", json=_signup(owner["email"], password=f"Not-{PASSWORD}")
        )
        assert (taken.status_code, taken.json()["code"]) == (409, "email_taken")
    newcomer = f"{new_slug('newcomer')}@example.com"

    refused = await limited_client.post("/api/v1/signup", json=_signup(newcomer))

    assert refused.status_code == 429
    assert refused.headers["retry-after"] in ("3599", "3600")
    body = refused.json()
    assert body["code"] == "too_many_attempts"
    assert body["detail"] == "too many sign-ups from your network; try again in 60 minutes"
    async with database.platform_session() as session:
        assert (await session.execute(select(User.id).where(User.email == newcomer))).first() is None


async def test_a_company_name_longer_than_200_characters_is_422(client: AsyncTestClient[Litestar]) -> None:
    email = f"{new_slug('owner')}@example.com"

    too_long = await client.post("/api/v1/signup", json=_signup(email, company_name="A" * 201))

    assert too_long.status_code == 422
    assert too_long.json()["errors"] == [
        {"field": "company_name", "message": "must be at most 200 characters"}
    ]
    # The limit applies to the name as stored, without the spaces around it.
    longest = await sign_up(client, email=email, company_name=f"  {'A' * 200}  ")
    assert longest["tenant"]["name"] == "A" * 200
