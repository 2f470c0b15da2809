"""Sign-up, sign-in, refresh, sign-out and /me over HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.identity.permissions import ROLE_PERMISSIONS, Role
from ordersmith.platform.models import OutboxEvent
from ordersmith.platform.tenancy import archive_tenant, restore_tenant
from tests.support.http import PASSWORD, bearer, sign_in, sign_up
from tests.support.services import new_slug

OPERATOR = Actor("system", "cli:operator")


async def test_signup_creates_a_trial_store_and_signs_the_owner_in(client: AsyncTestClient[Litestar]) -> None:
    slug = new_slug("acme")
    before = dt.datetime.now(dt.UTC)
    result = await sign_up(client, slug=slug, company_name="Acme Outdoor", email=f"Ana@{slug}.example.com")

    assert result["tenant"]["slug"] == slug
    assert result["tenant"]["name"] == "Acme Outdoor"
    assert result["tenant"]["plan"] == "trial"
    assert result["tenant"]["status"] == "active"
    trial_ends = dt.datetime.fromisoformat(result["tenant"]["trial_ends_at"])
    assert dt.timedelta(days=13, hours=23) < trial_ends - before < dt.timedelta(days=14, minutes=1)
    assert result["role"] == "owner"
    assert result["token"]["token_type"] == "Bearer"
    assert result["token"]["expires_in"] in range(895, 901)

    me = await client.get("/api/v1/me", headers=bearer(result["token"]["access_token"]))
    assert me.status_code == 200
    body = me.json()
    assert body["user"]["email"] == f"ana@{slug}.example.com"
    assert body["user"]["email_verified"] is False
    assert body["reminders"] == ["verify_email"]
    assert body["role"] == "owner"
    assert body["permissions"] == sorted(ROLE_PERMISSIONS[Role.OWNER])
    assert body["tenant"]["slug"] == slug


async def test_signup_derives_a_slug_when_none_is_given(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/api/v1/signup",
        json={
            "company_name": "Café Ünïcode & Co",
            "email": f"{new_slug()}@example.com",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 201, response.text
    slug = response.json()["tenant"]["slug"]
    assert slug.startswith("cafe-unicode-co-")
    assert len(slug) == len("cafe-unicode-co-") + 6


async def test_a_duplicate_email_is_409_without_naming_the_store(client: AsyncTestClient[Litestar]) -> None:
    first = await sign_up(client)
    # With the account's own password, the sign-up would start a second store for it.
    response = await client.post(
        "/api/v1/signup",
        json={
            "company_name": "Copy",
            "email": first["email"].upper(),
            "password": f"Not-{PASSWORD}",
            "slug": new_slug(),
        },
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "email_taken"
    assert body["detail"] == (
        "an account with this email already exists; to start a new store with it, sign up again with that "
        "account's password, or, if you do not know it or it has none (an account made by single sign-on), "
        "ask for a reset link (POST /api/v1/auth/password-reset): the link emailed to this address sets the "
        "password"
    )
    assert first["tenant"]["slug"] not in response.text


async def test_a_weak_password_lists_every_rule_it_breaks(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/api/v1/signup",
        json={
            "company_name": "Weak",
            "email": "password1@example.com",
            "password": "password1",
            "slug": new_slug(),
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "password", "message": "must be at least 10 characters long"},
        {
            "field": "password",
            "message": "is one of the most common passwords; choose something less guessable",
        },
        {"field": "password", "message": "must not contain your email address"},
    ]
    common = await client.post(
        "/api/v1/signup",
        json={
            "company_name": "Weak",
            "email": "someone@example.com",
            "password": "Password123",
            "slug": new_slug(),
        },
    )
    assert common.json()["errors"] == [
        {
            "field": "password",
            "message": "is one of the most common passwords; choose something less guessable",
        }
    ]


async def test_a_malformed_email_and_slug_are_422(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/api/v1/signup",
        json={"company_name": "", "email": "not-an-email", "password": PASSWORD, "slug": "No!"},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "company_name", "message": "must not be empty"},
        {"field": "email", "message": "must be an email address like name@example.com"},
        {
            "field": "slug",
            "message": "must be 3 to 40 characters: lowercase letters, digits and hyphens, starting and "
            "ending with a letter or digit",
        },
    ]


@pytest.mark.parametrize("slug", ["-acme-shop", "acme-shop-", "-acme-"])
async def test_a_slug_starting_or_ending_with_a_hyphen_is_refused(
    client: AsyncTestClient[Litestar], slug: str
) -> None:
    # An operator's command would read "-acme-shop" as an option, not as the store it names.
    rule = (
        "must be 3 to 40 characters: lowercase letters, digits and hyphens, starting and ending with a "
        "letter or digit"
    )
    response = await client.post(
        "/api/v1/signup",
        json={"company_name": "Dash", "email": f"o{slug}@example.com", "password": PASSWORD, "slug": slug},
    )
    assert (response.status_code, response.json()["errors"]) == (422, [{"field": "slug", "message": rule}])
    available = await client.get("/api/v1/signup/slug-availability", params={"slug": slug})
    assert (available.status_code, available.json()["errors"]) == (422, [{"field": "slug", "message": rule}])


async def test_sign_in_refresh_and_reuse_revokes_the_family(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    slug = owner["tenant"]["slug"]
    signed_in = await client.post(
        "/api/v1/auth/token", json={"email": owner["email"], "password": PASSWORD, "tenant": slug}
    )
    assert signed_in.status_code == 200
    first_refresh = signed_in.json()["refresh_token"]

    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": first_refresh})
    assert rotated.status_code == 200
    second_refresh = rotated.json()["refresh_token"]
    assert second_refresh != first_refresh
    assert (await client.get("/api/v1/me", headers=bearer(rotated.json()["access_token"]))).status_code == 200

    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": first_refresh})
    assert reused.status_code == 401
    assert reused.json()["code"] == "refresh_token_reused"
    # The whole family is gone, including the token that was never used.
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": second_refresh})
    assert after.status_code == 401
    assert after.json()["code"] == "invalid_credentials"
    # The person is told: a reused token usually means a stolen one.
    async with database.platform_session() as session:
        alerts = (
            (
                await session.execute(
                    select(OutboxEvent.payload).where(
                        OutboxEvent.topic == "email.requested",
                        OutboxEvent.payload["template"].astext == "security_alert",
                        OutboxEvent.payload["to"].astext == owner["email"],
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(alerts) == 1
    assert alerts[0]["context"]["store_name"] == "Acme Outdoor"


async def test_logout_ends_the_session(client: AsyncTestClient[Litestar]) -> None:
    owner = await sign_up(client)
    refresh_token = owner["token"]["refresh_token"]
    assert (
        await client.post("/api/v1/auth/logout", json={"refresh_token": refresh_token})
    ).status_code == 200
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert response.status_code == 401


async def test_an_archived_store_refuses_a_refresh_and_a_restore_lets_the_session_go_on(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    slug, refresh_token = owner["tenant"]["slug"], owner["token"]["refresh_token"]
    await archive_tenant(database, slug, actor=OPERATOR)
    refused = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert (refused.status_code, refused.json()["code"], refused.json()["detail"]) == (
        403,
        "tenant_archived",
        f"store {slug!r} is archived: nobody can use it until a vendor administrator restores it "
        f"(`ordersmith tenants restore -- {slug}`)",
    )
    await restore_tenant(database, slug, actor=OPERATOR)
    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert rotated.status_code == 200, rotated.text
    assert (await client.get("/api/v1/me", headers=bearer(rotated.json()["access_token"]))).status_code == 200


async def test_wrong_password_then_slow_down_then_lock(client: AsyncTestClient[Litestar]) -> None:
    owner = await sign_up(client)
    attempt = {"email": owner["email"], "password": "wrong-password-1", "tenant": owner["tenant"]["slug"]}
    codes = []
    for _ in range(5):
        response = await client.post("/api/v1/auth/token", json=attempt)
        codes.append(response.json()["code"])
    # Three free failures, then a wait of 1 s after the 4th: the 5th comes too soon.
    assert codes == ["invalid_credentials"] * 4 + ["too_many_attempts"]
    throttled = await client.post("/api/v1/auth/token", json={**attempt, "password": PASSWORD})
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] in ("1", "2")
    assert throttled.json()["detail"].startswith("too many failed sign-ins; try again in ")


async def test_the_store_is_found_whatever_its_case_and_surrounding_spaces(
    client: AsyncTestClient[Litestar],
) -> None:
    owner = await sign_up(client)
    slug = owner["tenant"]["slug"]
    # Typed as people type it, like the email beside it.
    signed_in = await client.post(
        "/api/v1/auth/token",
        json={"email": f" {owner['email'].upper()} ", "password": PASSWORD, "tenant": f"  {slug.upper()} "},
    )
    assert signed_in.status_code == 200, signed_in.text
    me = await client.get("/api/v1/me", headers=bearer(signed_in.json()["access_token"]))
    assert me.json()["tenant"]["slug"] == slug


async def test_an_unknown_store_is_404_and_a_bad_token_is_401(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/api/v1/auth/token", json={"email": "a@example.com", "password": PASSWORD, "tenant": "no-such-store"}
    )
    assert (response.status_code, response.json()["code"]) == (404, "tenant_not_found")
    owner = await sign_up(client)
    tampered = owner["token"]["access_token"][:-4] + "AAAA"
    for headers in (bearer(tampered), bearer("garbage"), {"Authorization": "Basic abc"}, {}):
        unauthorized = await client.get("/api/v1/me", headers=headers)
        assert unauthorized.status_code == 401, headers
        assert unauthorized.json()["code"] == "unauthenticated"


async def test_the_cookie_session_needs_the_csrf_token_to_change_things(
    client: AsyncTestClient[Litestar],
) -> None:
    owner = await sign_up(client)
    response = await client.post(
        "/api/v1/auth/token",
        json={
            "email": owner["email"],
            "password": PASSWORD,
            "tenant": owner["tenant"]["slug"],
            "session": "cookie",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["access_token"], body["refresh_token"], body["token_type"]) == (None, None, "Cookie")
    csrf = body["csrf_token"]
    assert client.cookies.get("ordersmith_csrf") == csrf

    assert (await client.get("/api/v1/me")).status_code == 200
    refused = await client.patch("/api/v1/store", json={"display_name": "Cookie Shop"})
    assert (refused.status_code, refused.json()["code"]) == (403, "csrf_failed")
    changed = await client.patch(
        "/api/v1/store", json={"display_name": "Cookie Shop"}, headers={"X-CSRF-Token": csrf}
    )
    assert changed.status_code == 200
    assert changed.json()["display_name"] == "Cookie Shop"


async def test_an_owner_reads_and_changes_the_store(client: AsyncTestClient[Litestar]) -> None:
    owner = await sign_up(client, company_name="Bolt Bikes")
    token = await sign_in(client, owner["email"], owner["tenant"]["slug"])
    store = await client.get("/api/v1/store", headers=bearer(token))
    assert store.json() == {
        "display_name": "Bolt Bikes",
        "default_currency": "EUR",
        "timezone": "UTC",
        "review_orders_over_amount": None,
        "review_first_orders": False,
    }
    bad = await client.patch("/api/v1/store", json={"default_currency": "euro"}, headers=bearer(token))
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {
            "field": "default_currency",
            "message": "must be the ISO 4217 code of a currency, such as EUR or USD",
        }
    ]
    good = await client.patch("/api/v1/store", json={"timezone": "Europe/Paris"}, headers=bearer(token))
    assert good.json() == {
        "display_name": "Bolt Bikes",
        "default_currency": "EUR",
        "timezone": "Europe/Paris",
        "review_orders_over_amount": None,
        "review_first_orders": False,
    }
