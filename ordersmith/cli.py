"""The `ordersmith` command: run the app, migrate, manage tenants, run workers."""

from __future__ import annotations

import asyncio
import functools
import getpass
import importlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from ordersmith.platform.bootstrap import migrate_platform
from ordersmith.platform.database import Database
from ordersmith.platform.embedded import EmbeddedPostgresError
from ordersmith.platform.errors import (
    OrdersmithError,
    TenantNotFoundError,
    UnreachableError,
    ValidationFailedError,
)
from ordersmith.platform.identity.accounts import sign_up
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.identity.tokens import TokenSigner
from ordersmith.platform.logging import configure_logging
from ordersmith.platform.runtime import open_database
from ordersmith.platform.settings import Settings, SettingsError, load_settings
from ordersmith.platform.tenancy import (
    TenantRecord,
    archive_tenant,
    drop_tenant,
    get_tenant_record,
    list_tenants,
    provision_tenant,
    restore_command,
    restore_tenant,
)
from ordersmith.platform.tenant_migrations import (
    TenantMigrationResult,
    migrate_tenants,
    migration_concurrency,
    tenant_schema_status,
)
from ordersmith.tenants.demo import stock_demo_store
from ordersmith.tenants.schema import TENANT_SCHEMA

P = ParamSpec("P")
T = TypeVar("T")

DEMO_SLUG = "demo"
DEMO_NAME = "Demo Store"
# A known sign-in for the local demo store only: `run` creates it in development mode.
DEMO_EMAIL = "owner@demo.example.com"
DEMO_PASSWORD = "demo-store-2026"


class CommandFailedError(Exception):
    """The command did its best and reports a failure (exit code 1) with this message."""


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(level=settings.log_level, as_json=settings.is_production)
    return settings


def async_command(function: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async command; turn the errors a user can act on into one line and exit 1."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            asyncio.run(function(*args, **kwargs))
        except (
            SettingsError,
            UnreachableError,
            EmbeddedPostgresError,
            OrdersmithError,
            CommandFailedError,
        ) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)

    return run


