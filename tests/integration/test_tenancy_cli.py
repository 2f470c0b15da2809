"""`ordersmith tenants archive|restore|drop` put the operator on the audit trail and name any store."""

from __future__ import annotations

import re
import shlex
import uuid

import pytest
from sqlalchemy import select, update

from ordersmith.billing.subscriptions import change_plan
from ordersmith.platform.database import Database
from ordersmith.platform.errors import TenantArchivedError
from ordersmith.platform.identity.audit import PLATFORM_CHAIN, SYSTEM
from ordersmith.platform.identity.models import AuditEntry
from ordersmith.platform.models import Tenant
from ordersmith.platform.tenancy import TenantRecord, archive_tenant, get_tenant_record, require_active
from tests.support.billing import billing_with, forget_stripe_catalog, stripe_settings
from tests.support.cli import run_ordersmith as ordersmith
from tests.support.fake_stripe import serve_fake_stripe
from tests.support.members import audit_trail


async def test_the_commands_record_the_operator_who_ran_them(
    database: Database, database_url: str, tenant: TenantRecord
) -> None:
    # The operator is named by their login, as the terminal knows it.
    login = {"LOGNAME": "ops-alice"}
    for command, output in (
        (
            ["archive", tenant.slug],
            f"archived {tenant.slug}; `ordersmith tenants restore -- {tenant.slug}` gives access back\n",
        ),
        (["restore", tenant.slug], f"restored {tenant.slug}\n"),
        (
            ["archive", tenant.slug],
            f"archived {tenant.slug}; `ordersmith tenants restore -- {tenant.slug}` gives access back\n",
        ),
        (["drop", tenant.slug, "--confirm", tenant.slug], f"dropped {tenant.slug}\n"),
    ):
        result = ordersmith("tenants", *command, database_url=database_url, **login)
        assert (result.returncode, result.stdout, result.stderr) == (0, output, ""), command

    entry = {
        "actor_type": "system",
        "actor_id": "cli:ops-alice",
        "target_type": "tenant",
        "target_id": str(tenant.id),
        "data": {"slug": tenant.slug, "schema": tenant.schema_name},
    }
    assert await audit_trail(database, str(tenant.id)) == [
        {"action": "tenant.archived", **entry},
        {"action": "tenant.restored", **entry},
        {"action": "tenant.archived", **entry},
    ]
    async with database.platform_session() as session:
        dropped = (
            await session.execute(
                select(AuditEntry.action, AuditEntry.actor_type, AuditEntry.actor_id, AuditEntry.data).where(
                    AuditEntry.chain == PLATFORM_CHAIN, AuditEntry.target_id == str(tenant.id)
                )
            )
        ).all()
    assert [(action, actor_type, actor_id, data) for action, actor_type, actor_id, data in dropped] == [
        ("tenant.dropped", "system", "cli:ops-alice", {"slug": tenant.slug, "schema": tenant.schema_name})
    ]


async def test_dropping_a_paying_store_cancels_its_stripe_subscription(
    database: Database, database_url: str, tenant: TenantRecord
) -> None:
    await forget_stripe_catalog(database)
    with serve_fake_stripe() as fake, billing_with(stripe_settings(fake)) as billing:
        await change_plan(database, tenant.id, "growth", actor=SYSTEM)
        [subscription_id] = fake.objects["subscription"]
        await archive_tenant(database, tenant.slug, actor=SYSTEM)
        stripe = {"STRIPE_API_KEY": billing.stripe_api_key or "", "STRIPE_API_BASE": fake.base_url}
        result = ordersmith(
            "tenants", "drop", tenant.slug, "--confirm", tenant.slug, database_url=database_url, **stripe
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, f"dropped {tenant.slug}\n", "")
        assert fake.objects["subscription"][subscription_id]["status"] == "canceled"


async def test_the_restore_command_an_archived_store_names_works_for_a_slug_starting_with_a_hyphen(
    database: Database, database_url: str, tenant: TenantRecord
) -> None:
    # New slugs may not start with a hyphen; a store made before that rule still may.
    slug = f"-{uuid.uuid4().hex[:10]}"
    async with database.owner_connection() as connection:
        await connection.execute(update(Tenant).where(Tenant.id == tenant.id).values(slug=slug))
    archived = ordersmith("tenants", "archive", "--", slug, database_url=database_url)
    assert (archived.returncode, archived.stdout, archived.stderr) == (
        0,
        f"archived {slug}; `ordersmith tenants restore -- {slug}` gives access back\n",
        "",
    )
    with pytest.raises(TenantArchivedError) as refused:
        require_active(await get_tenant_record(database, slug))
    # What the store's 403 tells support to run, run as it is written.
    command = re.search(r"`ordersmith (.+)`", refused.value.detail)
    assert command is not None, refused.value.detail
    assert command.group(1) == f"tenants restore -- {slug}"
    restored = ordersmith(*shlex.split(command.group(1)), database_url=database_url)
    assert (restored.returncode, restored.stdout, restored.stderr) == (0, f"restored {slug}\n", "")
    assert (await get_tenant_record(database, slug)).status == "active"
