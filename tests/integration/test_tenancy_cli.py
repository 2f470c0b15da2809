"""`ordersmith tenants archive|restore|drop` put the operator on the audit trail."""

from __future__ import annotations

from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import PLATFORM_CHAIN
from ordersmith.platform.identity.models import AuditEntry
from ordersmith.platform.tenancy import TenantRecord
from tests.support.cli import run_ordersmith as ordersmith
from tests.support.members import audit_trail


async def test_the_commands_record_the_operator_who_ran_them(
    database: Database, database_url: str, tenant: TenantRecord
) -> None:
    # The operator is named by their login, as the terminal knows it.
    login = {"LOGNAME": "ops-alice"}
    for command, output in (
        (
            ["archive", tenant.slug],
            f"archived {tenant.slug}; `ordersmith tenants restore {tenant.slug}` gives access back\n",
        ),
        (["restore", tenant.slug], f"restored {tenant.slug}\n"),
        (
            ["archive", tenant.slug],
            f"archived {tenant.slug}; `ordersmith tenants restore {tenant.slug}` gives access back\n",
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