async def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    database = await open_database(settings)
    try:
        return await work(database)
    finally:
        await database.dispose()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Ordersmith: a multi-tenant order management system."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="Where the embedded PostgreSQL keeps its data."
)
@async_command
async def run(host: str, port: int, data_dir: Path | None) -> None:
    """Serve the API with the relay, scheduler and in-process workers (embedded defaults)."""
    import uvicorn

    from ordersmith.app import create_app
    from ordersmith.platform.workers import connect_broker

    # SIGTERM (a process manager, `timeout`, a container's stop) and SIGHUP (its terminal
    # closed) must end `run` as Ctrl-C does, with the embedded PostgreSQL stopped by the
    # exit handlers (see _exit_on_signal).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    if data_dir is not None:
        os.environ["ORDERSMITH_DATA_DIR"] = str(data_dir)
    # Links in emails point at this server unless told otherwise.
    os.environ.setdefault("PUBLIC_URL", f"http://{host}:{port}")
    settings = _settings()
    # Fail fast, in one line, on a broker that does not answer; the app opens its own.
    connect_broker(settings.broker).close()
    database = await open_database(settings)
    try:
        await migrate_platform(database)
        results = await migrate_tenants(database, TENANT_SCHEMA)
        _raise_if_failed(results)
        demo = await ensure_demo_store(database, settings)
    finally:
        await database.dispose()
    # The app opens and closes its own pools in its lifespan: closed before uvicorn
    # re-raises the Ctrl-C it handled, so a stop never cuts a connection's close short.
    app = create_app(settings, background=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="none",
            http="httptools",
            log_config=None,
            lifespan="on",
            # The app reads X-Forwarded-For itself, from TRUSTED_PROXIES only.
            proxy_headers=False,
        )
    )
    # uvicorn shuts down gracefully on SIGINT and SIGTERM only: a hang-up asks for the same.
    signal.signal(signal.SIGHUP, lambda _number, frame: server.handle_exit(signal.SIGTERM, frame))
    click.echo(
        f"\nOrdersmith is running at http://{host}:{port}\n"
        f"  API description: http://{host}:{port}/api/schema\n"
        f"{demo}"
        f"  Database: {_database_description(settings)}\n"
        f"  Broker: {_broker_description(settings)}\n"
        "Stop with Ctrl-C.\n"
    )
    await server.serve()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(min=1), help="API processes to run."
)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API alone, for production: DATABASE_URL required, no migrations, no workers."""
    import uvicorn

    try:
        settings = _settings()
    except SettingsError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    if settings.database.url is None:
        click.echo(
            "error: serve needs DATABASE_URL (and `ordersmith migrate` run first); "
            "`ordersmith run` serves with an embedded database instead",
            err=True,
        )
        sys.exit(1)
    uvicorn.run(
        "ordersmith.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        # The app reads X-Forwarded-For itself, from TRUSTED_PROXIES only; uvicorn's own
        # reading would trust any local peer's header before the app sees the request.
        proxy_headers=False,
    )


def _exit_on_signal(signal_number: int, _frame: object) -> None:
    """End the process the ordinary way, so that its exit handlers run, with a signal's exit status.

    uvicorn shuts the app down on SIGTERM and then raises the signal again for the handler
    that was in place before it. Python's default handler ends the process on the spot,
    skipping the exit handler that stops the embedded PostgreSQL: the server would stay
    up, and, its list of users still naming the dead process, would not be stopped by
    later runs either.
    """
    sys.exit(128 + signal_number)


def _database_description(settings: Settings) -> str:
    if settings.database.url is None:
        return f"embedded PostgreSQL, data in {settings.data_dir}"
    return "DATABASE_URL"


def _broker_description(settings: Settings) -> str:
    return "in-process" if settings.broker.url is None else "BROKER_URL"


async def ensure_demo_store(database: Database, settings: Settings) -> str:
    """Create the demo store and its owner on a development first start; say how to sign in."""
    if not settings.is_development:
        return ""
    stocked = ""
    try:
        await get_tenant_record(database, DEMO_SLUG)
    except TenantNotFoundError:
        owner = await sign_up(
            database,
            TENANT_SCHEMA,
            TokenSigner(settings.secret_key),
            company_name=DEMO_NAME,
            email=DEMO_EMAIL,
            password=DEMO_PASSWORD,
            slug=DEMO_SLUG,
            public_url=settings.public_url,
            client_address=None,
            signups_per_hour=settings.signup_limit_per_hour,
        )
        demo = await stock_demo_store(database, owner.tenant.context, actor=Actor("user", str(owner.user_id)))
        stocked = (
            f"  It is stocked with {demo.products} products, {demo.locations} locations, "
            f"{demo.customers} customers and {demo.orders} orders.\n"
        )
    return (
        f"  Demo store: {DEMO_SLUG!r}; sign in with POST /api/v1/auth/token\n"
        f'    {{"email": "{DEMO_EMAIL}", "password": "{DEMO_PASSWORD}", "tenant": "{DEMO_SLUG}"}}\n'
        f"{stocked}"
        f"  Emails go to the development mailbox: GET /api/v1/dev/mailbox\n"
    )


@main.command()
@async_command
async def migrate() -> None:
    """Create the roles, migrate the platform schema, then every tenant schema."""

    async def work(database: Database) -> None:
        await migrate_platform(database)
        click.echo("platform schema: at head")
        _raise_if_failed(await migrate_tenants(database, TENANT_SCHEMA, on_result=_echo_result))

    await _with_database(_settings(), work)


@main.group()
def tenants() -> None:
    """Create, list, migrate, archive and drop tenants."""


@tenants.command("create")
@click.option(
    "--slug",
    required=True,
    help="The tenant's address: 3-40 of a-z, 0-9 and '-', not starting or ending with '-'.",
)
@click.option("--name", required=True, help="The store's display name.")
@click.option("--plan", default="trial", show_default=True, help="The plan the tenant starts on.")
@async_command
async def tenants_create(slug: str, name: str, plan: str) -> None:
    """Provision a tenant: role, schema at head and seed rows, all or nothing."""
    record = await _with_database(
        _settings(),
        lambda database: provision_tenant(database, TENANT_SCHEMA, slug=slug, name=name, plan=plan),
    )
    click.echo(f"created tenant {record.slug} (schema {record.schema_name}, revision {record.revision})")


@tenants.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@async_command
async def tenants_list(as_json: bool) -> None:
    """List every tenant with its schema, role, status and revision."""
    records = await _with_database(_settings(), list_tenants)
    if as_json:
        for record in records:
            click.echo(json.dumps(_record_json(record)))
        return
    click.echo(f"{'SLUG':<30} {'SCHEMA':<14} {'STATUS':<9} {'PLAN':<10} REVISION")
    for record in records:
        revision = record.revision or "-"
        click.echo(
            f"{record.slug:<30} {record.schema_name:<14} {record.status:<9} {record.plan:<10} {revision}"
        )


def _record_json(record: TenantRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "slug": record.slug,
        "name": record.name,
        "schema": record.schema_name,
        "db_role": record.db_role,
        "status": record.status,
        "plan": record.plan,
        "revision": record.revision,
        "migration_error": record.migration_error,
        "cluster": record.cluster,
        "database": record.database_name,
        "created_at": record.created_at.isoformat(),
    }


@tenants.command("migrate")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Tenants migrated at once (default: MIGRATION_CONCURRENCY, 4); at most the owner pool's "
    "connections, MIGRATION_CONCURRENCY + DATABASE_MAX_OVERFLOW.",
)
@click.option(
    "--slug", "slugs", multiple=True, help="Only these tenants (repeatable); exit 1 if one is unknown."
)
@async_command
async def tenants_migrate(concurrency: int | None, slugs: tuple[str, ...]) -> None:
    """Bring tenant schemas to head; go on past failures and report them; exit 1 if any."""

    async def work(database: Database) -> list[TenantMigrationResult]:
        effective = migration_concurrency(database, concurrency)
        if concurrency is not None and effective < concurrency:
            click.echo(
                f"concurrency: {effective}, not {concurrency}: the owner pool holds {effective} connections "
                "(MIGRATION_CONCURRENCY + DATABASE_MAX_OVERFLOW); raise them to migrate more at once"
            )
        return await migrate_tenants(
            database, TENANT_SCHEMA, slugs=slugs or None, concurrency=effective, on_result=_echo_result
        )

    _raise_if_failed(await _with_database(_settings(), work))


def _echo_result(result: TenantMigrationResult) -> None:
    if result.outcome == "failed":
        click.echo(f"FAILED   {result.slug} ({result.schema_name}) at {result.from_revision}: {result.error}")
    elif result.outcome == "migrated":
        click.echo(f"migrated {result.slug}: {result.from_revision} -> {result.to_revision}")


def _raise_if_failed(results: list[TenantMigrationResult]) -> None:
    failed = [result for result in results if result.outcome == "failed"]
    migrated = sum(1 for result in results if result.outcome == "migrated")
    click.echo(f"tenants: {len(results)} in all, {migrated} migrated, {len(failed)} failed")
    if failed:
        names = ", ".join(result.slug for result in failed)
        raise CommandFailedError(
            f"{len(failed)} tenant(s) failed to migrate: {names}; fix the cause and run the command again"
        )


@tenants.command("status")
@async_command
async def tenants_status() -> None:
    """List tenants whose schema is not at head, and why the last migration failed."""
    statuses = await _with_database(
        _settings(), lambda database: tenant_schema_status(database, TENANT_SCHEMA)
    )
    behind = [status for status in statuses if not status.is_at_head]
    head = statuses[0].head if statuses else TENANT_SCHEMA.migrations.head()
    click.echo(f"head: {head}; {len(statuses)} tenants, {len(behind)} not at head")
    for status in behind:
        reason = f" (last error: {status.migration_error})" if status.migration_error else ""
        click.echo(f"  {status.slug} ({status.schema_name}) at {status.revision or 'nothing'}{reason}")


def _operator() -> Actor:
    """Who runs a vendor command, for the audit trail: the system, named by the operator's login."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        # A container user without a passwd entry or a login variable.
        login = "unknown"
    return Actor("system", f"cli:{login}")


