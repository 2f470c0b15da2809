"""`ordersmith audit verify`: an untouched trail passes; an altered or deleted entry is named."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import Actor, record_audit, verify_audit_log
from ordersmith.platform.identity.models import AuditEntry
from ordersmith.platform.tenancy import TenantRecord
from tests.support.cli import run_ordersmith

ALTERED = "its content was altered"
GAP = "does not follow the entry before it: an earlier entry was deleted or altered"


async def _three_entries(database: Database, tenant: TenantRecord) -> list[AuditEntry]:
    """Three entries in the tenant's own chain, oldest first."""
    async with database.platform_session() as session:
        for number in range(3):
            await record_audit(
                session,
                tenant_id=tenant.id,
                actor=Actor("user", f"user-{number}", "192.0.2.7"),
                action="test.happened",
                data={"number": number},
            )
    async with database.platform_session() as session:
        rows = await session.execute(
            select(AuditEntry).where(AuditEntry.chain == str(tenant.id)).order_by(AuditEntry.id)
        )
        return list(rows.scalars())


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {column.key: getattr(entry, column.key) for column in AuditEntry.__table__.columns}


def _chain_lines(output: str, tenant: TenantRecord) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"chain {tenant.id}:")]


async def test_an_untouched_trail_passes(database: Database, database_url: str, tenant: TenantRecord) -> None:
    await _three_entries(database, tenant)
    async with database.platform_session() as session:
        entries, chains = (
            await session.execute(select(func.count(), func.count(AuditEntry.chain.distinct())))
        ).one()
    result = run_ordersmith("audit", "verify", database_url=database_url)
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"audit log intact: {entries} entries in {chains} chains\n",
        "",
    )


async def test_the_runtime_role_can_neither_change_nor_delete_entries(
    database: Database, tenant: TenantRecord
) -> None:
    entry = (await _three_entries(database, tenant))[0]
    for statement in [
        update(AuditEntry).where(AuditEntry.id == entry.id).values(data={"number": 99}),
        delete(AuditEntry).where(AuditEntry.id == entry.id),
    ]:
        with pytest.raises(DBAPIError) as refused:
            async with database.platform_session() as session:
                await session.execute(statement)
        assert "permission denied for table audit_log" in str(refused.value)


async def test_an_altered_entry_is_named(database: Database, database_url: str, tenant: TenantRecord) -> None:
    entries = await _three_entries(database, tenant)
    middle = entries[1]
    async with database.owner_connection() as connection:
        await connection.execute(
            update(AuditEntry).where(AuditEntry.id == middle.id).values(data={"number": 99})
        )
    try:
        result = run_ordersmith("audit", "verify", database_url=database_url)
        assert result.returncode == 1
        assert _chain_lines(result.stdout, tenant) == [
            f"chain {tenant.id}: first bad entry {middle.id}: {ALTERED}"
        ]
        assert "audit chains are broken; restore the named entries from a backup" in result.stderr
    finally:
        # Put the entry back so the shared test database's trail is whole again.
        async with database.owner_connection() as connection:
            await connection.execute(
                update(AuditEntry).where(AuditEntry.id == middle.id).values(data=middle.data)
            )
    restored = await verify_audit_log(database)
    assert [problem for problem in restored.problems if problem.chain == str(tenant.id)] == []


async def test_a_deleted_entry_names_the_one_after_the_gap(
    database: Database, database_url: str, tenant: TenantRecord
) -> None:
    first, middle, last = await _three_entries(database, tenant)
    async with database.owner_connection() as connection:
        await connection.execute(delete(AuditEntry).where(AuditEntry.id == middle.id))
    try:
        result = run_ordersmith("audit", "verify", database_url=database_url)
        assert result.returncode == 1
        assert _chain_lines(result.stdout, tenant) == [f"chain {tenant.id}: first bad entry {last.id}: {GAP}"]
    finally:
        async with database.owner_connection() as connection:
            await connection.execute(insert(AuditEntry).values(**_row(middle)))
    restored = await verify_audit_log(database)
    assert [problem for problem in restored.problems if problem.chain == str(tenant.id)] == []
    assert first.id < middle.id < last.id
