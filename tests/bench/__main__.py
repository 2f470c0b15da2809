"""`make bench`: tenants (provisioning, sign-up, migrations) and orders (placement over
HTTP, lists), each beside a hand-written reference.

Every measured phase runs the reference, then the product, then the reference again, on
the same server in the same invocation (shared/bench/README.md): the ratios are the
numbers to compare across machines, the figures say where this machine stands. Order
placement's reference is the shared ceiling (../shared/bench/ceiling.py), driven by wrk
like the product. Exits 1 if the migrated schemas fail verification or the orders'
checks fail, 2 if something the bench needs is missing; a missed target shows as "NO".
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ordersmith.platform.bootstrap import migrate_platform
from ordersmith.platform.database import Database
from ordersmith.platform.settings import load_settings
from ordersmith.tenants.schema import TENANT_MIGRATIONS
from tests.bench import load, orders, phases, report, signup
from tests.bench.cpu import CpuMeter, find_postmaster, machine_busy
from tests.bench.phases import WARMUP, Bench, Migrations, Provisioning, say
from tests.bench.reference import Reference
from tests.bench.server import (
    BENCH_DATABASE,
    Admin,
    create_bench_database,
    create_ceiling_database,
    drop_bench_database,
    drop_ceiling_database,
    server_url,
)
from tests.support.services import REPO

PARTS = ("tenancy", "orders")
PROVISION_P50_TARGET_MS = 100.0
# Targets are set for 1,000 tenants; other counts get them scaled per tenant.
MIGRATE_TARGET_S_PER_1000 = 20.0
NOOP_TARGET_S_PER_1000 = 3.0
REFERENCE_WHAT = (
    "raw asyncpg, connections logged in as the owner role like the product's; provisioning: one round "
    "trip (registry row + placement, role, schema, grants, rendered DDL under SET LOCAL search_path, "
    "REVOKE on alembic_version, seed row, COMMIT); migrating: per tenant 3 round trips (BEGIN + SET "
    "LOCAL lock_timeout and search_path; read alembic_version; rendered upgrade + registry update + "
    "COMMIT; a no-op run sends COMMIT instead; no REVOKE, the table's privileges are already right), "
    "one connection per unit of concurrency, SQL rendered beforehand; no-op figures are the median "
    "of 5 back-to-back runs on each side"
)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--tenants", type=int, default=1000, help="tenant schemas to migrate (default 1000)")
    parser.add_argument("--provision", type=int, default=50, help="timed provisions per run (default 50)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 tenants, 20 timed provisions")
    parser.add_argument("--concurrency", type=int, help="migration concurrency (default: the setting, 4)")
    parser.add_argument(
        "--batch", type=int, default=8, help="concurrent provisions during set-up (default 8)"
    )
    parser.add_argument("--output", type=Path, default=REPO / ".bench" / "results.json")
    parser.add_argument(
        "--only",
        choices=PARTS,
        help="run one part: tenancy (provisioning, sign-up, migrations) or orders (placement, lists)",
    )
    group = parser.add_argument_group("orders", "placement over HTTP beside the ceiling, and lists")
    group.add_argument("--order-tenants", type=int, help="stores orders go to, round-robin (100; quick 10)")
    group.add_argument("--order-concurrency", type=int, help="wrk connections on both sides (32)")
    group.add_argument("--order-seconds", type=float, help="measured seconds of each run (10; quick 3)")
    group.add_argument("--list-orders", type=int, help="orders in the store lists are timed on (100000)")
    group.add_argument("--list-requests", type=int, help="timed list requests per filter shape (200)")
    group.add_argument("--pool-size", type=int, help="the product's database pool (default: the connections)")
    group.add_argument(
        "--generic-plans",
        action="store_true",
        help="give the product plan_cache_mode=force_generic_plan, as the ceiling connects (default: off)",
    )
    group.add_argument(
        "--idempotency", action="store_true", help="send a new Idempotency-Key with each order"
    )
    group.add_argument(
        "--explain", action="store_true", help="keep the list queries' full plans in the results"
    )
    group.add_argument(
        "--profile",
        type=Path,
        help="py-spy samples of the product during the measured run, into this file (collapsed stacks)",
    )
    group.add_argument(
        "--ceiling", type=Path, help=f"ceiling.py (default: ${load.CEILING_ENV}, else ../shared/bench)"
    )
    group.add_argument("--wrk", help="path to wrk (default: found on PATH)")
    args = parser.parse_args(argv)
    args.parts = (args.only,) if args.only else PARTS
    if args.quick:
        args.tenants, args.provision = 60, 20
    # The reference provisions two timed runs; it must not end up with more schemas than the product.
    if "tenancy" in args.parts and args.tenants < 2 * args.provision + WARMUP:
        parser.error(f"--tenants must be at least 2 x --provision + {WARMUP}")
    return args


def _order_options(args: argparse.Namespace) -> orders.OrdersOptions:
    """Check for the ceiling and wrk before any long set-up; the orders phases' options."""
    return orders.options_from(
        load.locate_ceiling(args.ceiling),
        load.locate_wrk(args.wrk),
        quick=args.quick,
        overrides={
            "tenants": args.order_tenants,
            "concurrency": args.order_concurrency,
            "seconds": args.order_seconds,
            "list_orders": args.list_orders,
            "list_requests": args.list_requests,
            "pool_size": args.pool_size,
            "generic_plans": args.generic_plans or None,
            "idempotency": args.idempotency or None,
            "explain": args.explain or None,
            "profile": args.profile,
        },
    )


