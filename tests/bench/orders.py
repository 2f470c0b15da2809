"""Orders over HTTP: placing them beside the ceiling, and listing a store of 100,000.

Placement runs ceiling, product, ceiling (shared/bench/README.md): the ceiling is
`ceiling.py --mode http` in its own database on the same server; the product is
`ordersmith serve` (uvicorn: 1 worker, uvloop, httptools) in a process of its own.
Both are driven by wrk with one thread, C connections and a generated Lua script cycling
through prepared orders of every tenant in turn, after a warm-up of 3 x C x T orders,
for the same number of seconds. Our requests are what an integration
sends: `Authorization: Bearer <the store's API key>`, 3 lines of SKU code and quantity
(the price comes from the catalog), a shipping address.

Listing times `GET /api/v1/orders` with two filters on a store holding 100,000 orders,
against the same server process, and checks that each shape's query uses an index.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event

from ordersmith.platform.database import Database, to_libpq_url
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.tokens import TokenSigner
from ordersmith.platform.pagination import DEFAULT_PAGE_SIZE, PageRequest
from ordersmith.platform.settings import Settings
from ordersmith.tenants.orders.queries import OrderFilter, list_orders
from tests.bench import load, order_data, report
from tests.bench.cpu import CpuMeter, find_postmaster
from tests.bench.order_data import EMPTY_SKU, BenchStore
from tests.bench.phases import say
from tests.bench.server import BENCH_DATABASE, Admin

PLACE_RATIO_TARGET = 0.60
PLACE_P99_TARGET_MS = 100.0
LIST_P95_TARGET_MS = 50.0
# A product slower than ~16 orders/s would take longer than this to warm up at T=100, C=32.
WARMUP_LIMIT_S = 600
PROJECT_ADDS = [
    "Litestar routing, the access guard (permission orders.write), dependency injection, a request-id "
    "middleware, msgspec decoding and validation of a larger body (shipping address, channel)",
    "API key authentication: the key, its creator's membership and the tenant read in one statement "
    "(one round trip, outside any transaction, on its own pooled connection) and the key's hash "
    "compared, before the tenant transaction",
    "SKUs looked up by code for their catalog price, the customer looked up (merges followed)",
    "stock locked with SELECT ... FOR UPDATE joined to locations, the location chosen in Python "
    "with the reason recorded, reservation rows per line",
    "the order confirmed at once: 2 timeline entries and 2 outbox events (order.placed, order.confirmed)",
    "the whole order (lines, reservations, holds) in the 201 response",
    "SQLAlchemy's pool (a connection checked out twice per order: the key, then the order); "
    "Core statements compiled once and run on asyncpg per tenant schema (ADR 0010); BEGIN and the "
    "tenant's role in one round trip, then read-and-lock, the write and COMMIT (5 round trips with the key)",
    "the write's rows sent as JSON documents (jsonb_to_recordset) and foreign keys checked on "
    "lines, reservations, holds and timeline entries; 11 indexes on orders for the list filters, "
    "8 entries for an order without tags, external reference or open hold",
    "the store's plan: the read-only check and the requests-a-minute count (its limit lifted for the bench)",
    "logging configured (root at INFO, uvicorn's access logger at WARNING: no line per request)",
]
# Shapes of `GET /api/v1/orders` timed on the big store: two filters each.
LIST_SHAPES = ("status+channel", "customer+created_after", "sku+status", "tag+status")
_PLAN_NODES = re.compile(
    r"(Seq Scan|Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\S+)"
)


@dataclass(frozen=True)
class OrdersOptions:
    """How the orders phases run; the same T, C, seconds and warm-up on both sides."""

    ceiling: Path
    wrk: str
    tenants: int = 100
    concurrency: int = 32
    seconds: float = 10.0
    list_orders: int = 100_000
    list_requests: int = 200
    skus: int = 1000
    customers: int = 1000
    list_customers: int = 10_000
    pool_size: int | None = None
    generic_plans: bool = False
    idempotency: bool = False
    explain: bool = False
    # Where py-spy writes a profile of the product's server during the measured run (None: no profile).
    profile: Path | None = None
    seed: int = 1

    @property
    def warmup_orders(self) -> int:
        # Every pooled connection must have prepared every tenant's statements.
        return 3 * self.concurrency * self.tenants

    @property
    def database_pool(self) -> int:
        return self.pool_size or self.concurrency


async def smoke_test(client: httpx.AsyncClient, store: BenchStore) -> None:
    """One order of each outcome, so that wrk never measures a broken endpoint."""
    headers = {"Authorization": f"Bearer {store.api_key}"}
    body = store.order_body(random.Random(0))
    response = await client.post("/api/v1/orders", json=body, headers=headers)
    if response.status_code != 201 or response.json().get("status") != "confirmed":
        raise load.BenchSetupError(
            f"POST /api/v1/orders answered {response.status_code} {response.text[:500]}"
        )
    short = {**body, "lines": [{"sku": EMPTY_SKU, "quantity": 1}]}
    response = await client.post("/api/v1/orders", json=short, headers=headers)
    if response.status_code != 409 or response.json().get("code") != "insufficient_stock":
        raise load.BenchSetupError(f"an order of {EMPTY_SKU} answered {response.status_code}, expected 409")
    response = await client.post("/api/v1/orders", json=body, headers={"Authorization": "Bearer osk_x_y"})
    if response.status_code != 401:
        raise load.BenchSetupError(f"an unknown API key answered {response.status_code}, expected 401")


def _ceiling_http(options: OrdersOptions) -> list[str]:
    return [
        "--mode",
        "http",
        "--tenants",
        str(options.tenants),
        "--concurrency",
        str(options.concurrency),
        "--seconds",
        str(options.seconds),
        "--warmup-orders",
        str(options.warmup_orders),
        "--seed",
        str(options.seed),
    ]


# --------------------------------------------------------------------------- checks


async def _written(connection: Any, stores: Sequence[BenchStore]) -> dict[str, Any]:
    """Orders and order.placed events written, and whether reserved stock matches the orders."""
    per_store = " UNION ALL ".join(
        f"""SELECT (SELECT count(*) FROM "{s.tenant.schema_name}".orders) AS orders,
                   (SELECT coalesce(sum(reserved), 0) FROM "{s.tenant.schema_name}".stock_levels)
                 = (SELECT coalesce(sum(quantity), 0) FROM "{s.tenant.schema_name}".reservations)
               AND (SELECT coalesce(sum(quantity), 0) FROM "{s.tenant.schema_name}".reservations)
                 = (SELECT coalesce(sum(quantity_allocated), 0) FROM "{s.tenant.schema_name}".order_lines)
                   AS consistent"""
        for s in stores
    )
    # One statement, one snapshot: an order and its event commit together, so they count alike.
    row = await connection.fetchrow(
        "SELECT sum(orders)::int8 AS orders, bool_and(consistent) AS consistent,"
        " (SELECT count(*) FROM platform.outbox WHERE topic = 'order.placed'"
        "   AND tenant_id = ANY($1::uuid[])) AS events"
        f" FROM ({per_store}) AS per_store",
        [s.tenant.tenant_id for s in stores],
    )
    return {
        "orders": row["orders"],
        "placed_events": row["events"],
        "stock_matches_orders": row["consistent"],
    }


async def _written_when_idle(connection: Any, stores: Sequence[BenchStore]) -> dict[str, Any]:
    """`_written` once the server has finished the orders still in flight when wrk stopped."""
    written = await _written(connection, stores)
    while True:
        await asyncio.sleep(0.3)
        again = await _written(connection, stores)
        if again["orders"] == written["orders"]:
            return again
        written = again


# --------------------------------------------------------------------------- listing


@dataclass
class _Timings:
    each_ms: dict[str, list[float]] = field(default_factory=dict)
    rows: dict[str, list[int]] = field(default_factory=dict)


def _list_query(shape: str, store: BenchStore, rng: random.Random, now: float) -> dict[str, str]:
    """Query parameters of one request of a shape, drawn like the data (frequent buyers, best-sellers)."""
    if shape == "status+channel":
        channel = rng.choice(["web", "web", "pos", "api", "marketplace", "phone"])
        return {"status": rng.choice(["confirmed", "completed"]), "channel": channel}
    if shape == "customer+created_after":
        customer = 1 + math.floor(store.customers * rng.random() ** 2)
        after = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - rng.uniform(30, 365) * 86400))
        return {"customer_id": str(store.customer_id(customer)), "created_after": after}
    if shape == "tag+status":
        return {"tag": rng.choice(["vip", "gift"]), "status": rng.choice(["confirmed", "completed"])}
    sku = 1 + math.floor(store.skus * rng.random() ** 1.5)
    return {"sku": order_data.sku_code(sku), "status": rng.choice(["confirmed", "completed"])}


async def _time_lists(client: httpx.AsyncClient, store: BenchStore, requests: int, seed: int) -> _Timings:
    """Each shape `requests` times, one request at a time, after 10 untimed ones each."""
    rng, now, timings = random.Random(seed), time.time(), _Timings()
    headers = {"Authorization": f"Bearer {store.api_key}"}
    for shape in LIST_SHAPES:
        timings.each_ms[shape], timings.rows[shape] = [], []
        for number in range(10 + requests):
            params = _list_query(shape, store, rng, now)
            started = time.perf_counter()
            response = await client.get("/api/v1/orders", params=params, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise load.BenchSetupError(f"GET /api/v1/orders?{params} answered {response.status_code}")
            if number >= 10:
                timings.each_ms[shape].append(elapsed)
                timings.rows[shape].append(len(response.json()["data"]))
    return timings


def _filter_of(params: dict[str, str]) -> OrderFilter:
    return OrderFilter(
        status=[params["status"]] if "status" in params else [],
        channel=params.get("channel"),
        customer_id=uuid.UUID(params["customer_id"]) if "customer_id" in params else None,
        created_after=_parse_time(params.get("created_after")),
        sku=params.get("sku"),
        tag=params.get("tag"),
    )


def _parse_time(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _plans(database: Database, store: BenchStore, seed: int, full: bool) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the page query of one request per shape: which indexes it uses."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    rng, now = random.Random(seed), time.time()
    plans: dict[str, Any] = {}
    engine = database.runtime.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        for shape in LIST_SHAPES:
            params = _list_query(shape, store, rng, now)
            async with database.tenant_session(store.tenant) as session:
                captured.clear()
                await list_orders(
                    store.tenant, session, _filter_of(params), PageRequest.parse(DEFAULT_PAGE_SIZE, None)
                )
                statement, parameters = captured[-1]
                connection = await session.connection()
                raw = await connection.get_raw_connection()
                driver: Any = raw.driver_connection
                rows = await driver.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *(parameters or ()))
            lines = [row[0] for row in rows]
            nodes = [(kind, name) for kind, name in _PLAN_NODES.findall("\n".join(lines))]
            plans[shape] = {
                "params": params,
                "indexes": sorted({name for kind, name in nodes if kind != "Seq Scan"}),
                "seq_scans": sorted({name for kind, name in nodes if kind == "Seq Scan"}),
                "execution_ms": next(
                    (
                        float(line.split(":")[1].split()[0])
                        for line in lines
                        if line.startswith("Execution Time")
                    ),
                    None,
                ),
            }
            if full:
                plans[shape]["plan"] = lines
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return plans


# --------------------------------------------------------------------------- the phase


@dataclass
class _Stores:
    placing: list[BenchStore]
    listing: BenchStore


async def _open_stores(database: Database, settings: Settings, options: OrdersOptions) -> _Stores:
    signer = TokenSigner(settings.secret_key)
    started = time.perf_counter()
    slugs = [f"orders-{number:03d}" for number in range(1, options.tenants + 1)]
    placing = await order_data.open_stores(
        database,
        signer,
        slugs,
        [Permission.ORDERS_WRITE, Permission.ORDERS_READ],
        skus=options.skus,
        customers=options.customers,
    )
    listing = await order_data.open_store(
        database,
        signer,
        "orders-list",
        [Permission.ORDERS_READ],
        skus=options.skus,
        customers=options.list_customers,
    )
    say(
        f"orders set-up: {len(placing) + 1} stores signed up, keyed and stocked "
        f"in {time.perf_counter() - started:.1f} s"
    )
    started = time.perf_counter()
    await order_data.fill_orders(database, listing, options.list_orders)
    say(
        f"orders set-up: {options.list_orders:,} orders in one store in {time.perf_counter() - started:.1f} s"
    )
    return _Stores(placing, listing)


def _summary(wrk: dict[str, Any]) -> dict[str, Any]:
    seconds = wrk["duration_us"] / 1e6
    errors = {key.removeprefix("errors_"): wrk[key] for key in wrk if key.startswith("errors_") and wrk[key]}
    return {
        "seconds": round(seconds, 3),
        "requests": wrk["requests"],
        "rps": round(wrk["requests"] / seconds, 1),
        "p50_ms": round(wrk["p50_us"] / 1000, 3),
        "p90_ms": round(wrk["p90_us"] / 1000, 3),
        "p99_ms": round(wrk["p99_us"] / 1000, 3),
        "max_ms": round(wrk["max_us"] / 1000, 3),
        "errors": errors,
    }


async def _product_http(
    url: str, database: Database, admin: Admin, meter: CpuMeter, stores: _Stores, options: OrdersOptions
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Warm up, place orders for `seconds` under wrk, then time the lists: both on one server."""
    check = await asyncpg.connect(to_libpq_url(url))
    directory = Path(tempfile.mkdtemp(prefix="ordersmith-orders-"))
    try:
        count = max(2000, 20 * len(stores.placing))
        script, warmup = directory / "orders.lua", directory / "orders-warmup.lua"
        load.write_wrk_script(script, stores.placing, count, options.seed, warmup=False)
        load.write_wrk_script(warmup, stores.placing, count, options.seed + 1, warmup=True)
        async with load.serve_product(url, options.database_pool) as app:
            async with httpx.AsyncClient(base_url=app.base_url, timeout=30) as client:
                await smoke_test(client, stores.placing[0])
            # Start like the ceiling: fresh statistics, no dead rows, just after a checkpoint.
            await admin.settle(
                [*order_data.tenant_tables([*stores.placing, stores.listing]), "platform.outbox"]
            )
            tag = uuid.uuid4().hex[:12] if options.idempotency else ""
            before = await _written(check, stores.placing)
            say(f"orders: product warm-up, {options.warmup_orders:,} orders")
            warm = await load.run_wrk(
                options.wrk,
                warmup,
                app.base_url,
                options.concurrency,
                WARMUP_LIMIT_S,
                str(options.warmup_orders),
                tag and tag + "w",
            )
            if warm["requests"] < options.warmup_orders:
                say(f"orders: the warm-up stopped at {WARMUP_LIMIT_S} s after {warm['requests']:,} orders")
            reading = load.cpu_reading(meter, app.pid)
            profiler = await load.start_profiler(app.pid, options.profile, options.seconds)
            wrk = await load.run_wrk(
                options.wrk,
                script,
                app.base_url,
                options.concurrency,
                options.seconds,
                "0",
                tag and tag + "m",
            )
            cpu = load.cpu_cores(meter, reading, load.cpu_reading(meter, app.pid))
            if profiler is not None:
                await profiler.wait()
            after = await _written_when_idle(check, stores.placing)
            project = _summary(wrk)
            say(
                f"orders: product {project['rps']} req/s, p50 {project['p50_ms']} ms, "
                f"p99 {project['p99_ms']} ms, errors {project['errors'] or 'none'}"
            )
            written, events = (
                after["orders"] - before["orders"],
                after["placed_events"] - before["placed_events"],
            )
            # Warm-up and measured orders; wrk stops counting at the deadline while the app
            # finishes what is in flight, and stops the warm-up a little late: written >= counted.
            counted = options.warmup_orders + wrk["requests"] - wrk["errors_status"]
            ok = written == events >= counted and after["stock_matches_orders"]
            project.update(
                warmup={"orders": warm["requests"], "seconds": round(warm["duration_us"] / 1e6, 1)},
                cpu_cores=cpu,
                checks={
                    "orders_written": written,
                    "placed_events_written": events,
                    "stock_matches_orders": after["stock_matches_orders"],
                    "ok": ok,
                },
            )
            say(f"orders: listing, {options.list_requests} timed requests per shape")
            async with httpx.AsyncClient(base_url=app.base_url, timeout=30) as client:
                timings = await _time_lists(client, stores.listing, options.list_requests, options.seed)
        plans = await _plans(database, stores.listing, options.seed, options.explain)
    finally:
        await check.close()
        shutil.rmtree(directory, ignore_errors=True)
    every = [ms for values in timings.each_ms.values() for ms in values]
    listing = {
        "orders_in_store": options.list_orders,
        "requests": len(every),
        "page_size": DEFAULT_PAGE_SIZE,
        **report.latency(every),
        "by_shape": {
            shape: {**report.latency(values), "mean_rows": round(sum(timings.rows[shape]) / len(values), 1)}
            for shape, values in timings.each_ms.items()
        },
        "plans": plans,
    }
    return project, listing