@tenants.command("archive")
@click.argument("slug")
@async_command
async def tenants_archive(slug: str) -> None:
    """Block all access to a tenant, keeping its data (audited)."""
    await _with_database(_settings(), lambda database: archive_tenant(database, slug, actor=_operator()))
    click.echo(f"archived {slug}; `{restore_command(slug)}` gives access back")


@tenants.command("restore")
@click.argument("slug")
@async_command
async def tenants_restore(slug: str) -> None:
    """Give an archived tenant its access back (audited)."""
    await _with_database(_settings(), lambda database: restore_tenant(database, slug, actor=_operator()))
    click.echo(f"restored {slug}")


@tenants.command("drop")
@click.argument("slug")
@click.option("--confirm", required=True, help="Repeat the slug to confirm; the data is deleted for good.")
@async_command
async def tenants_drop(slug: str, confirm: str) -> None:
    """Cancel an archived tenant's Stripe subscription, then delete the tenant for good (audited)."""
    # Registers the hook that ends the store's subscription first (refusing the drop if it cannot).
    importlib.import_module("ordersmith.billing.subscriptions")
    await _with_database(
        _settings(), lambda database: drop_tenant(database, slug, confirm=confirm, actor=_operator())
    )
    click.echo(f"dropped {slug}")


@main.group()
def staff() -> None:
    """Manage the vendor's staff accounts (a realm separate from tenant users)."""


