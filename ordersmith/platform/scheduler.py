"""The scheduler: one leader at a time enqueues periodic jobs and relays the outbox.

Leadership is a PostgreSQL session advisory lock held on a dedicated connection; if
that connection dies, the lock goes with it and another scheduler takes over. Due jobs
are claimed with one conditional upsert, so even two leaders could not enqueue a job
twice in one period. A job whose enqueue fails gets its claim back, so it is due again
on the next tick rather than a period later.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ordersmith.platform.database import Database
from ordersmith.platform.events import ConsumerRegistry
from ordersmith.platform.models import ScheduledJob
from ordersmith.platform.outbox import Publisher, relay_until_empty
from ordersmith.platform.workers import PeriodicJob

logger = logging.getLogger(__name__)

# pg_advisory_lock key of the scheduler ("ordsched" as ASCII).
SCHEDULER_LOCK_KEY = 0x6F72647373636864


class LeaderLock:
    """The scheduler's advisory lock, on a connection of its own."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._connection: AsyncConnection | None = None

    async def try_acquire(self) -> bool:
        """True if this process is (still) the leader."""
        try:
            if self._connection is None:
                self._connection = await self._database.runtime.connect()
                await self._connection.execution_options(isolation_level="AUTOCOMMIT")
                acquired = (
                    await self._connection.execute(
                        text("SELECT pg_try_advisory_lock(:key)"), {"key": SCHEDULER_LOCK_KEY}
                    )
                ).scalar_one()
                if not acquired:
                    await self.release()
                return bool(acquired)
            await self._connection.execute(text("SELECT 1"))
            return True
        except Exception:
            logger.warning("scheduler lost its database connection; leadership released")
            await self.release()
            return False

    async def release(self) -> None:
        """Give up leadership; the connection goes back to the pool without the lock."""
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            await connection.execute(text("SELECT pg_advisory_unlock_all()"))
            await connection.close()
        except Exception:
            # A broken connection is discarded; PostgreSQL released its locks with it.
            logger.debug("releasing the leader lock failed", exc_info=True)
            await connection.invalidate()


@dataclass(frozen=True)
class Claim:
    """A due job marked enqueued at `at`; `previous` is when it was enqueued before (None: never)."""

    name: str
    at: dt.datetime
    previous: dt.datetime | None


async def claim_due_jobs(database: Database, jobs: Sequence[PeriodicJob], now: dt.datetime) -> list[Claim]:
    """Mark the jobs whose period has passed as enqueued at `now`; return their claims."""
    due = []
    async with database.platform_session() as session:
        for job in jobs:
            # Locked until the claim commits, so `previous` is the value the upsert replaces.
            previous = await session.scalar(
                select(ScheduledJob.last_enqueued_at).where(ScheduledJob.name == job.name).with_for_update()
            )
            statement = (
                pg_insert(ScheduledJob)
                .values(name=job.name, last_enqueued_at=now)
                .on_conflict_do_update(
                    index_elements=[ScheduledJob.name],
                    set_={"last_enqueued_at": now},
                    where=ScheduledJob.last_enqueued_at <= now - dt.timedelta(seconds=job.every_seconds),
                )
                .returning(ScheduledJob.name)
            )
            if (await session.execute(statement)).scalar_one_or_none() is not None:
                due.append(Claim(job.name, now, previous))
    return due


async def give_back_claims(database: Database, claims: Sequence[Claim]) -> None:
    """Undo claims whose job was not enqueued: each job is due again, its last real enqueue kept."""
    async with database.platform_session() as session:
        for claim in claims:
            # Only our own claim: a row another leader has claimed since is left alone.
            mine = (ScheduledJob.name == claim.name, ScheduledJob.last_enqueued_at == claim.at)
            if claim.previous is None:
                await session.execute(delete(ScheduledJob).where(*mine))
            else:
                await session.execute(
                    update(ScheduledJob).where(*mine).values(last_enqueued_at=claim.previous)
                )


async def run_scheduler(
    database: Database,
    jobs: Sequence[PeriodicJob],
    enqueue_job: Callable[[str], None],
    registry: ConsumerRegistry,
    publish: Publisher,
    stop: asyncio.Event,
    *,
    tick_seconds: float = 1.0,
) -> None:
    """Lead when possible: enqueue due jobs and relay the outbox every tick, until `stop`."""
    lock = LeaderLock(database)
    was_leader = False
    try:
        while not stop.is_set():
            is_leader = await lock.try_acquire()
            if is_leader != was_leader:
                logger.info("scheduler is %s", "the leader" if is_leader else "standing by")
                was_leader = is_leader
            if is_leader:
                try:
                    await _enqueue_due_jobs(database, jobs, enqueue_job)
                    await relay_until_empty(database, registry, publish)
                except Exception:
                    logger.exception("scheduler tick failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick_seconds)
    finally:
        await lock.release()


async def _enqueue_due_jobs(
    database: Database, jobs: Sequence[PeriodicJob], enqueue_job: Callable[[str], None]
) -> None:
    refused = []
    for claim in await claim_due_jobs(database, jobs, dt.datetime.now(dt.UTC)):
        # One refusal (the broker briefly unreachable, say) must not cost the other jobs their turn.
        try:
            enqueue_job(claim.name)
        except Exception:
            logger.exception(
                "enqueueing periodic job %s failed; it is due again on the next tick", claim.name
            )
            refused.append(claim)
    if refused:
        await give_back_claims(database, refused)
