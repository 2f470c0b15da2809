"""Roles grant fixed permission sets; lockout waits grow, then lock."""

from __future__ import annotations

import datetime as dt

import pytest

from ordersmith.platform.identity.accounts import SIGNUP_WINDOW, signup_policy
from ordersmith.platform.identity.lockout import ACCOUNT_POLICY, ADDRESS_POLICY, LOCK_DURATION, describe_wait
from ordersmith.platform.identity.passwords import password_problems
from ordersmith.platform.identity.permissions import Permission, permissions_of


def test_roles_nest_from_viewer_to_owner() -> None:
    viewer, agent, manager, admin, owner = (
        permissions_of(role) for role in ("viewer", "agent", "manager", "admin", "owner")
    )
    assert viewer < agent < manager < admin < owner
    assert owner == frozenset(Permission)
    assert owner - admin == {Permission.BILLING_MANAGE, Permission.SSO_MANAGE}
    assert agent - viewer == {Permission.ORDERS_WRITE, Permission.CUSTOMERS_WRITE}
    assert Permission.ORDERS_WRITE not in viewer
    assert Permission.USERS_MANAGE not in manager
    assert permissions_of("intruder") == frozenset()


@pytest.mark.parametrize(
    ("attempts", "wait"),
    [(1, 0), (3, 0), (4, 1), (5, 2), (6, 4), (9, 32), (10, 15 * 60), (11, 15 * 60)],
)
def test_waits_double_after_the_free_attempts_then_lock(attempts: int, wait: int) -> None:
    assert ACCOUNT_POLICY.wait_after(attempts) == dt.timedelta(seconds=wait)


def test_a_wait_never_outlasts_the_lock() -> None:
    # From the 31st attempt the doubling would pass 15 minutes; the lock at 50 is the cap.
    assert ADDRESS_POLICY.wait_after(30) == dt.timedelta(seconds=512)
    assert ADDRESS_POLICY.wait_after(31) == LOCK_DURATION
    assert ADDRESS_POLICY.wait_after(49) == LOCK_DURATION


def test_a_sign_up_limit_lets_the_allowance_through_then_blocks_the_hour() -> None:
    policy = signup_policy(3)
    assert [policy.wait_after(count) for count in (1, 2, 3)] == [
        dt.timedelta(0),
        dt.timedelta(0),
        SIGNUP_WINDOW,
    ]
    assert policy.window == SIGNUP_WINDOW


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(1, "1 second"), (2, "2 seconds"), (119, "119 seconds"), (120, "2 minutes"), (899, "15 minutes")],
)
def test_waits_read_as_seconds_then_minutes(seconds: int, words: str) -> None:
    assert describe_wait(seconds) == words


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
