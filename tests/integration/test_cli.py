"""The `ordersmith` command as a user runs it: exit codes and what it prints."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ordersmith.cli import main
from ordersmith.platform.database import Database
from ordersmith.platform.settings import SettingsError, load_settings
from ordersmith.platform.tenancy import get_tenant_record
from ordersmith.tenants.schema import TENANT_MIGRATIONS
from tests.support.cli import run_ordersmith as ordersmith
from tests.support.services import new_slug


async def test_create_list_and_status(database: Database, database_url: str) -> None:
    slug = new_slug("cli")
    created = ordersmith("tenants", "create", "--slug", slug, "--name", "CLI Shop", database_url=database_url)
    assert created.returncode == 0, created.stderr
    record = await get_tenant_record(database, slug)
    assert created.stdout == (
        f"created tenant {slug} (schema {record.schema_name}, revision {TENANT_MIGRATIONS.head()})\n"
    )

    listed = ordersmith("tenants", "list", "--json", database_url=database_url)
    assert listed.returncode == 0, listed.stderr
    rows = {row["slug"]: row for row in map(json.loads, listed.stdout.splitlines())}
    row = rows[slug]
    assert {key: row[key] for key in ("slug", "schema", "db_role", "status", "revision", "plan")} == {
        "slug": slug,
        "schema": record.schema_name,
        "db_role": record.db_role,
        "status": "active",
        "revision": TENANT_MIGRATIONS.head(),
        "plan": "trial",
    }

    status = ordersmith("tenants", "status", database_url=database_url)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"head: {TENANT_MIGRATIONS.head()}; ")
    assert f"{slug} " not in status.stdout


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        (
            "No_Good",
            "error: slug 'No_Good' must be 3 to 40 characters: lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit\n",
        ),
        (
            "-no-good",
            "error: slug '-no-good' must be 3 to 40 characters: lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit\n",
        ),
        ("admin", "error: slug 'admin' is reserved; choose another\n"),
    ],
)
def test_a_bad_slug_is_one_clear_line_and_exit_1(database_url: str, slug: str, message: str) -> None:
    result = ordersmith("tenants", "create", "--slug", slug, "--name", "X", database_url=database_url)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message)


def test_an_unknown_plan_is_one_clear_line_and_creates_nothing(database_url: str) -> None:
    result = ordersmith(
        "tenants",
        "create",
        "--slug",
        new_slug("cli"),
        "--name",
        "X",
        "--plan",
        "gold",
        database_url=database_url,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "error: plan 'gold' does not exist; it must be one of trial, starter, growth, enterprise\n",
    )


def test_migrating_an_unknown_slug_fails_and_too_high_a_concurrency_is_lowered(database_url: str) -> None:
    result = ordersmith(
        "tenants", "migrate", "--concurrency", "50", "--slug", "no-such-shop", database_url=database_url,
        MIGRATION_CONCURRENCY="2", DATABASE_MAX_OVERFLOW="3",
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "concurrency: 5, not 50: the owner pool holds 5 connections (MIGRATION_CONCURRENCY + "
        "DATABASE_MAX_OVERFLOW); raise them to migrate more at once\n",
        "error: no tenant has the slug 'no-such-shop'; nothing was migrated: "
        "check the spelling or list tenants\n",
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://user:secret@db/shop", "DATABASE_URL must be a PostgreSQL URL, such as "
         "postgresql://user:password@host:5432/ordersmith; got a 'mysql' URL"),
        ("not a url", "DATABASE_URL is not a URL; set it like postgresql://user:password@host:5432/ordersmith"),
    ],
)  # fmt: skip
def test_a_database_url_that_is_not_postgresql_is_refused(url: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({"DATABASE_URL": url})
    assert str(refused.value) == message


def test_a_malformed_database_url_is_one_line_not_a_traceback() -> None:
    result = ordersmith("tenants", "list", database_url="mysql://user:secret@db/shop")
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "error: DATABASE_URL must be a PostgreSQL URL, such as "
        "postgresql://user:password@host:5432/ordersmith; got a 'mysql' URL\n",
    )


def test_an_unknown_tenant_is_reported(database_url: str) -> None:
    result = ordersmith("tenants", "archive", "no-such-shop", database_url=database_url)
    assert result.returncode == 1
    assert (
        result.stderr == "error: no tenant has the slug 'no-such-shop'; check the spelling or list tenants\n"
    )


def test_an_unreachable_database_is_one_line_not_a_traceback() -> None:
    result = ordersmith("tenants", "list", database_url="postgresql://postgres@127.0.0.1:1/ordersmith")
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach PostgreSQL (postgresql at 127.0.0.1:1/ordersmith): ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_an_unreachable_broker_is_one_line_not_a_traceback(database_url: str) -> None:
    result = ordersmith("worker", database_url=database_url, BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2F")
    assert result.returncode == 1
    assert result.stderr.endswith(
        "error: cannot reach the broker at 127.0.0.1:1/%2F; check BROKER_URL and that the broker runs\n"
    )
    assert "Traceback" not in result.stderr


def test_a_malformed_broker_url_is_refused(database_url: str) -> None:
    result = ordersmith("tenants", "list", database_url=database_url, BROKER_URL="kafka://somewhere")
    assert result.returncode == 1
    assert result.stderr == (
        "error: BROKER_URL must start with amqp://, amqps://, redis:// or rediss://, got 'kafka://somewhere'\n"
    )


@pytest.mark.parametrize(
    "command",
    [[], ["run"], ["migrate"], ["tenants"], ["tenants", "create"], ["tenants", "list"],
     ["tenants", "migrate"], ["tenants", "status"], ["tenants", "archive"], ["tenants", "restore"],
     ["tenants", "drop"], ["worker"], ["scheduler"], ["serve"]],
)  # fmt: skip
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: "), command
    assert "Show this message and exit." in result.output


async def test_migrate_brings_platform_and_tenants_to_head(database: Database, database_url: str) -> None:
    result = ordersmith("migrate", database_url=database_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "platform schema: at head"
    assert lines[-1].startswith("tenants: ")
    assert lines[-1].endswith(" in all, 0 migrated, 0 failed")
