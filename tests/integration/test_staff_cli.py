"""`ordersmith staff create`: a staff account from the command line, its password never in argv."""

from __future__ import annotations

import asyncio
import uuid

from click.testing import CliRunner
from sqlalchemy import select

from ordersmith.cli import main
from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import StaffAccount
from ordersmith.platform.identity.passwords import verify_password
from tests.support.cli import run_ordersmith
from tests.support.http import PASSWORD


async def _account(database: Database, email: str) -> StaffAccount | None:
    async with database.platform_session() as session:
        return (
            await session.execute(select(StaffAccount).where(StaffAccount.email == email))
        ).scalar_one_or_none()


async def test_create_reads_the_password_from_stdin_and_prints_the_id(
    database: Database, database_url: str
) -> None:
    email = f"ana-{uuid.uuid4().hex[:8]}@vendor.example.com"
    result = run_ordersmith(
        "staff",
        "create",
        "--email",
        email.upper(),
        "--role",
        "superadmin",
        "--name",
        "Ana Lima",
        "--password-stdin",
        database_url=database_url,
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    account = await _account(database, email)
    assert account is not None
    assert result.stdout == f"{account.id}\n"
    assert (account.role, account.full_name, account.is_active) == ("superadmin", "Ana Lima", True)
    assert await verify_password(PASSWORD, account.password_hash)

    again = run_ordersmith(
        "staff",
        "create",
        "--email",
        email,
        "--role",
        "support",
        "--password-stdin",
        database_url=database_url,
        stdin=PASSWORD + "\n",
    )
    assert (again.returncode, again.stdout) == (1, "")
    assert (
        again.stderr
        == f"error: a staff account with the email {email!r} already exists; use another address\n"
    )


def test_a_weak_password_is_refused_with_the_rules_it_breaks(database_url: str) -> None:
    result = run_ordersmith(
        "staff",
        "create",
        "--email",
        "bob@vendor.example.com",
        "--role",
        "auditor",
        "--password-stdin",
        database_url=database_url,
        stdin="bob-short\n",
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "error: password must be at least 10 characters long; password must not contain your email address\n"
    )


def test_an_unknown_role_is_refused() -> None:
    result = CliRunner().invoke(
        main, ["staff", "create", "--email", "x@vendor.example.com", "--role", "janitor", "--password-stdin"]
    )
    assert result.exit_code == 2
    assert (
        "Invalid value for '--role': 'janitor' is not one of 'support', 'auditor', 'superadmin'."
        in result.output
    )


async def test_without_stdin_the_password_is_asked_twice(database: Database, database_url: str) -> None:
    email = f"cid-{uuid.uuid4().hex[:8]}@vendor.example.com"
    # In a thread: the command runs its own event loop, as it does from a terminal.
    result = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["staff", "create", "--email", email, "--role", "support"],
        input=f"{PASSWORD}\nsomething-else-1\n{PASSWORD}\n{PASSWORD}\n",
        env={
            "ORDERSMITH_ENV": "test",
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "WARNING",
            "BROKER_URL": None,
        },
    )
    assert result.exit_code == 0, result.output
    assert "Error: The two entered values do not match." in result.output
    account = await _account(database, email)
    assert account is not None
    assert result.output.endswith(f"{account.id}\n")
    assert PASSWORD not in result.output


def test_the_new_commands_have_help() -> None:
    for command in [["staff"], ["staff", "create"], ["audit"], ["audit", "verify"]]:
        result = CliRunner().invoke(main, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("Usage: "), command