def _summary(
    args: argparse.Namespace,
    bench: Bench,
    provisioning: Provisioning,
    migrations: Migrations,
    signups: signup.Signups,
) -> dict[str, Any]:
    project = report.latency(provisioning.project)
    signup_project = report.latency(signups.project)
    signup_reference = [report.latency(run) for run in signups.reference]
    signup_reference_p50 = [run["p50_ms"] for run in signup_reference]
    reference_runs = [report.latency(run) for run in provisioning.reference]
    reference_p50 = [run["p50_ms"] for run in reference_runs]
    reference_migrate = [round(seconds, 3) for seconds in migrations.reference_s]
    # Each side's no-op figure is the median of its repeated runs.
    reference_noop = [round(report.percentile(runs, 0.5), 3) for runs in migrations.reference_noop_s]
    project_noop = [run.seconds for run in migrations.project_noop]
    migrate_key, noop_key = f"migrate_{args.tenants}_s", f"migrate_noop_{args.tenants}_s"
    migrate_s, noop_s = round(migrations.project.seconds, 3), round(report.percentile(project_noop, 0.5), 3)
    scale = args.tenants / 1000
    spreads = {
        "provision_p50": report.spread(reference_p50),
        "migrate": report.spread(reference_migrate),
        "migrate_noop": report.spread(reference_noop),
        "signup_p50": report.spread(signup_reference_p50),
    }
    invalid = report.validity(spreads, bench.cpu)
    return {
        "provision_p50_ms": project["p50_ms"],
        "provision_p95_ms": project["p95_ms"],
        migrate_key: migrate_s,
        noop_key: noop_s,
        "signup_p50_ms": signup_project["p50_ms"],
        "signup_p95_ms": signup_project["p95_ms"],
        "provision_ratio": report.ratio(reference_p50, project["p50_ms"]),
        "signup_ratio": report.ratio(signup_reference_p50, signup_project["p50_ms"]),
        "migrate_ratio": report.ratio(reference_migrate, migrate_s),
        "migrate_noop_ratio": report.ratio(reference_noop, noop_s),
        "ratio_definition": report.RATIO_DEFINITION,
        "migrate_key": migrate_key,
        "migrate_noop_key": noop_key,
        "targets": {
            "provision_p50_ms": report.target(project["p50_ms"], PROVISION_P50_TARGET_MS, "ms"),
            "signup_p50_ms": report.target(signup_project["p50_ms"], signup.SIGNUP_P50_TARGET_MS, "ms"),
            migrate_key: report.target(migrate_s, MIGRATE_TARGET_S_PER_1000 * scale, "s"),
            noop_key: report.target(noop_s, NOOP_TARGET_S_PER_1000 * scale, "s"),
        },
        "project": {
            "provision": project,
            "provision_each_ms": [round(ms, 2) for ms in provisioning.project],
            "migrate_per_tenant": report.latency(migrations.project.per_tenant_ms),
            "migrate_noop_runs_s": [round(seconds, 3) for seconds in project_noop],
            "migrate_noop_per_tenant": report.latency(
                [ms for run in migrations.project_noop for ms in run.per_tenant_ms]
            ),
            "migrate_outcomes": migrations.project.outcomes,
            "migrate_noop_outcomes": [run.outcomes for run in migrations.project_noop],
            "signup": signup_project,
            "signup_adds": signup.PROJECT_ADDS,
        },
        "reference": {
            "provision_p50_ms": reference_p50,
            "provision_p95_ms": [run["p95_ms"] for run in reference_runs],
            "provision_runs": reference_runs,
            "provision_each_ms": [[round(ms, 2) for ms in run] for run in provisioning.reference],
            "migrate_s": reference_migrate,
            "migrate_noop_s": reference_noop,
            "migrate_noop_runs_s": [
                [round(seconds, 3) for seconds in runs] for runs in migrations.reference_noop_s
            ],
            "signup_p50_ms": signup_reference_p50,
            "signup_p95_ms": [run["p95_ms"] for run in signup_reference],
            "signup_what": signup.REFERENCE_WHAT,
            "spread": spreads,
            "what": REFERENCE_WHAT,
        },
        "extra_revision": {"revision": migrations.revision, "sql": migrations.sql},
        "cpu_cores": bench.cpu,
        "valid": not invalid,
        "invalid_reasons": invalid,
        "verification": {"ok": not migrations.problems, "problems": migrations.problems},
    }


