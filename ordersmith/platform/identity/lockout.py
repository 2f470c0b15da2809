"""Guarded actions slow down, then lock, per account and per client address.

Guarded actions are signing in (tenant users and staff, each a realm of its own),
asking for a password reset and signing up. Every attempt is *reserved* before any
work is done, before a password is even checked: one `INSERT … ON CONFLICT DO UPDATE …
RETURNING` per counter counts it and locks the counter's row until the transaction
ends, and the policy then sets when the next attempt may come. Parallel attempts queue
on that row and each sees the count the one before it left, so twenty simultaneous
guesses get exactly the tries twenty sequential ones would. An attempt that must wait
is refused without being counted: hammering a lock does not prolong it. Attempts
further apart than the policy's window start the count afresh.

Sign-in: from the 4th attempt within 15 minutes each must wait 1, 2, 4, … seconds
after the one before; the 10th locks the account for 15 minutes. Per client address the
same from the 21st, locked at the 50th. A successful sign-in clears its account's count
and gives its address back the attempt it reserved, so that the address counts only
failures and an office behind one address is not slowed down by its own sign-ins.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import DateTime, case, delete, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.errors import TooManyAttemptsError
from ordersmith.platform.identity.models import AttemptCounter

# The store members' sign-in realm: its counters are shared by sign-in and sign-up with an account.
TENANT_REALM = "tenant"
WINDOW = dt.timedelta(minutes=15)
LOCK_DURATION = dt.timedelta(minutes=15)
# What a refused person reads, given the wait in words ("3 seconds").
Refusal = Callable[[str], str]


@dataclass(frozen=True)
class Policy:
    """How many attempts in a row go through at once, when they lock, and for how long."""

    free_attempts: int
    lock_at: int
    window: dt.timedelta = WINDOW
    lock_duration: dt.timedelta = LOCK_DURATION

    def wait_after(self, attempts: int) -> dt.timedelta:
        """How long the next attempt must wait after the `attempts`-th in a row."""
        if attempts >= self.lock_at:
            return self.lock_duration
        if attempts <= self.free_attempts:
            return dt.timedelta(0)
        return min(dt.timedelta(seconds=2 ** (attempts - self.free_attempts - 1)), self.lock_duration)


ACCOUNT_POLICY = Policy(free_attempts=3, lock_at=10)
ADDRESS_POLICY = Policy(free_attempts=20, lock_at=50)


@dataclass(frozen=True)
class Counter:
    """One key (an account or a client address, within a realm) and the policy it is held to."""

    key: str
    policy: Policy


def account_key(realm: str, email: str) -> str:
    return f"account:{realm}:{email.lower()}"


def address_key(realm: str, address: str) -> str:
    return f"address:{realm}:{address}"


def describe_wait(seconds: int) -> str:
    """A wait as people read it: "1 second", "45 seconds", "15 minutes"."""
    if seconds == 1:
        return "1 second"
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


async def _reserve_one(session: AsyncSession, counter: Counter, now: dt.datetime) -> int:
    """Count one attempt against `counter`; 0, or the seconds to wait when it is refused."""
    at = literal(now, DateTime(timezone=True))
    counted = await session.execute(
        pg_insert(AttemptCounter)
        .values(key=counter.key, attempts=1, last_attempt_at=now, blocked_until=now)
        .on_conflict_do_update(
            index_elements=[AttemptCounter.key],
            set_={
                "attempts": case(
                    (AttemptCounter.last_attempt_at <= at - counter.policy.window, 1),
                    else_=AttemptCounter.attempts + 1,
                ),
                "last_attempt_at": at,
            },
            # A refused attempt leaves the row as it was (PostgreSQL still locks it).
            where=AttemptCounter.blocked_until <= at,
        )
        .returning(AttemptCounter.attempts)
    )
    attempts = counted.scalar_one_or_none()
    if attempts is None:
        blocked_until = (
            await session.execute(
                select(AttemptCounter.blocked_until).where(AttemptCounter.key == counter.key)
            )
        ).scalar_one()
        return max(1, math.ceil((blocked_until - now).total_seconds()))
    wait = counter.policy.wait_after(attempts)
    if wait:
        # The upsert locked the row until the caller commits: nobody sees it in between.
        await session.execute(
            update(AttemptCounter).where(AttemptCounter.key == counter.key).values(blocked_until=now + wait)
        )
    return 0


async def reserve(
    session: AsyncSession, counters: list[Counter], now: dt.datetime, *, refusal: Refusal
) -> None:
    """Count one attempt against every counter before doing the work it guards.

    Raises `TooManyAttemptsError` (retry after the longest wait) if any counter must
    wait; the caller's transaction then rolls back, so a refused attempt counts nowhere.
    """
    # Always in the same order, so that two attempts sharing counters cannot deadlock.
    waits = [await _reserve_one(session, counter, now) for counter in sorted(counters, key=lambda c: c.key)]
    wait = max(waits, default=0)
    if wait > 0:
        raise TooManyAttemptsError(refusal(describe_wait(wait)), retry_after_seconds=wait)


async def give_back(session: AsyncSession, counter: Counter) -> None:
    """Return the attempt a successful action reserved, so that the counter counts failures only."""
    record = await session.get(AttemptCounter, counter.key, with_for_update=True)
    if record is None:
        return
    attempts = max(record.attempts - 1, 0)
    await session.execute(
        update(AttemptCounter)
        .where(AttemptCounter.key == counter.key)
        .values(attempts=attempts, blocked_until=record.last_attempt_at + counter.policy.wait_after(attempts))
    )


async def clear(session: AsyncSession, key: str) -> None:
    """Forget a key's attempts: its account signed in, or reset its password."""
    await session.execute(delete(AttemptCounter).where(AttemptCounter.key == key))


@dataclass(frozen=True)
class SignInAttempt:
    """A sign-in attempt: the counters of its account and of its client address, in one realm."""

    account: Counter
    address: Counter | None

    @classmethod
    def of(cls, realm: str, email: str, client_address: str | None) -> SignInAttempt:
        address = Counter(address_key(realm, client_address), ADDRESS_POLICY) if client_address else None
        return cls(Counter(account_key(realm, email), ACCOUNT_POLICY), address)

    @property
    def counters(self) -> list[Counter]:
        return [self.account] if self.address is None else [self.account, self.address]


async def reserve_sign_in(
    session: AsyncSession, attempt: SignInAttempt, now: dt.datetime, *, advice: str = ""
) -> None:
    """Count a sign-in attempt before its password is checked; 429 if it must wait.

    Commit the caller's transaction before checking the password, so that parallel
    attempts see this one. `advice` says what else the person can do.
    """
    await reserve(
        session,
        attempt.counters,
        now,
        refusal=lambda wait: f"too many failed sign-ins; try again in {wait}{advice}",
    )


async def sign_in_succeeded(session: AsyncSession, attempt: SignInAttempt) -> None:
    """The password was right: clear the account's count and give the address its attempt back."""
    await clear(session, attempt.account.key)
    if attempt.address is not None:
        await give_back(session, attempt.address)
