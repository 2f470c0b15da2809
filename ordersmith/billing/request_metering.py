"""API requests metered per store and hour: counted in memory, written in batches, each batch once.

A row per request would put a write on every request's path; instead the guard that
authenticates a request adds 1 to a dictionary entry of this process (store, UTC hour),
and every `FLUSH_SECONDS` (and once more at shutdown) the counts are sealed into a batch:
a sequence number of this process instance, and one usage event per store and hour whose
id is derived from (instance, sequence, store, hour). The batch's events and their
`usage_hours` increments are written in one transaction.

Nothing is counted twice: a sealed batch never changes, so retrying it after a failed or
doubtful commit repeats its ids and adds nothing; requests counted meanwhile wait for the
next batch. At most one batch is pending at a time, so an outage holds one batch and the
running counts (one integer per store and hour), not a queue that grows with time.
What can be lost is what a process holds when it dies without shutting down (SIGKILL,
out of memory, power): at most `FLUSH_SECONDS` of its requests, plus the pending batch if
the database was unreachable. Requests are shown, not billed, so the bound is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.billing.metering import Recorded, UsageRecord, record_usages
from ordersmith.platform.database import Database
from ordersmith.platform.plans import Meter

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 10.0
SOURCE = "api.requests"
# Fixed forever: usage ids of past batches are derived from it.
_USAGE_NAMESPACE = uuid.UUID("6f1d7f3e-3b9a-4c55-9a57-0d3c1e0b8a41")
_HOUR_SECONDS = 3600


def hour_number(moment: float) -> int:
    """The UTC hour a Unix time falls in, as hours since the epoch (cheap enough for every request)."""
    return int(moment) // _HOUR_SECONDS


@dataclass(frozen=True)
class RequestBatch:
    """Requests one process counted between two flushes, per (store, hour number); sealed, never changed."""

    instance_id: uuid.UUID
    sequence: int
    counts: Mapping[tuple[uuid.UUID, int], int]

    @property
    def subject_id(self) -> str:
        """The batch as named on its usage events: process instance and sequence."""
        return f"{self.instance_id.hex}:{self.sequence}"

    @property
    def total(self) -> int:
        """Requests in the batch."""
        return sum(self.counts.values())

    def records(self) -> list[UsageRecord]:
        """The batch's usage events: one per store and hour, with ids that only this batch has."""
        return [
            UsageRecord(
                id=uuid.uuid5(_USAGE_NAMESPACE, f"{self.subject_id}:{tenant_id}:{hour}"),
                tenant_id=tenant_id,
                meter=Meter.API_REQUESTS,
                occurred_at=dt.datetime.fromtimestamp(hour * _HOUR_SECONDS, dt.UTC),
                quantity=quantity,
                source=SOURCE,
                subject_id=self.subject_id,
            )
            for (tenant_id, hour), quantity in sorted(self.counts.items())
        ]


async def write_batch(session: AsyncSession, batch: RequestBatch) -> Recorded:
    """Record a batch's usage in the caller's transaction; a batch written before adds nothing."""
    return await record_usages(session, batch.records())


class RequestMeter:
    """One process's count of authenticated requests per store and hour, flushed as usage."""

    def __init__(self, instance_id: uuid.UUID | None = None) -> None:
        # A new id per process start: sequences restart at 1 without reusing an earlier run's ids.
        self.instance_id = instance_id or uuid.uuid4()
        self._counts: dict[tuple[uuid.UUID, int], int] = {}
        self._pending: RequestBatch | None = None
        self._sequence = 0
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def count(self, tenant_id: uuid.UUID) -> None:
        """Count one request of the store in the current UTC hour: a dictionary update, no I/O."""
        key = (tenant_id, hour_number(time.time()))
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1

    @property
    def pending(self) -> RequestBatch | None:
        """The sealed batch whose write failed or is in doubt, retried as it is before anything else."""
        return self._pending

    @property
    def unflushed(self) -> int:
        """Requests counted and not yet known to be written."""
        return sum(self._counts.values()) + (self._pending.total if self._pending else 0)

    async def flush(self, database: Database) -> int:
        """Write the pending batch, then seal and write what was counted until now; requests added."""
        async with self._lock:
            added = 0
            if self._pending is not None:
                written = await self._write_pending(database)
                if written is None:
                    return 0
                added += written
            # Sealed once per flush: under steady traffic, a flush that chased new counts would never end.
            self._seal()
            if self._pending is not None:
                added += await self._write_pending(database) or 0
            return added

    async def _write_pending(self, database: Database) -> int | None:
        batch = self._pending
        assert batch is not None
        try:
            async with database.platform_session() as session:
                recorded = await write_batch(session, batch)
        except Exception:
            # Kept as it is: if the commit did happen, its retry repeats the same ids.
            logger.warning(
                "API request usage batch %s (%d requests) not written; retried at the next flush",
                batch.subject_id,
                batch.total,
                exc_info=True,
            )
            return None
        self._pending = None
        return recorded.quantity

    def _seal(self) -> None:
        if self._counts:
            self._sequence += 1
            self._pending = RequestBatch(self.instance_id, self._sequence, self._counts)
            self._counts = {}

    def start(self, database: Database, *, every_seconds: float = FLUSH_SECONDS) -> None:
        """Flush every `every_seconds` in the background until `stop`."""
        self._stop.clear()
        self._task = asyncio.create_task(self._flush_periodically(database, every_seconds))

    async def stop(self) -> None:
        """Stop flushing after a last flush (shutdown); what could not be written is logged as lost."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self.unflushed:
            logger.error("%d API requests counted by this process were not written to usage", self.unflushed)

    async def _flush_periodically(self, database: Database, every_seconds: float) -> None:
        # The flush after `stop` is set is the last one: shutdown loses nothing it can write.
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=every_seconds)
            await self.flush(database)
            if self._stop.is_set():
                return