@staff.command("create")
@click.option("--email", required=True, help="The staff member's email; they sign in with it.")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["support", "auditor", "superadmin"]),
    help="support: works in tenants through grants; auditor: reads; superadmin: also elevates grants.",
)
@click.option("--name", default="", help="The staff member's full name.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt."
)
@async_command
async def staff_create(email: str, role: str, name: str, password_stdin: bool) -> None:
    """Create a staff account and print its id."""
    # Imported here: identity pulls in hashing and mail, which other commands do not need.
    from ordersmith.platform.identity.staff import create_staff_account

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        member = await _with_database(
            _settings(),
            lambda database: create_staff_account(
                database, email=email, role=role, password=password, full_name=name
            ),
        )
    except ValidationFailedError as error:
        # The detail says "see errors"; on a terminal, the errors are the useful part.
        raise CommandFailedError(
            "; ".join(f"{item.field} {item.message}" for item in error.errors) or error.detail
        ) from None
    click.echo(str(member.id))


@main.group()
def audit() -> None:
    """Check the audit trail."""


@audit.command("verify")
@async_command
async def audit_verify() -> None:
    """Recompute every audit chain; name the first bad entry of each broken one; exit 1 if any."""
    from ordersmith.platform.identity.audit import verify_audit_log

    result = await _with_database(_settings(), verify_audit_log)
    if result.is_intact:
        click.echo(f"audit log intact: {result.entries} entries in {result.chains} chains")
        return
    for problem in result.problems:
        click.echo(f"chain {problem.chain}: first bad entry {problem.entry_id}: {problem.reason}")
    raise CommandFailedError(
        f"{len(result.problems)} of {result.chains} audit chains are broken; "
        "restore the named entries from a backup and investigate who changed them"
    )


@main.command()
@click.option("--threads", type=int, default=4, show_default=True, help="Worker threads.")
@click.option(
    "--import", "modules", multiple=True, help="Also import this module (to register its consumers)."
)
@async_command
async def worker(threads: int, modules: tuple[str, ...]) -> None:
    """Run the consumer and job actors against BROKER_URL until stopped."""
    from ordersmith.app import declare_process_actors
    from ordersmith.platform.workers import connect_broker, start_worker

    settings = _settings()
    for module in modules:
        importlib.import_module(module)
    broker = connect_broker(settings.broker)
    database = await open_database(settings)
    declare_process_actors(settings, broker, database)
    running = start_worker(broker, threads)
    click.echo(f"worker: {threads} threads on the {_broker_description(settings)} broker")
    try:
        await _wait_for_stop_signal()
    finally:
        await asyncio.to_thread(running.stop)
        broker.close()
        await database.dispose()


@main.command()
@click.option("--tick", type=float, default=1.0, show_default=True, help="Seconds between scheduler passes.")
@click.option(
    "--import", "modules", multiple=True, help="Also import this module (to register its consumers)."
)
@async_command
async def scheduler(tick: float, modules: tuple[str, ...]) -> None:
    """Enqueue periodic jobs and relay the outbox; one leader at a time (advisory lock)."""
    from ordersmith.app import JOBS, declare_process_actors
    from ordersmith.platform.events import consumers
    from ordersmith.platform.scheduler import run_scheduler
    from ordersmith.platform.workers import connect_broker

    settings = _settings()
    for module in modules:
        importlib.import_module(module)
    broker = connect_broker(settings.broker)
    database = await open_database(settings)
    actors = declare_process_actors(settings, broker, database)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_scheduler(database, JOBS, actors.enqueue_job, consumers, actors.publish, stop, tick_seconds=tick)
    )
    try:
        await _wait_for_stop_signal()
    finally:
        stop.set()
        await task
        broker.close()
        await database.dispose()


async def _wait_for_stop_signal() -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopped.set)
    await stopped.wait()


if __name__ == "__main__":
    main()
