"""A store's single sign-on settings over HTTP: set, read, remove; the secret stays sealed."""

from __future__ import annotations

import dataclasses
import sys
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.errors import ValidationFailedError
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.identity.models import AuditEntry, TenantSsoConfig
from ordersmith.platform.identity.oidc import NetworkPolicy
from ordersmith.platform.identity.sso import (
    SsoSecretUnreadableError,
    configure_sso,
    open_client_secret,
    seal_client_secret,
)
from ordersmith.platform.settings import Settings
from ordersmith.platform.tenancy import TenantRecord
from tests.support.entitlements import sign_up_with_sso
from tests.support.http import bearer, sign_up
from tests.support.members import add_member


@pytest.fixture(autouse=True)
def _stores_have_sso(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Single sign-on is an Enterprise feature: every store these tests sign up has it."""

    async def sign_up_having_sso(client: AsyncTestClient[Litestar], **extra: Any) -> dict[str, Any]:
        return await sign_up_with_sso(client, database, **extra)

    monkeypatch.setattr(sys.modules[__name__], "sign_up", sign_up_having_sso)


SECRET = "s3cr3t-value-from-the-provider"
ISSUER = "https://login.acme-idp.example"


def _settings_body(**overrides: Any) -> dict[str, Any]:
    return {"issuer": ISSUER, "client_id": "ordersmith-acme", "client_secret": SECRET, **overrides}


async def _audit(database: Database, tenant_id: str, action: str) -> list[AuditEntry]:
    async with database.platform_session() as session:
        rows = await session.execute(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == uuid.UUID(tenant_id), AuditEntry.action == action)
            .order_by(AuditEntry.id)
        )
        return list(rows.scalars())


async def test_an_owner_sets_sso_and_the_secret_is_never_shown(
    client: AsyncTestClient[Litestar], database: Database, settings: Settings
) -> None:
    owner = await sign_up(client)
    token = owner["token"]["access_token"]
    tenant_id, slug = owner["tenant"]["id"], owner["tenant"]["slug"]

    response = await client.put("/api/v1/sso", json=_settings_body(), headers=bearer(token))

    assert response.status_code == 200, response.text
    body = response.json()
    updated_at = body.pop("updated_at")
    assert body == {
        "issuer": ISSUER,
        "client_id": "ordersmith-acme",
        "default_role": "agent",
        "enabled": True,
        "has_client_secret": True,
        "callback_url": "http://127.0.0.1:8000/api/v1/auth/sso/callback",
        "login_url": f"http://127.0.0.1:8000/api/v1/auth/sso/{slug}/login",
    }
    assert SECRET not in response.text
    read = await client.get("/api/v1/sso", headers=bearer(token))
    assert read.status_code == 200
    assert read.json() == {**body, "updated_at": updated_at}
    assert SECRET not in read.text

    async with database.platform_session() as session:
        row = await session.get(TenantSsoConfig, uuid.UUID(tenant_id))
    assert row is not None
    assert SECRET.encode() not in row.client_secret_encrypted
    assert open_client_secret(settings.secret_key, row.tenant_id, row.client_secret_encrypted) == SECRET

    [entry] = await _audit(database, tenant_id, "sso.configured")
    assert entry.actor_type == "user"
    assert entry.actor_id == owner["user_id"]
    assert entry.data == {
        "issuer": ISSUER,
        "client_id": "ordersmith-acme",
        "default_role": "agent",
        "enabled": True,
        "client_secret_changed": True,
    }


async def test_a_change_without_a_secret_keeps_the_stored_one(
    client: AsyncTestClient[Litestar], database: Database, settings: Settings
) -> None:
    owner = await sign_up(client)
    token = owner["token"]["access_token"]
    first = await client.put(
        "/api/v1/sso",
        json={"issuer": ISSUER, "client_id": "ordersmith-acme", "default_role": "viewer"},
        headers=bearer(token),
    )
    assert first.status_code == 422
    assert first.json()["errors"] == [
        {"field": "client_secret", "message": "required when SSO is set up for the first time"}
    ]
    assert (await client.put("/api/v1/sso", json=_settings_body(), headers=bearer(token))).status_code == 200

    changed = await client.put(
        "/api/v1/sso",
        json={"issuer": ISSUER, "client_id": "other-client", "default_role": "viewer", "enabled": False},
        headers=bearer(token),
    )

    assert changed.status_code == 200, changed.text
    assert changed.json()["client_id"] == "other-client"
    assert changed.json()["default_role"] == "viewer"
    assert changed.json()["enabled"] is False
    assert changed.json()["has_client_secret"] is True
    async with database.platform_session() as session:
        row = await session.get(TenantSsoConfig, uuid.UUID(owner["tenant"]["id"]))
    assert row is not None
    assert open_client_secret(settings.secret_key, row.tenant_id, row.client_secret_encrypted) == SECRET
    entries = await _audit(database, owner["tenant"]["id"], "sso.configured")
    assert [entry.data["client_secret_changed"] for entry in entries] == [True, False]


async def test_a_new_issuer_needs_the_secret_again(
    client: AsyncTestClient[Litestar], database: Database, settings: Settings
) -> None:
    owner = await sign_up(client)
    token, tenant_id = owner["token"]["access_token"], owner["tenant"]["id"]
    assert (await client.put("/api/v1/sso", json=_settings_body(), headers=bearer(token))).status_code == 200

    # Kept, the secret would be sent to the new issuer's token endpoint: to whoever runs it.
    moved = await client.put(
        "/api/v1/sso",
        json={"issuer": "https://login.other-idp.example", "client_id": "ordersmith-acme"},
        headers=bearer(token),
    )

    assert (moved.status_code, moved.json()["detail"], moved.json()["errors"]) == (
        422,
        "send the client secret again: the stored one was entered for another issuer",
        [
            {
                "field": "client_secret",
                "message": f"required when the issuer changes (from {ISSUER}): the stored secret is never "
                "sent to another provider; send the secret the new provider issued",
            }
        ],
    )
    async with database.platform_session() as session:
        row = await session.get(TenantSsoConfig, uuid.UUID(tenant_id))
    assert row is not None
    assert row.issuer == ISSUER
    assert open_client_secret(settings.secret_key, row.tenant_id, row.client_secret_encrypted) == SECRET
    assert len(await _audit(database, tenant_id, "sso.configured")) == 1

    with_secret = await client.put(
        "/api/v1/sso",
        json=_settings_body(issuer="https://login.other-idp.example", client_secret="the-new-secret"),
        headers=bearer(token),
    )
    assert with_secret.status_code == 200, with_secret.text
    assert with_secret.json()["issuer"] == "https://login.other-idp.example"
    async with database.platform_session() as session:
        row = await session.get(TenantSsoConfig, uuid.UUID(tenant_id))
    assert row is not None
    assert open_client_secret(settings.secret_key, row.tenant_id, row.client_secret_encrypted) == (
        "the-new-secret"
    )


async def test_bad_settings_are_422_with_every_field_named(client: AsyncTestClient[Litestar]) -> None:
    owner = await sign_up(client)
    response = await client.put(
        "/api/v1/sso",
        json=_settings_body(issuer="http://login.acme-idp.example", client_id=" ", default_role="owner"),
        headers=bearer(owner["token"]["access_token"]),
    )

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed"
    assert body["errors"] == [
        {
            "field": "issuer",
            "message": "must be an https URL without query or fragment, like https://login.example.com"
            " (http://127.0.0.1 and http://localhost are accepted outside production)",
        },
        {"field": "client_id", "message": "must be the client id your provider issued (1-200 characters)"},
        {"field": "default_role", "message": "must be one of admin, manager, agent, viewer"},
    ]


@pytest.mark.parametrize(
    "issuer",
    [
        "ftp://login.acme-idp.example",
        "https://login.acme-idp.example/?tenant=1",
        "https://user:pass@login.acme-idp.example",
        "https://",
        "not a url",
    ],
)
async def test_an_issuer_must_be_a_plain_https_url(client: AsyncTestClient[Litestar], issuer: str) -> None:
    owner = await sign_up(client)
    response = await client.put(
        "/api/v1/sso", json=_settings_body(issuer=issuer), headers=bearer(owner["token"]["access_token"])
    )
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["issuer"]


async def test_loopback_http_is_refused_in_production(database: Database, tenant: TenantRecord) -> None:
    with pytest.raises(ValidationFailedError) as raised:
        await configure_sso(
            database,
            tenant.id,
            actor=Actor("user"),
            secret_key="k" * 40,
            network=NetworkPolicy(allow_private_addresses=False, require_https=True),
            issuer="http://127.0.0.1:9999",
            client_id="ordersmith",
            client_secret=SECRET,
            default_role="agent",
            is_enabled=True,
        )
    assert raised.value.errors[0].field == "issuer"
    assert raised.value.errors[0].message == (
        "must be an https URL without query or fragment, like https://login.example.com"
    )


@pytest.mark.parametrize(
    ("issuer", "reason"),
    [
        ("http://127.0.0.1:9999", "127.0.0.1 is a loopback address"),
        ("https://localhost", "localhost resolves to 127.0.0.1, a loopback address"),
        ("https://169.254.169.254/latest", "169.254.169.254 is a link-local address"),
        ("https://10.20.30.40:8443", "10.20.30.40 is a private address"),
        ("https://[::ffff:127.0.0.1]", "::ffff:127.0.0.1 is a loopback address"),
    ],
)
async def test_an_issuer_on_a_private_address_is_refused_unless_allowed(
    settings: Settings, issuer: str, reason: str
) -> None:
    strict = dataclasses.replace(settings, sso_allow_private_addresses=False)
    async with AsyncTestClient(create_app(strict)) as client:
        owner = await sign_up(client)
        headers = bearer(owner["token"]["access_token"])

        response = await client.put("/api/v1/sso", json=_settings_body(issuer=issuer), headers=headers)

        assert (response.status_code, response.json()["code"]) == (422, "validation_failed")
        assert response.json()["errors"] == [
            {"field": "issuer", "message": f"must lead to a public address, but {reason}"}
        ]
        assert (await client.get("/api/v1/sso", headers=headers)).status_code == 404


async def test_removing_sso_forgets_the_settings(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    token = owner["token"]["access_token"]
    await client.put("/api/v1/sso", json=_settings_body(), headers=bearer(token))

    removed = await client.delete("/api/v1/sso", headers=bearer(token))

    assert removed.status_code == 204
    read = await client.get("/api/v1/sso", headers=bearer(token))
    assert read.status_code == 404
    assert read.json()["code"] == "sso_not_configured"
    again = await client.delete("/api/v1/sso", headers=bearer(token))
    assert again.status_code == 404
    assert again.json()["code"] == "sso_not_configured"
    [entry] = await _audit(database, owner["tenant"]["id"], "sso.removed")
    assert entry.actor_id == owner["user_id"]


async def test_each_store_sees_only_its_own_settings(client: AsyncTestClient[Litestar]) -> None:
    store_a, store_b = await sign_up(client), await sign_up(client)
    token_a, token_b = store_a["token"]["access_token"], store_b["token"]["access_token"]
    await client.put("/api/v1/sso", json=_settings_body(client_id="client-a"), headers=bearer(token_a))

    unseen = await client.get("/api/v1/sso", headers=bearer(token_b))
    assert unseen.status_code == 404
    assert unseen.json()["code"] == "sso_not_configured"
    assert (await client.delete("/api/v1/sso", headers=bearer(token_b))).status_code == 404

    await client.put("/api/v1/sso", json=_settings_body(client_id="client-b"), headers=bearer(token_b))
    assert (await client.get("/api/v1/sso", headers=bearer(token_b))).json()["client_id"] == "client-b"
    assert (await client.get("/api/v1/sso", headers=bearer(token_a))).json()["client_id"] == "client-a"


def test_a_sealed_secret_opens_only_for_its_tenant_and_key() -> None:
    tenant_id, other_tenant = uuid.uuid4(), uuid.uuid4()
    sealed = seal_client_secret("key-one", tenant_id, SECRET)

    assert open_client_secret("key-one", tenant_id, sealed) == SECRET
    assert sealed != seal_client_secret("key-one", tenant_id, SECRET)  # a fresh nonce each time
    for secret_key, owner in (("key-one", other_tenant), ("key-two", tenant_id)):
        with pytest.raises(SsoSecretUnreadableError) as raised:
            open_client_secret(secret_key, owner, sealed)
        assert raised.value.status == 503
        assert raised.value.code == "sso_secret_unreadable"


async def test_only_an_owner_signed_in_chooses_the_provider(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    # The provider vouches for every member, the owner included: whoever chooses it could sign
    # in as anyone. An admin, or an API key of the owner's, is refused and changes nothing.
    owner = await sign_up(client)
    owner_headers = bearer(owner["token"]["access_token"])
    admin = await add_member(client, database, owner_headers, "admin")
    key = await client.post(
        "/api/v1/api-keys",
        json={"name": "setup script", "scopes": ["settings.manage", "sso.manage"]},
        headers=owner_headers,
    )
    assert key.status_code == 201, key.text
    for headers, message in (
        (
            bearer(admin.access_token),
            "this needs the 'sso.manage' permission, which your role or key lacks; ask the store's owner",
        ),
        (
            bearer(key.json()["key"]),
            "single sign-on is set by an owner signed in, not by an API key: the provider it names "
            "can sign anyone in as any member of this store",
        ),
    ):
        for method in ("PUT", "DELETE"):
            refused = await client.request(method, "/api/v1/sso", json=_settings_body(), headers=headers)
            assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied"), refused.text
            assert message in refused.json()["detail"]
    assert await _audit(database, owner["tenant"]["id"], "sso.configured") == []
    # The owner, signed in, sets it.
    assert (await client.put("/api/v1/sso", json=_settings_body(), headers=owner_headers)).status_code == 200
