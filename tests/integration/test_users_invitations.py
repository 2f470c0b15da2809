"""Invitations: single use, expiring, revocable; existing verified accounts join with their password."""

from __future__ import annotations

import datetime as dt
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import Invitation, Membership, User
from ordersmith.platform.identity.tokens import secret_hash
from tests.support.http import PASSWORD, bearer, sign_in, sign_up
from tests.support.mail import queued_email, token_in
from tests.support.members import audit_trail, invitation_token, invite, last_audit_id, verify_email

ASK_AGAIN = "ask the store's admin to invite you again"
SQUATTER_PASSWORD = "Squatters-Keep-Out-19"
RESET_THEN_AGAIN = (
    "if you do not know it, reset it from the 'Forgot your password?' page with this address, "
    "then open this invitation link again"
)


def _email() -> str:
    return f"guest-{uuid.uuid4().hex[:10]}@example.com"


async def test_an_existing_account_joins_another_store_with_its_password(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store_a = await sign_up(client, company_name="First Store")
    await verify_email(client, database, store_a["email"])
    store_b = await sign_up(client, company_name="Second Store")
    b_headers = bearer(store_b["token"]["access_token"])
    await invite(client, b_headers, store_a["email"].upper(), "agent")
    token = await invitation_token(database, store_a["email"])

    # The account's password is asked for: the link proves the address, not who holds the
    # password (test_address_ownership.py has the rest).
    refused = await client.post("/api/v1/invitations/accept", json={"token": token})
    assert (refused.status_code, refused.json()["code"], refused.json()["errors"]) == (
        422,
        "validation_failed",
        [
            {
                "field": "password",
                "message": f"required: an Ordersmith account already uses {store_a['email']}; enter its "
                f"password ({RESET_THEN_AGAIN})",
            }
        ],
    )
    accepted = await client.post("/api/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 201, accepted.text
    body = accepted.json()
    assert (body["user_id"], body["role"], body["tenant"]["slug"]) == (
        store_a["user_id"],
        "agent",
        store_b["tenant"]["slug"],
    )
    me = (await client.get("/api/v1/me", headers=bearer(body["token"]["access_token"]))).json()
    assert (me["role"], me["tenant"]["slug"]) == ("agent", store_b["tenant"]["slug"])
    # One person, two stores, one password.
    assert await sign_in(client, store_a["email"], store_b["tenant"]["slug"])
    a_me = await client.get(
        "/api/v1/me", headers=bearer(await sign_in(client, store_a["email"], store_a["tenant"]["slug"]))
    )
    assert a_me.json()["role"] == "owner"
    entry = [
        item
        for item in await audit_trail(database, store_b["tenant"]["id"])
        if item["action"] == "invitation.accepted"
    ]
    assert [item["data"] for item in entry] == [
        {"email": store_a["email"], "role": "agent", "new_account": False}
    ]

    again = await client.post(
        "/api/v1/invitations", json={"email": store_a["email"], "role": "viewer"}, headers=b_headers
    )
    assert (again.status_code, again.json()["code"]) == (409, "already_member")
    assert again.json()["detail"] == (
        f"{store_a['email']} is already a member of this store (active); change their role or status instead"
    )


async def test_an_account_with_an_unverified_email_is_not_joined(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    email = _email()
    # Someone who does not own the address signs up with it before its owner is invited.
    squatter = await sign_up(client, email=email, password=SQUATTER_PASSWORD)
    store = await sign_up(client, company_name="Victim's Employer")
    invitation = await invite(client, bearer(store["token"]["access_token"]), email, "admin")
    token = await invitation_token(database, email)

    for body in ({"token": token}, {"token": token, "password": PASSWORD, "full_name": "Rightful Owner"}):
        refused = await client.post("/api/v1/invitations/accept", json=body)
        assert (refused.status_code, refused.json()["code"], refused.json()["detail"]) == (
            409,
            "account_unverified",
            f"an account for {email} exists but its email address was never confirmed, so this invitation "
            "cannot join it; confirm the address with the link emailed at sign-up, or reset that account's "
            "password (the emailed reset link confirms the address too), then open this invitation link "
            "again",
        )

    squatter_id = uuid.UUID(squatter["user_id"])
    async with database.platform_session() as session:
        joined = (
            await session.scalars(select(Membership.tenant_id).where(Membership.user_id == squatter_id))
        ).all()
        account = await session.get(User, squatter_id)
    assert joined == [uuid.UUID(squatter["tenant"]["id"])]
    assert account is not None
    assert account.email_verified_at is None
    denied = await client.post(
        "/api/v1/auth/token",
        json={"email": email, "password": SQUATTER_PASSWORD, "tenant": store["tenant"]["slug"]},
    )
    assert (denied.status_code, denied.json()["code"]) == (401, "invalid_credentials")
    headers = bearer(store["token"]["access_token"])
    assert (await client.get(f"/api/v1/invitations/{invitation['id']}", headers=headers)).json()[
        "status"
    ] == "pending"

    # The address's owner takes the account back through the emailed reset link; the same
    # invitation then joins it, and the squatter's password and sessions are gone.
    assert (await client.post("/api/v1/auth/password-reset", json={"email": email})).status_code == 202
    reset_link = (await queued_email(database, email, "reset_password")).context()["link"]
    reset = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token_in(reset_link), "new_password": PASSWORD}
    )
    assert reset.status_code == 200, reset.text
    accepted = await client.post("/api/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 201, accepted.text
    assert (accepted.json()["user_id"], accepted.json()["role"]) == (squatter["user_id"], "admin")
    assert await sign_in(client, email, store["tenant"]["slug"])
    locked_out = await client.post(
        "/api/v1/auth/token",
        json={"email": email, "password": SQUATTER_PASSWORD, "tenant": squatter["tenant"]["slug"]},
    )
    assert (locked_out.status_code, locked_out.json()["code"]) == (401, "invalid_credentials")
    stale = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": squatter["token"]["refresh_token"]}
    )
    assert (stale.status_code, stale.json()["code"]) == (401, "invalid_credentials")


async def test_a_link_works_once_and_not_after_it_expires_or_is_withdrawn(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])

    used_email = _email()
    await invite(client, headers, used_email, "viewer")
    used = await invitation_token(database, used_email)
    assert (
        await client.post("/api/v1/invitations/accept", json={"token": used, "password": PASSWORD})
    ).status_code == 201
    expired_email = _email()
    await invite(client, headers, expired_email, "viewer")
    expired = await invitation_token(database, expired_email)
    async with database.platform_session() as session:
        await session.execute(
            update(Invitation)
            .where(Invitation.token_hash == secret_hash(expired))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    revoked_email = _email()
    revoked_invitation = await invite(client, headers, revoked_email, "viewer")
    revoked = await invitation_token(database, revoked_email)
    assert (
        await client.delete(f"/api/v1/invitations/{revoked_invitation['id']}", headers=headers)
    ).status_code == 204

    cases = {
        used: f"this invitation was already accepted; sign in to the store, or {ASK_AGAIN}",
        expired: f"this invitation expired; {ASK_AGAIN}",
        revoked: f"this invitation was withdrawn; {ASK_AGAIN}",
        "oin_made-up": f"this invitation link is not valid; check that you copied all of it, or {ASK_AGAIN}",
    }
    for token, detail in cases.items():
        response = await client.post(
            "/api/v1/invitations/accept", json={"token": token, "password": PASSWORD}
        )
        assert (response.status_code, response.json()["code"], response.json()["detail"]) == (
            410,
            "token_gone",
            detail,
        )


async def test_a_new_account_needs_a_good_password(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    email = _email()
    await invite(client, bearer(owner["token"]["access_token"]), email, "agent")
    token = await invitation_token(database, email)

    missing = await client.post("/api/v1/invitations/accept", json={"token": token})
    assert missing.status_code == 422
    assert missing.json()["errors"] == [
        {"field": "password", "message": "required: choose a password for your new account"}
    ]
    weak = await client.post(
        "/api/v1/invitations/accept", json={"token": token, "password": "short", "full_name": "x" * 201}
    )
    assert weak.json()["errors"] == [
        {"field": "password", "message": "must be at least 10 characters long"},
        {"field": "full_name", "message": "must be at most 200 characters"},
    ]
    # The refusals did not use the link up.
    good = await client.post("/api/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    assert good.status_code == 201


async def test_pending_invitations_are_listed_replaced_and_revoked(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_id = owner["tenant"]["id"]
    headers = bearer(owner["token"]["access_token"])
    since = await last_audit_id(database, tenant_id)
    email = _email()
    first = await invite(client, headers, email, "viewer")
    first_token = await invitation_token(database, email)
    # Inviting the same address again replaces the pending invitation and its link.
    second = await invite(client, headers, email, "agent")
    other = await invite(client, headers, _email(), "manager")

    listed = await client.get("/api/v1/invitations?limit=1", headers=headers)
    assert [item["id"] for item in listed.json()["data"]] == [other["id"]]
    rest = await client.get(f"/api/v1/invitations?cursor={listed.json()['next_cursor']}", headers=headers)
    assert rest.json() == {"data": [second], "next_cursor": None}
    assert (await client.get(f"/api/v1/invitations/{first['id']}", headers=headers)).json()[
        "status"
    ] == "revoked"
    stale = await client.post("/api/v1/invitations/accept", json={"token": first_token, "password": PASSWORD})
    assert stale.status_code == 410

    assert (await client.delete(f"/api/v1/invitations/{second['id']}", headers=headers)).status_code == 204
    assert (await client.delete(f"/api/v1/invitations/{second['id']}", headers=headers)).status_code == 204
    remaining = await client.get("/api/v1/invitations", headers=headers)
    assert [item["id"] for item in remaining.json()["data"]] == [other["id"]]
    accepted = await client.post(
        "/api/v1/invitations/accept",
        json={"token": await invitation_token(database, other["email"]), "password": PASSWORD},
    )
    assert accepted.status_code == 201
    too_late = await client.delete(f"/api/v1/invitations/{other['id']}", headers=headers)
    assert (too_late.status_code, too_late.json()["detail"]) == (
        409,
        "this invitation was already accepted; deactivate the member instead",
    )
    assert [
        item["id"] for item in (await client.get("/api/v1/invitations", headers=headers)).json()["data"]
    ] == []

    trail = [
        (entry["action"], entry["target_id"], entry["data"])
        for entry in await audit_trail(database, tenant_id, since=since)
    ]
    assert trail == [
        ("invitation.created", first["id"], {"email": email, "role": "viewer", "replaced": 0}),
        ("invitation.created", second["id"], {"email": email, "role": "agent", "replaced": 1}),
        ("invitation.created", other["id"], {"email": other["email"], "role": "manager", "replaced": 0}),
        ("invitation.revoked", second["id"], {"email": email, "role": "agent"}),
        (
            "invitation.accepted",
            other["id"],
            {"email": other["email"], "role": "manager", "new_account": True},
        ),
    ]
    async with database.platform_session() as session:
        stored = (await session.scalars(select(Invitation.token_hash).where(Invitation.email == email))).all()
    assert secret_hash(first_token) in stored
    assert all(len(value) == 32 for value in stored)


async def test_invitation_input_is_checked(client: AsyncTestClient[Litestar]) -> None:
    owner = await sign_up(client)
    response = await client.post(
        "/api/v1/invitations",
        json={"email": "not-an-address", "role": "chief"},
        headers=bearer(owner["token"]["access_token"]),
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "email", "message": "must be an email address like name@example.com"},
        {"field": "role", "message": "must be one of owner, admin, manager, agent, viewer"},
    ]
