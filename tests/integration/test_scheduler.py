"""The scheduler: one leader at a time, each periodic job enqueued once per period."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable

from ordersmith.platform.database import Database
from ordersmith.platform.events import ConsumerRegistry
from ordersmith.platform.scheduler import LeaderLock, claim_due_jobs, run_scheduler
from ordersmith.platform.workers import PeriodicJob


async def _nothing(database: Database) -> None:
    return None


def _job(every_seconds: int) -> PeriodicJob:
    return PeriodicJob(name=f"test.{uuid.uuid4().hex[:8]}", every_seconds=every_seconds, run=_nothing)


async def test_only_one_scheduler_holds_the_leader_lock(database: Database) -> None:
    first, second = LeaderLock(database), LeaderLock(database)
    try:
        assert await first.try_acquire() is True
        assert await second.try_acquire() is False
        assert await first.try_acquire() is True  # still the leader on the next tick
        await first.release()
        assert await second.try_acquire() is True
    finally:
        await first.release()
        await second.release()


async def test_a_job_is_claimed_once_per_period(database: Database) -> None:
    job = _job(every_seconds=60)
    start = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)

    assert await claim_due_jobs(database, [job], start) == [job.name]
    assert await claim_due_jobs(database, [job], start + dt.timedelta(seconds=59)) == []
    assert await claim_due_jobs(database, [job], start + dt.timedelta(seconds=60)) == [job.name]
    assert await claim_due_jobs(database, [job], start + dt.timedelta(seconds=61)) == []


async def test_two_schedulers_running_together_enqueue_a_job_once(database: Database) -> None:
    job = _job(every_seconds=3600)
    enqueued: list[tuple[int, str]] = []
    stop = asyncio.Event()

    def enqueue_from(scheduler: int) -> Callable[[str], None]:
        return lambda name: enqueued.append((scheduler, name))

    runs = [
        asyncio.create_task(
            run_scheduler(
                database, [job], enqueue_from(n), ConsumerRegistry(), lambda *_: None, stop, tick_seconds=0.05
            )
        )
        for n in (1, 2)
    ]
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*runs)

    assert [name for _, name in enqueued] == [job.name]
