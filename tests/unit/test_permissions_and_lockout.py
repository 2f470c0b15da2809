"""Roles grant fixed permission sets; lockout waits grow, then lock."""

from __future__ import annotations

import datetime as dt

import pytest

from ordersmith.platform.identity.lockout import ACCOUNT_POLICY, LOCK_DURATION, _wait_seconds
from ordersmith.platform.identity.models import LoginFailure
from ordersmith.platform.identity.passwords import password_problems
from ordersmith.platform.identity.permissions import Permission, permissions_of

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def test_roles_nest_from_viewer_to_owner() -> None:
    viewer, agent, manager, admin, owner = (
        permissions_of(role) for role in ("viewer", "agent", "manager", "admin", "owner")
    )
    assert viewer < agent < manager < admin < owner
    assert owner == frozenset(Permission)
    assert owner - admin == {Permission.BILLING_MANAGE}
    assert agent - viewer == {Permission.ORDERS_WRITE, Permission.CUSTOMERS_WRITE}
    assert Permission.ORDERS_WRITE not in viewer
    assert Permission.USERS_MANAGE not in manager
    assert permissions_of("intruder") == frozenset()


def _failures(count: int, last: dt.datetime, locked_until: dt.datetime | None = None) -> LoginFailure:
    return LoginFailure(
        key="account:tenant:a@example.com", failures=count, last_failed_at=last, locked_until=locked_until
    )


@pytest.mark.parametrize(
    ("failures", "seconds_since_last", "wait"),
    [
        (1, 0, 0),
        (3, 0, 0),
        (4, 0, 1),
        (5, 0, 2),
        (6, 1, 3),
        (9, 0, 32),
        (9, 40, 0),
        (9, 16 * 60, 0),  # outside the window: forgotten
    ],
)
def test_waits_double_after_the_free_failures(failures: int, seconds_since_last: int, wait: int) -> None:
    record = _failures(failures, NOW - dt.timedelta(seconds=seconds_since_last))
    assert _wait_seconds(record, ACCOUNT_POLICY, NOW) == wait


def test_a_lock_holds_until_it_expires() -> None:
    record = _failures(10, NOW, locked_until=NOW + LOCK_DURATION)
    assert _wait_seconds(record, ACCOUNT_POLICY, NOW + dt.timedelta(minutes=5)) == 600
    assert _wait_seconds(record, ACCOUNT_POLICY, NOW + LOCK_DURATION + dt.timedelta(seconds=1)) == 0


@pytest.mark.parametrize(
    ("password", "email", "problems"),
    [
        ("Tr0ub4dor&3x", "ana@example.com", []),
        ("short", "ana@example.com", ["must be at least 10 characters long"]),
        (
            "QWERTYUIOP",
            "ana@example.com",
            ["is one of the most common passwords; choose something less guessable"],
        ),
        ("anabanana-2026", "ana@example.com", ["must not contain your email address"]),
        ("ab-long-password", "ab@example.com", []),  # a two-letter local part is not checked
    ],
)
def test_password_rules(password: str, email: str, problems: list[str]) -> None:
    assert password_problems(password, email) == problems