async def run(
    options: OrdersOptions, settings: Settings, database: Database, admin: Admin, url: str, ceiling_dsn: str
) -> dict[str, Any]:
    """Set up both sides, run ceiling, product, ceiling, then the lists; the results' orders part."""
    meter = CpuMeter(find_postmaster(await admin.backend_pid()), BENCH_DATABASE)
    if options.generic_plans:
        # What the ceiling does on connect, for the product's runtime role in the bench database only.
        connection = await asyncpg.connect(to_libpq_url(url))
        try:
            await connection.execute(
                f'ALTER ROLE "{settings.database.app_role}" IN DATABASE "{BENCH_DATABASE}" '
                "SET plan_cache_mode = force_generic_plan"
            )
        finally:
            await connection.close()
    stores = await _open_stores(database, settings, options)
    say(f"orders: ceiling set-up, {options.tenants} tenants")
    await load.run_ceiling(options.ceiling, ceiling_dsn, "--setup", "--tenants", str(options.tenants))
    say("orders: ceiling run 1")
    first = await load.run_ceiling(options.ceiling, ceiling_dsn, *_ceiling_http(options))
    project, listing = await _product_http(url, database, admin, meter, stores, options)
    say("orders: ceiling run 2")
    second = await load.run_ceiling(options.ceiling, ceiling_dsn, *_ceiling_http(options))
    return summarize(options, project, listing, (first, second))


