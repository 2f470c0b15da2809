"""The outbox relay: hands committed events to their consumers through the broker.

Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several relays can run at once
without publishing a row twice; a crash between publishing and marking only causes a
re-delivery, which consumers ignore (they are idempotent on the event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import delete, select, update

from ordersmith.platform.database import Database
from ordersmith.platform.events import ConsumerRegistry, Event, EventConsumer
from ordersmith.platform.models import OutboxEvent

logger = logging.getLogger(__name__)

# Sends one event to one consumer (a Dramatiq `send`); raises if the broker refuses.
Publisher = Callable[[EventConsumer, Event], None]


def _event(row: OutboxEvent) -> Event:
    return Event(
        id=row.id, tenant_id=row.tenant_id, topic=row.topic, payload=row.payload, created_at=row.created_at
    )


async def relay_batch(
    database: Database, registry: ConsumerRegistry, publish: Publisher, *, batch_size: int = 200
) -> int:
    """Publish up to `batch_size` unpublished events, oldest first; return how many."""
    async with database.platform_session() as session:
        rows = (
            await session.execute(
                select(OutboxEvent)
                .where(OutboxEvent.published_at.is_(None))
                .order_by(OutboxEvent.created_at, OutboxEvent.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
        published = []
        for row in rows:
            try:
                for consumer in registry.for_topic(row.topic):
                    publish(consumer, _event(row))
            except Exception as error:
                # Keep the order: stop here and retry this row on the next pass.
                logger.warning("outbox: publishing %s (%s) failed: %s", row.id, row.topic, error)
                row.publish_attempts += 1
                row.last_error = str(error)[:2000]
                break
            published.append(row.id)
        if published:
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(published))
                .values(published_at=dt.datetime.now(dt.UTC))
            )
    return len(published)


async def relay_until_empty(database: Database, registry: ConsumerRegistry, publish: Publisher) -> int:
    """Publish every event committed so far; return how many."""
    total = 0
    while count := await relay_batch(database, registry, publish):
        total += count
    return total


async def run_relay(
    database: Database,
    registry: ConsumerRegistry,
    publish: Publisher,
    stop: asyncio.Event,
    *,
    interval_seconds: float = 0.5,
) -> None:
    """Relay continuously until `stop` is set, polling every `interval_seconds` when idle."""
    while not stop.is_set():
        try:
            await relay_until_empty(database, registry, publish)
        except Exception:
            logger.exception("outbox relay pass failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)


async def purge_published(database: Database, *, older_than: dt.timedelta) -> int:
    """Delete events published more than `older_than` ago; return how many."""
    cutoff = dt.datetime.now(dt.UTC) - older_than
    async with database.platform_session() as session:
        result = await session.execute(
            delete(OutboxEvent).where(
                OutboxEvent.published_at.is_not(None), OutboxEvent.published_at < cutoff
            )
        )
    return int(result.rowcount)  # type: ignore[attr-defined]
