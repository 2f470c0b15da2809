"""Email verification and password reset, end to end over HTTP, links read from the dev mailbox."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, insert, select, update

from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import (
    ActionToken,
    ApiKey,
    AttemptCounter,
    AuditEntry,
    Membership,
)
from ordersmith.platform.identity.recovery import request_password_reset
from ordersmith.platform.identity.tokens import new_secret, secret_hash
from ordersmith.platform.settings import Settings
from ordersmith.platform.tenancy import TenantRecord
from tests.support.http import PASSWORD, bearer, sign_in, sign_up
from tests.support.mail import deliver_emails, mail_settings, token_in
from tests.support.services import new_slug

NEW_PASSWORD = "Quiet-Lantern-Harbor-42"
RESET_REQUESTED = (
    "if an account uses this address, a link to choose a new password is on its way; it works for 60 minutes"
)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    with mail_settings(settings):
        async with AsyncTestClient(create_app(settings)) as client:
            yield client


async def _emails(client: AsyncTestClient[Litestar], database: Database, to: str) -> list[dict[str, Any]]:
    """Deliver what is queued, then the mailbox of `to`, newest first."""
    await deliver_emails(database)
    response = await client.get("/api/v1/dev/mailbox", params={"to": to})
    assert response.status_code == 200, response.text
    emails: list[dict[str, Any]] = response.json()["data"]
    return emails


async def _latest_token(client: AsyncTestClient[Litestar], database: Database, to: str) -> str:
    return token_in((await _emails(client, database, to))[0]["text_body"])


async def _audit_actions(
    database: Database, tenant_id: str, user_id: str
) -> list[tuple[str, dict[str, Any]]]:
    async with database.platform_session() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.data)
            .where(AuditEntry.tenant_id == uuid.UUID(tenant_id), AuditEntry.target_id == user_id)
            .order_by(AuditEntry.id)
        )
    return [(action, data) for action, data in rows]


async def _expire(database: Database, token: str) -> None:
    async with database.platform_session() as session:
        await session.execute(
            update(ActionToken)
            .where(ActionToken.token_hash == secret_hash(token))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )


async def test_the_signup_link_verifies_the_email_once(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client, company_name="Acme Outdoor")
    [email] = await _emails(client, database, owner["email"])
    assert email["subject"] == "Confirm your email address for Acme Outdoor"
    token = token_in(email["text_body"])

    response = await client.post("/api/v1/auth/verify-email", json={"token": token})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == owner["user_id"]
    assert body["email"] == owner["email"]
    assert body["email_verified"] is True
    verified_at = dt.datetime.fromisoformat(body["email_verified_at"])
    assert dt.timedelta(0) <= dt.datetime.now(dt.UTC) - verified_at < dt.timedelta(seconds=10)
    me = (await client.get("/api/v1/me", headers=bearer(owner["token"]["access_token"]))).json()
    assert me["user"]["email_verified"] is True
    assert me["reminders"] == []
    assert await _audit_actions(database, owner["tenant"]["id"], owner["user_id"]) == [
        ("auth.email_verified", {})
    ]

    again = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 410
    assert again.json()["code"] == "token_gone"
    assert again.json()["detail"] == (
        "this link was already used; request a new link: sign in and ask for the verification email again"
    )


async def test_an_expired_or_unknown_verification_link_is_410(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    token = await _latest_token(client, database, owner["email"])
    await _expire(database, token)

    expired = await client.post("/api/v1/auth/verify-email", json={"token": token})
    unknown = await client.post("/api/v1/auth/verify-email", json={"token": "oat_not-a-real-token"})

    assert expired.status_code == 410
    assert expired.json()["detail"] == (
        "this link has expired; request a new link: sign in and ask for the verification email again"
    )
    assert unknown.status_code == 410
    assert unknown.json()["detail"] == (
        "this link is not valid (it may be incomplete); request a new link: sign in and ask for the "
        "verification email again"
    )
    me = (await client.get("/api/v1/me", headers=bearer(owner["token"]["access_token"]))).json()
    assert me["reminders"] == ["verify_email"]


async def test_resending_sends_a_fresh_link_after_a_minute_and_never_once_verified(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client, company_name="Acme Outdoor")
    headers = bearer(owner["token"]["access_token"])
    first_token = await _latest_token(client, database, owner["email"])

    too_soon = await client.post("/api/v1/auth/verify-email/resend", headers=headers)
    assert too_soon.status_code == 429
    assert too_soon.json()["code"] == "too_many_attempts"
    assert 1 <= int(too_soon.headers["retry-after"]) <= 60

    async with database.platform_session() as session:
        await session.execute(
            update(ActionToken)
            .where(ActionToken.token_hash == secret_hash(first_token))
            .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2))
        )
    resent = await client.post("/api/v1/auth/verify-email/resend", headers=headers)
    assert resent.status_code == 202, resent.text
    assert resent.json() == {"sent_to": owner["email"]}
    emails = await _emails(client, database, owner["email"])
    assert [email["subject"] for email in emails] == ["Confirm your email address for Acme Outdoor"] * 2
    second_token = token_in(emails[0]["text_body"])
    assert second_token != first_token

    assert (await client.post("/api/v1/auth/verify-email", json={"token": second_token})).status_code == 200
    # One proof is enough: the older link is spent with it.
    assert (await client.post("/api/v1/auth/verify-email", json={"token": first_token})).status_code == 410
    done = await client.post("/api/v1/auth/verify-email/resend", headers=headers)
    assert done.status_code == 409
    assert done.json()["code"] == "email_already_verified"
    assert done.json()["detail"] == f"{owner['email']} is already verified; there is nothing to do"


async def test_resending_needs_a_signed_in_person(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    key = new_secret("osk_" + uuid.uuid4().hex[:12])
    async with database.platform_session() as session:
        await session.execute(
            insert(ApiKey).values(
                id=uuid.uuid4(),
                tenant_id=uuid.UUID(owner["tenant"]["id"]),
                name="integration",
                prefix=key.split("_")[1],
                secret_hash=secret_hash(key),
                scopes=["orders:read"],
            )
        )

    anonymous = await client.post("/api/v1/auth/verify-email/resend")
    with_key = await client.post("/api/v1/auth/verify-email/resend", headers=bearer(key))

    assert anonymous.status_code == 401
    assert with_key.status_code == 403
    assert with_key.json()["detail"] == (
        "only a signed-in person has an email address to verify; API keys have none"
    )


async def test_a_reset_request_for_an_unknown_address_looks_the_same_and_sends_nothing(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    await deliver_emails(database)
    unknown = f"{new_slug('nobody')}@example.com"

    for_unknown = await client.post("/api/v1/auth/password-reset", json={"email": unknown})
    for_known = await client.post("/api/v1/auth/password-reset", json={"email": owner["email"].upper()})

    assert (for_unknown.status_code, for_unknown.json()) == (202, {"detail": RESET_REQUESTED})
    assert (for_known.status_code, for_known.json()) == (202, {"detail": RESET_REQUESTED})
    assert await _emails(client, database, unknown) == []
    [reset, _verification] = await _emails(client, database, owner["email"])
    assert reset["subject"] == "Reset your Ordersmith password"


@contextmanager
def _statements(database: Database) -> Iterator[list[str]]:
    """The SQL the app runs inside the block, in order."""
    seen: list[str] = []

    def record(connection: Any, cursor: Any, statement: str, *context: Any) -> None:
        seen.append(statement)

    event.listen(database.runtime.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.runtime.sync_engine, "before_cursor_execute", record)


async def test_a_reset_request_does_the_same_work_whether_or_not_the_address_has_an_account(
    client: AsyncTestClient[Litestar], database: Database, settings: Settings
) -> None:
    owner = await sign_up(client)
    await deliver_emails(database)
    unknown = f"{new_slug('nobody')}@example.com"

    with _statements(database) as for_known:
        await request_password_reset(
            database, email=owner["email"], public_url=settings.public_url, client_address=None
        )
    with _statements(database) as for_unknown:
        await request_password_reset(
            database, email=unknown, public_url=settings.public_url, client_address=None
        )

    # Count the request, record the address: the account is looked up by the worker.
    assert len(for_known) == 2
    assert for_known == for_unknown
    async with database.platform_session() as session:
        links = (
            await session.execute(
                select(ActionToken.id).where(
                    ActionToken.user_id == uuid.UUID(owner["user_id"]),
                    ActionToken.purpose == "reset_password",
                )
            )
        ).all()
    assert links == []
    [reset, _verification] = await _emails(client, database, owner["email"])
    assert reset["subject"] == "Reset your Ordersmith password"
    assert await _emails(client, database, unknown) == []


async def test_a_malformed_address_is_422(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/api/v1/auth/password-reset", json={"email": "not-an-address"})

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "email", "message": "must be an email address like name@example.com"}
    ]


async def test_reset_requests_are_rate_limited_per_address_whether_or_not_it_has_an_account(
    client: AsyncTestClient[Litestar],
) -> None:
    owner = await sign_up(client)
    for address in (owner["email"], f"{new_slug('nobody')}@example.com"):
        statuses = [
            (await client.post("/api/v1/auth/password-reset", json={"email": address})).status_code
            for _ in range(3)
        ]
        limited = await client.post("/api/v1/auth/password-reset", json={"email": address})

        assert statuses == [202, 202, 202]
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        assert limited.json()["detail"] == (
            "too many reset requests for this address; check your inbox for the link already sent, "
            "or try again in 1 second"
        )


async def test_a_password_reset_sets_the_password_and_ends_every_session(
    client: AsyncTestClient[Litestar], database: Database, tenant: TenantRecord
) -> None:
    owner = await sign_up(client, company_name="Acme Outdoor")
    email, slug = owner["email"], owner["tenant"]["slug"]
    second_session = await client.post(
        "/api/v1/auth/token", json={"email": email, "password": PASSWORD, "tenant": slug}
    )
    refresh_tokens = [owner["token"]["refresh_token"], second_session.json()["refresh_token"]]
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        # The owner also works in a second store, and has locked themselves out by guessing.
        await session.execute(
            insert(Membership).values(
                id=uuid.uuid4(), tenant_id=tenant.id, user_id=uuid.UUID(owner["user_id"]), role="agent"
            )
        )
        await session.execute(
            insert(AttemptCounter).values(
                key=f"account:tenant:{email}",
                attempts=10,
                last_attempt_at=now,
                blocked_until=now + dt.timedelta(minutes=15),
            )
        )
    assert (
        await client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD, "tenant": slug})
    ).status_code == 429

    assert (await client.post("/api/v1/auth/password-reset", json={"email": email})).status_code == 202
    [reset, _verification] = await _emails(client, database, email)
    token = token_in(reset["text_body"])
    assert f"http://127.0.0.1:8000/reset-password?token={token}" in reset["text_body"]
    assert "expires in 60 minutes" in reset["text_body"]
    assert f'href="http://127.0.0.1:8000/reset-password?token={token}"' in reset["html_body"]

    weak = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": "short"}
    )
    assert weak.status_code == 422
    assert weak.json()["errors"] == [
        {"field": "new_password", "message": "must be at least 10 characters long"}
    ]

    done = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )

    assert done.status_code == 200, done.text
    assert done.json() == {"user_id": owner["user_id"], "email": email, "sessions_ended": 2}
    for refresh_token in refresh_tokens:
        refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
        assert refreshed.status_code == 401
    old_password = await client.post(
        "/api/v1/auth/token", json={"email": email, "password": PASSWORD, "tenant": slug}
    )
    assert old_password.status_code == 401
    assert await sign_in(client, email, slug, password=NEW_PASSWORD)
    reused = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD + "!"}
    )
    assert reused.status_code == 410
    assert reused.json()["detail"] == (
        "this link was already used; request a new link from the 'Forgot your password?' page"
    )

    alert = (await _emails(client, database, email))[0]
    assert alert["subject"] == "Security alert for your Acme Outdoor, Test Shop account"
    assert "Your password was reset through a link sent to this address" in alert["text_body"]
    for tenant_id in (owner["tenant"]["id"], str(tenant.id)):
        assert ("auth.password_reset", {"sessions_ended": 2}) in await _audit_actions(
            database, tenant_id, owner["user_id"]
        )


async def test_an_expired_or_superseded_reset_link_is_410(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    await client.post("/api/v1/auth/password-reset", json={"email": owner["email"]})
    first = await _latest_token(client, database, owner["email"])
    await client.post("/api/v1/auth/password-reset", json={"email": owner["email"]})
    second = await _latest_token(client, database, owner["email"])
    await _expire(database, second)

    superseded = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": first, "new_password": NEW_PASSWORD}
    )
    expired = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": second, "new_password": NEW_PASSWORD}
    )

    assert superseded.status_code == 410
    assert superseded.json()["detail"] == (
        "this link was already used; request a new link from the 'Forgot your password?' page"
    )
    assert expired.status_code == 410
    assert expired.json()["detail"] == (
        "this link has expired; request a new link from the 'Forgot your password?' page"
    )
    assert await sign_in(client, owner["email"], owner["tenant"]["slug"])


async def test_a_verification_link_cannot_reset_a_password(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    verification = await _latest_token(client, database, owner["email"])

    response = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": verification, "new_password": NEW_PASSWORD}
    )

    assert response.status_code == 410
    assert await sign_in(client, owner["email"], owner["tenant"]["slug"])