async def _tenancy(
    args: argparse.Namespace, url: str, database: Database, admin: Admin, results: dict[str, Any]
) -> None:
    settings = load_settings({"ORDERSMITH_ENV": "test", "DATABASE_URL": url})
    concurrency: int = args.concurrency or settings.database.migration_concurrency
    results.update(
        concurrency=concurrency,
        concurrency_source="--concurrency" if args.concurrency else "settings.migration_concurrency",
        tenants=args.tenants,
        provisions_timed=args.provision,
        provision_warmup=WARMUP,
    )
    reference = await Reference.connect(url, settings.database, TENANT_MIGRATIONS, concurrency)
    try:
        await reference.create_registry()
        bench = Bench(
            database=database,
            reference=reference,
            admin=admin,
            meter=CpuMeter(find_postmaster(await admin.backend_pid()), BENCH_DATABASE),
            database_name=database.runtime.url.database or "",
            concurrency=concurrency,
        )
        say(f"provisioning: {WARMUP} warm-up each, then {args.provision} timed per run")
        provisioning = await phases.provisioning(bench, args.provision)
        results["setup_s"] = await phases.fill(bench, args.tenants, args.batch)
        with tempfile.TemporaryDirectory(prefix="ordersmith-bench-") as directory:
            migrations = await phases.migrations(bench, Path(directory), args.tenants)
        signups = await signup.signups(bench, url, args.provision)
    finally:
        await reference.close()
    results.update(_summary(args, bench, provisioning, migrations, signups))


async def _orders(
    options: orders.OrdersOptions,
    server: str,
    url: str,
    database: Database,
    admin: Admin,
    results: dict[str, Any],
) -> None:
    settings = load_settings({"ORDERSMITH_ENV": "test", "DATABASE_URL": url})
    ceiling_url = await create_ceiling_database(server)
    try:
        found = await orders.run(options, settings, database, admin, url, ceiling_url)
    finally:
        roles = await drop_ceiling_database(server, options.tenants)
        say(f"dropped the ceiling's database and {roles} tenant roles")
    results.setdefault("targets", {}).update(found.pop("targets"))
    results.setdefault("invalid_reasons", []).extend(found.pop("invalid_reasons"))
    results["valid"] = not results["invalid_reasons"]
    verification = results.setdefault("verification", {"ok": True, "problems": []})
    verification["problems"].extend(found.pop("problems"))
    verification["ok"] = not verification["problems"]
    results.update(found)


async def _bench(
    args: argparse.Namespace,
    server: str,
    url: str,
    results: dict[str, Any],
    options: orders.OrdersOptions | None,
) -> bool:
    database = Database(load_settings({"ORDERSMITH_ENV": "test", "DATABASE_URL": url}).database, url)
    admin = await Admin.connect(url)
    try:
        await migrate_platform(database)
        facts = await admin.facts()
        results.update(
            cpu_count=os.cpu_count(),
            postgres_version=facts["version"],
            postgres_settings=facts["settings"],
            python=platform.python_version(),
            parts=list(args.parts),
        )
        if "tenancy" in args.parts:
            await _tenancy(args, url, database, admin, results)
        if options is not None:
            await _orders(options, server, url, database, admin, results)
        return bool(results["verification"]["ok"])
    finally:
        await admin.close()
        await database.dispose()


async def _main(args: argparse.Namespace) -> int:
    options = _order_options(args) if "orders" in args.parts else None
    server, source = server_url()
    results: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "server": source,
    }
    busy = await machine_busy()
    results["busy_cores_before_start"] = busy
    if busy is not None and busy > report.MAX_OTHER_CORES:
        say(f"warning: {busy} cores were busy before the bench started; its ratios may not hold")
    say(f"server from {source}: fresh database, platform migrations")
    url = await create_bench_database(server)
    try:
        ok = await _bench(args, server, url, results, options)
    finally:
        say(f"dropped the bench database and {await drop_bench_database(server)} tenant roles")
    report.write_results(args.output, results)
    report.print_table(results)
    print(f"\nwrote {args.output}")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; 1 if a verification fails, 2 if something it needs is missing."""
    try:
        return asyncio.run(_main(_parse(sys.argv[1:] if argv is None else argv)))
    except load.BenchSetupError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
