"""The product's side: provisioning and migrating tenants through the platform's own functions."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ordersmith.platform.database import Database
from ordersmith.platform.schema_migrations import TenantSchemaSpec
from ordersmith.platform.tenancy import provision_tenant
from ordersmith.platform.tenant_migrations import TenantMigrationResult, migrate_tenants, tenant_schema_status


def _slug(index: int) -> str:
    return f"bench-{index:05d}"


async def provision_one(database: Database, spec: TenantSchemaSpec, index: int) -> None:
    """Provision one tenant the way the product's API and CLI do."""
    await provision_tenant(database, spec, slug=_slug(index), name=f"Bench Shop {index}")


async def time_provisions(database: Database, spec: TenantSchemaSpec, indexes: Iterable[int]) -> list[float]:
    """Provision tenants one after another; milliseconds each."""
    timings: list[float] = []
    for index in indexes:
        started = time.perf_counter()
        await provision_one(database, spec, index)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def provision_many(
    database: Database, spec: TenantSchemaSpec, indexes: Sequence[int], batch: int
) -> None:
    """Provision tenants a batch at a time, concurrently within a batch (set-up, not measured)."""
    for start in range(0, len(indexes), batch):
        await asyncio.gather(
            *(provision_one(database, spec, index) for index in indexes[start : start + batch])
        )


@dataclass(frozen=True)
class MigrationRun:
    """One `migrate_tenants` call: how long it took and what it did."""

    seconds: float
    results: list[TenantMigrationResult]

    @property
    def outcomes(self) -> dict[str, int]:
        """How many tenants ended in each outcome."""
        return dict(Counter(result.outcome for result in self.results))

    @property
    def per_tenant_ms(self) -> list[float]:
        """Each tenant's own time, queueing for a connection included."""
        return [result.seconds * 1000 for result in self.results]


async def migrate(database: Database, spec: TenantSchemaSpec, concurrency: int) -> MigrationRun:
    """Run `migrate_tenants` over every tenant, timed."""
    started = time.perf_counter()
    results = await migrate_tenants(database, spec, concurrency=concurrency)
    return MigrationRun(time.perf_counter() - started, results)


async def verify(
    database: Database, spec: TenantSchemaSpec, runs: Sequence[MigrationRun], expected: int
) -> list[str]:
    """What is wrong after the runs: failures, or schemas not at head by their own account."""
    problems: list[str] = []
    for number, run in enumerate(runs, start=1):
        if len(run.results) != expected:
            problems.append(f"run {number} saw {len(run.results)} tenants, expected {expected}")
        failed = [result for result in run.results if result.outcome == "failed"]
        if failed:
            problems.append(f"run {number}: {len(failed)} failed, first: {failed[0].slug}: {failed[0].error}")
    statuses = await tenant_schema_status(database, spec)
    behind = [status for status in statuses if not status.is_at_head]
    if len(statuses) != expected:
        problems.append(f"{len(statuses)} tenant schemas in the registry, expected {expected}")
    if behind:
        problems.append(
            f"{len(behind)} schemas not at {spec.migrations.head()}, first: {behind[0].schema_name}"
        )
    errors = [status for status in statuses if status.migration_error is not None]
    if errors:
        problems.append(f"{len(errors)} tenants carry a migration_error, first: {errors[0].migration_error}")
    return problems
