"""The scheduler: one leader at a time, each periodic job enqueued once per period, a refused one retried."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable

from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.events import ConsumerRegistry
from ordersmith.platform.models import ScheduledJob
from ordersmith.platform.scheduler import LeaderLock, claim_due_jobs, give_back_claims, run_scheduler
from ordersmith.platform.workers import PeriodicJob


async def _nothing(database: Database) -> None:
    return None


def _job(every_seconds: int) -> PeriodicJob:
    return PeriodicJob(name=f"test.{uuid.uuid4().hex[:8]}", every_seconds=every_seconds, run=_nothing)


async def _claimed(database: Database, job: PeriodicJob, now: dt.datetime) -> list[str]:
    return [claim.name for claim in await claim_due_jobs(database, [job], now)]


async def _last_enqueued_at(database: Database, job: PeriodicJob) -> dt.datetime | None:
    async with database.platform_session() as session:
        return await session.scalar(
            select(ScheduledJob.last_enqueued_at).where(ScheduledJob.name == job.name)
        )


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

    assert await _claimed(database, job, start) == [job.name]
    assert await _claimed(database, job, start + dt.timedelta(seconds=59)) == []
    assert await _claimed(database, job, start + dt.timedelta(seconds=60)) == [job.name]
    assert await _claimed(database, job, start + dt.timedelta(seconds=61)) == []


async def test_a_claim_given_back_is_due_again_and_keeps_the_last_real_enqueue(database: Database) -> None:
    job = _job(every_seconds=60)
    start = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
    # Never enqueued before: giving the claim back leaves no trace.
    first = await claim_due_jobs(database, [job], start)
    assert [(claim.name, claim.at, claim.previous) for claim in first] == [(job.name, start, None)]
    await give_back_claims(database, first)
    assert await _last_enqueued_at(database, job) is None
    assert await _claimed(database, job, start + dt.timedelta(seconds=1)) == [job.name]
    # Enqueued at +1s, then refused at +61s: the row goes back to +1s and the job is due at +62s.
    later = start + dt.timedelta(seconds=61)
    refused = await claim_due_jobs(database, [job], later)
    assert [claim.previous for claim in refused] == [start + dt.timedelta(seconds=1)]
    await give_back_claims(database, refused)
    assert await _last_enqueued_at(database, job) == start + dt.timedelta(seconds=1)
    assert await _claimed(database, job, later + dt.timedelta(seconds=1)) == [job.name]
    assert await _last_enqueued_at(database, job) == later + dt.timedelta(seconds=1)


async def test_a_refused_enqueue_is_retried_next_tick_and_the_other_jobs_still_go(database: Database) -> None:
    hourly, daily = _job(every_seconds=3600), _job(every_seconds=86400)
    enqueued: list[str] = []
    refusals = [hourly.name]
    stop = asyncio.Event()

    def enqueue(name: str) -> None:
        # The broker refuses the first job once (a publisher confirm that failed, say).
        if name in refusals:
            refusals.remove(name)
            raise ConnectionError("broker unreachable")
        enqueued.append(name)

    run = asyncio.create_task(
        run_scheduler(
            database, [hourly, daily], enqueue, ConsumerRegistry(), lambda *_: None, stop, tick_seconds=0.05
        )
    )
    await asyncio.sleep(1.0)
    stop.set()
    await run

    # The daily job went on the first tick, the hourly one on the next; each once.
    assert enqueued == [daily.name, hourly.name]


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