def _present(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def summarize(
    options: OrdersOptions,
    project: dict[str, Any],
    listing: dict[str, Any],
    ceiling: tuple[dict[str, Any], dict[str, Any]],
) -> dict[str, Any]:
    """The top-level keys, targets and validity of the orders phases."""
    reference_runs = [run["rps"] for run in ceiling]
    reference_rps = round(sum(reference_runs) / len(reference_runs), 1)
    ratio = round(project["rps"] / reference_rps, 3)
    reference_p99 = sum(run["p99_ms"] for run in ceiling) / len(ceiling)
    spread = report.spread(reference_runs)
    invalid = []
    if spread > report.MAX_REFERENCE_SPREAD:
        invalid.append(
            f"place_order: the two ceiling runs differ by {spread:.0%} (> {report.MAX_REFERENCE_SPREAD:.0%})"
        )
    for name, cores in [
        ("ceiling 1", ceiling[0]["cpu_cores"]),
        ("product", project["cpu_cores"]),
        ("ceiling 2", ceiling[1]["cpu_cores"]),
    ]:
        other = _present(cores, "other")
        if other is not None and other > report.MAX_OTHER_CORES:
            invalid.append(f"place_order {name}: {other} cores busy outside the benchmark")
    problems = [] if project["checks"]["ok"] else [f"place_order checks failed: {project['checks']}"]
    problems += [
        f"ceiling run {n} checks failed" for n, run in enumerate(ceiling, 1) if not run["checks"]["ok"]
    ]
    seq_scans = {
        shape: plan["seq_scans"]
        for shape, plan in listing["plans"].items()
        if "orders" in " ".join(plan["seq_scans"])
    }
    return {
        "place_order_rps": project["rps"],
        "place_order_p50_ms": project["p50_ms"],
        "place_order_p99_ms": project["p99_ms"],
        "reference_rps": reference_rps,
        "place_order_ratio": ratio,
        "place_order_errors": sum(project["errors"].values()),
        "list_orders_p95_ms": listing["p95_ms"],
        "orders": {
            "level": "http",
            "tenants": options.tenants,
            "concurrency": options.concurrency,
            "seconds": options.seconds,
            "warmup_orders": options.warmup_orders,
            "load_generator": "wrk -t1 (closed loop), the same script shape on both sides",
            "ratio": ratio,
            "ratio_definition": "place_order_rps / mean(ceiling rps of the two runs around it)",
            "p99_ratio": round(project["p99_ms"] / reference_p99, 3),
            "project": {
                **project,
                "adds": PROJECT_ADDS,
                "settings": {
                    "database_pool": options.database_pool,
                    "plan_cache_mode": (
                        "force_generic_plan everywhere"
                        if options.generic_plans
                        else "force_generic_plan in placement's transaction (ADR 0010), auto elsewhere"
                    ),
                    "idempotency_key": "a new key on every order" if options.idempotency else "not sent",
                    "statement_cache": "asyncpg statement_cache_size=1024 per connection, placement's "
                    "statements one per tenant (Database, ADR 0010)",
                },
            },
            "ceiling": {
                "rps": reference_runs,
                "p50_ms": [run["p50_ms"] for run in ceiling],
                "p99_ms": [run["p99_ms"] for run in ceiling],
                "sql": ceiling[0].get("sql"),
                "plan_cache_mode": ceiling[0].get("plan_cache_mode"),
                "spread": spread,
                "runs": list(ceiling),
            },
            "list": listing,
            "list_seq_scans_on_orders": seq_scans,
        },
        "targets": {
            "place_order_ratio": report.at_least(ratio, PLACE_RATIO_TARGET, ""),
            "place_order_p99_ms": report.target(project["p99_ms"], PLACE_P99_TARGET_MS, "ms"),
            "list_orders_p95_ms": report.target(listing["p95_ms"], LIST_P95_TARGET_MS, "ms"),
        },
        "invalid_reasons": invalid,
        "problems": problems,
    }


def options_from(ceiling: Path, wrk: str, *, quick: bool, overrides: dict[str, Any]) -> OrdersOptions:
    """Defaults, made small by --quick, then whatever flags were given."""
    base: dict[str, Any] = {"ceiling": ceiling, "wrk": wrk}
    if quick:
        base.update(tenants=10, seconds=3.0, list_orders=10_000, list_requests=30, list_customers=1000)
    base.update({key: value for key, value in overrides.items() if value is not None})
    return OrdersOptions(**base)
