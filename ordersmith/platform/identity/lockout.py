"""Failed sign-ins slow down, then lock, per account and per client address.

Account: from the 4th failure within 15 minutes each attempt must wait 1, 2, 4, … seconds
after the last failure; the 10th locks the account for 15 minutes. Address: the same
from the 21st failure, locked at the 50th. A successful sign-in clears the account's
count. Failures older than the window are forgotten.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.errors import TooManyAttemptsError
from ordersmith.platform.identity.models import LoginFailure

WINDOW = dt.timedelta(minutes=15)
LOCK_DURATION = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Policy:
    free_failures: int
    lock_at: int


ACCOUNT_POLICY = Policy(free_failures=3, lock_at=10)
ADDRESS_POLICY = Policy(free_failures=20, lock_at=50)


def account_key(realm: str, email: str) -> str:
    return f"account:{realm}:{email.lower()}"


def address_key(realm: str, address: str | None) -> str | None:
    return f"address:{realm}:{address}" if address else None


def _wait_seconds(record: LoginFailure, policy: Policy, now: dt.datetime) -> int:
    if record.locked_until is not None and record.locked_until > now:
        return math.ceil((record.locked_until - now).total_seconds())
    if now - record.last_failed_at > WINDOW or record.failures <= policy.free_failures:
        return 0
    delay = dt.timedelta(seconds=2 ** (record.failures - policy.free_failures - 1))
    remaining = record.last_failed_at + delay - now
    return max(0, math.ceil(remaining.total_seconds()))


async def check_allowed(session: AsyncSession, keys: list[tuple[str, Policy]], now: dt.datetime) -> None:
    """Raise `TooManyAttemptsError` (with when to retry) if any key must wait."""
    records = {
        record.key: record
        for record in (
            await session.execute(select(LoginFailure).where(LoginFailure.key.in_([key for key, _ in keys])))
        ).scalars()
    }
    wait = max(
        (_wait_seconds(records[key], policy, now) for key, policy in keys if key in records), default=0
    )
    if wait > 0:
        raise TooManyAttemptsError(
            f"too many failed sign-ins; try again in {wait} seconds, or reset your password",
            retry_after_seconds=wait,
        )


async def record_failure(session: AsyncSession, keys: list[tuple[str, Policy]], now: dt.datetime) -> None:
    """Count one failure against each key, locking those that reach their limit."""
    for key, policy in keys:
        existing = await session.get(LoginFailure, key, with_for_update=True)
        is_fresh = existing is None or now - existing.last_failed_at > WINDOW
        failures = 1 if is_fresh or existing is None else existing.failures + 1
        locked_until = now + LOCK_DURATION if failures >= policy.lock_at else None
        await session.execute(
            pg_insert(LoginFailure)
            .values(key=key, failures=failures, last_failed_at=now, locked_until=locked_until)
            .on_conflict_do_update(
                index_elements=[LoginFailure.key],
                set_={"failures": failures, "last_failed_at": now, "locked_until": locked_until},
            )
        )


async def clear(session: AsyncSession, key: str) -> None:
    """Forget an account's failures after it signs in."""
    await session.execute(delete(LoginFailure).where(LoginFailure.key == key))
