"""The measured phases, each run as reference, product, reference (shared/bench/README.md)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ordersmith.platform.database import Database
from ordersmith.platform.schema_migrations import MigrationStream
from ordersmith.tenants.schema import TENANT_MIGRATIONS, TENANT_SCHEMA
from tests.bench import tenancy
from tests.bench.cpu import CpuMeter
from tests.bench.reference import Reference
from tests.bench.server import REFERENCE_SCHEMA, Admin
from tests.support.migrations import stream_with_extra_revision

_T = TypeVar("_T")
WARMUP = 3
# A no-op run over 1,000 tenants lasts well under a second: one run is mostly noise.
NOOP_REPEATS = 5
_REGISTRY_TABLES = [
    "platform.tenants",
    "platform.tenant_placements",
    f"{REFERENCE_SCHEMA}.tenants",
    f"{REFERENCE_SCHEMA}.tenant_placements",
]


def say(message: str) -> None:
    """A progress line with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Bench:
    """Both sides of the comparison and what they share."""

    database: Database
    reference: Reference
    admin: Admin
    meter: CpuMeter
    database_name: str
    concurrency: int
    reference_count: int = 0
    project_count: int = 0

    def __post_init__(self) -> None:
        self.cpu: dict[str, dict[str, float | None]] = {}

    async def measure(self, name: str, work: Callable[[], Awaitable[_T]]) -> tuple[_T, float]:
        """Run `work` once on a settled server; return its value and wall-clock seconds."""
        await self.admin.settle(_REGISTRY_TABLES)
        before = self.meter.sample()
        value = await work()
        after = self.meter.sample()
        self.cpu[name] = self.meter.cores(before, after)
        seconds = after.wall - before.wall
        say(f"{name}: {seconds:.2f} s")
        return value, seconds

    async def measure_each(
        self, name: str, work: Callable[[], Awaitable[_T]], times: int
    ) -> list[tuple[_T, float]]:
        """Run `work` several times back to back on a settled server, each one timed."""
        await self.admin.settle(_REGISTRY_TABLES)
        before = self.meter.sample()
        runs = []
        for _ in range(times):
            started = time.perf_counter()
            value = await work()
            runs.append((value, time.perf_counter() - started))
        self.cpu[name] = self.meter.cores(before, self.meter.sample())
        say(f"{name}: " + ", ".join(f"{seconds:.2f}" for _, seconds in runs) + " s")
        return runs

    async def reference_provisions(self, count: int) -> list[float]:
        """Provision reference tenants one after another; milliseconds each."""
        timings = []
        for _ in range(count):
            started = time.perf_counter()
            await self.reference.provision(self.reference_count, self.database_name)
            timings.append((time.perf_counter() - started) * 1000)
            self.reference_count += 1
        return timings


@dataclass(frozen=True)
class Provisioning:
    """Milliseconds per provision: the product's run and the two reference runs."""

    project: list[float]
    reference: tuple[list[float], list[float]]


async def provisioning(bench: Bench, count: int) -> Provisioning:
    """Warm both sides up, then time `count` provisions: reference, product, reference."""
    await bench.reference_provisions(WARMUP)
    await tenancy.time_provisions(bench.database, TENANT_SCHEMA, range(WARMUP))
    timed = range(WARMUP, WARMUP + count)
    first, _ = await bench.measure("provision reference 1", lambda: bench.reference_provisions(count))
    project, _ = await bench.measure(
        "provision project", lambda: tenancy.time_provisions(bench.database, TENANT_SCHEMA, timed)
    )
    second, _ = await bench.measure("provision reference 2", lambda: bench.reference_provisions(count))
    bench.project_count = WARMUP + count
    return Provisioning(project, (first, second))


async def fill(bench: Bench, tenants: int, batch: int) -> dict[str, float]:
    """Provision both sides up to `tenants` schemas, concurrently (set-up, not measured)."""
    started = time.perf_counter()
    await tenancy.provision_many(bench.database, TENANT_SCHEMA, range(bench.project_count, tenants), batch)
    bench.project_count = max(bench.project_count, tenants)
    project = time.perf_counter() - started
    started = time.perf_counter()
    await bench.reference.provision_many(range(bench.reference_count, tenants), bench.database_name)
    bench.reference_count = max(bench.reference_count, tenants)
    reference = time.perf_counter() - started
    say(f"set-up: {tenants} tenants each, product {project:.1f} s, reference {reference:.1f} s")
    return {"project_fill": round(project, 2), "reference_fill": round(reference, 2)}


@dataclass(frozen=True)
class Migrations:
    """The product's migration runs, the reference's seconds, and what was checked."""

    revision: str
    sql: str
    project: tenancy.MigrationRun
    project_noop: list[tenancy.MigrationRun]
    reference_s: tuple[float, float]
    reference_noop_s: tuple[list[float], list[float]]
    problems: list[str]


async def migrations(bench: Bench, directory: Path, tenants: int) -> Migrations:
    """One new revision over every schema, then again with nothing to do; both verified."""
    spec = stream_with_extra_revision(directory)
    # Its own stream object, so that rendering for the reference warms no cache of the product's.
    stream = MigrationStream(name="tenant", script_location=spec.migrations.script_location)
    base = TENANT_MIGRATIONS.head()
    sql = stream.render_upgrade(base)
    reference, database, concurrency = bench.reference, bench.database, bench.concurrency
    problems: list[str] = []

    def expect(label: str, outcomes: dict[str, int], outcome: str) -> None:
        if outcomes.get(outcome) != tenants:
            problems.append(f"{label}: {outcomes}, expected {tenants} {outcome}")

    ref_1, ref_s1 = await bench.measure("migrate reference 1", lambda: reference.migrate_all(stream))
    run, _ = await bench.measure("migrate project", lambda: tenancy.migrate(database, spec, concurrency))
    await reference.downgrade_all(stream, base)
    ref_2, ref_s2 = await bench.measure("migrate reference 2", lambda: reference.migrate_all(stream))
    noop_1 = await bench.measure_each("noop reference 1", lambda: reference.migrate_all(stream), NOOP_REPEATS)
    noops = await bench.measure_each(
        "noop project", lambda: tenancy.migrate(database, spec, concurrency), NOOP_REPEATS
    )
    noop_2 = await bench.measure_each("noop reference 2", lambda: reference.migrate_all(stream), NOOP_REPEATS)
    project_noop = [noop for noop, _ in noops]

    problems.extend(await tenancy.verify(database, spec, [run, *project_noop], tenants))
    expect("product, first run", run.outcomes, "migrated")
    for number, noop in enumerate(project_noop, start=1):
        expect(f"product, no-op run {number}", noop.outcomes, "current")
    expect("reference migrate 1", ref_1, "migrated")
    expect("reference migrate 2", ref_2, "migrated")
    for label, outcomes in [("reference no-op 1", noop_1), ("reference no-op 2", noop_2)]:
        for number, (counts, _) in enumerate(outcomes, start=1):
            expect(f"{label}.{number}", counts, "current")
    return Migrations(
        stream.head(),
        sql,
        run,
        project_noop,
        (ref_s1, ref_s2),
        ([seconds for _, seconds in noop_1], [seconds for _, seconds in noop_2]),
        problems,
    )
