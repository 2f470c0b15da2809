"""The store profile: changes are validated and every real change is on the audit trail."""

from __future__ import annotations

import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import AuditEntry
from ordersmith.platform.tenancy import get_tenant_record
from tests.support.http import bearer, sign_up
from tests.support.members import audit_trail, invitation_email, invite, last_audit_id


async def test_a_change_records_who_changed_what(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client, company_name="Acme Outdoor")
    tenant_id, headers = owner["tenant"]["id"], bearer(owner["token"]["access_token"])
    since = await last_audit_id(database, tenant_id)

    changed = await client.patch(
        "/api/v1/store",
        json={"display_name": "  Acme Outdoor Gear ", "timezone": "Europe/Paris", "default_currency": "EUR"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        "display_name": "Acme Outdoor Gear",
        "default_currency": "EUR",
        "timezone": "Europe/Paris",
        "review_orders_over_amount": None,
        "review_first_orders": False,
    }
    # The currency was sent but did not change, so the entry leaves it out.
    assert await audit_trail(database, tenant_id, since=since) == [
        {
            "action": "store.profile_changed",
            "actor_type": "user",
            "actor_id": owner["user_id"],
            "target_type": "store",
            "target_id": None,
            "data": {
                "changes": {
                    "display_name": {"old": "Acme Outdoor", "new": "Acme Outdoor Gear"},
                    "timezone": {"old": "UTC", "new": "Europe/Paris"},
                }
            },
        }
    ]
    async with database.platform_session() as session:
        address = await session.scalar(
            select(AuditEntry.client_address).where(
                AuditEntry.tenant_id == uuid.UUID(tenant_id), AuditEntry.id > since
            )
        )
    assert address == "testclient"
    # Emails and the sign-in response name the store by its registry entry: renamed too.
    assert (await get_tenant_record(database, owner["tenant"]["slug"])).name == "Acme Outdoor Gear"
    invitee = f"invitee-{owner['tenant']['slug']}@example.com"
    await invite(client, headers, invitee, "agent")
    assert (await invitation_email(database, invitee))["store_name"] == "Acme Outdoor Gear"


async def test_nothing_changed_or_a_refused_change_records_nothing(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client, company_name="Same Shop")
    tenant_id, headers = owner["tenant"]["id"], bearer(owner["token"]["access_token"])
    since = await last_audit_id(database, tenant_id)

    same = await client.patch("/api/v1/store", json={"display_name": "Same Shop"}, headers=headers)
    assert same.status_code == 200
    invalid = await client.patch(
        "/api/v1/store", json={"display_name": "Other", "default_currency": "euro"}, headers=headers
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"] == [
        {
            "field": "default_currency",
            "message": "must be the ISO 4217 code of a currency, such as EUR or USD",
        }
    ]
    too_long = await client.patch("/api/v1/store", json={"display_name": "x" * 201}, headers=headers)
    assert (too_long.status_code, too_long.json()["errors"]) == (
        422,
        [{"field": "display_name", "message": "must be at most 200 characters"}],
    )
    assert (await client.get("/api/v1/store", headers=headers)).json()["display_name"] == "Same Shop"
    assert await audit_trail(database, tenant_id, since=since) == []


async def test_an_integration_changes_the_store_in_its_own_name(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    tenant_id, headers = owner["tenant"]["id"], bearer(owner["token"]["access_token"])
    created = (
        await client.post(
            "/api/v1/api-keys", json={"name": "ERP", "scopes": ["settings.manage"]}, headers=headers
        )
    ).json()
    since = await last_audit_id(database, tenant_id)

    changed = await client.patch(
        "/api/v1/store", json={"default_currency": "USD"}, headers=bearer(created["key"])
    )
    assert changed.status_code == 200, changed.text
    [entry] = await audit_trail(database, tenant_id, since=since)
    assert (entry["action"], entry["actor_type"], entry["actor_id"], entry["data"]) == (
        "store.profile_changed",
        "api_key",
        created["api_key"]["id"],
        {"changes": {"default_currency": {"old": "EUR", "new": "USD"}}},
    )
