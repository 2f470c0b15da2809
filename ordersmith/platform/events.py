"""Domain events: how they are written (the outbox) and who consumes them (handlers).

A state change and the event announcing it are written in the same transaction. The
relay (`outbox.py`) later hands each event to every consumer of its topic, through the
broker. A consumer runs in its own tenant transaction and records the event id in that
tenant's inbox in the same transaction, so its effect happens once however often the
event is delivered.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.ids import uuid7
from ordersmith.platform.models import OutboxEvent


@dataclass(frozen=True)
class Event:
    """An event as consumers receive it."""

    id: uuid.UUID
    tenant_id: uuid.UUID | None
    topic: str
    payload: dict[str, Any]
    created_at: dt.datetime

    def to_message(self) -> dict[str, Any]:
        """JSON-safe form carried by the broker."""
        return {
            "id": str(self.id),
            "tenant_id": str(self.tenant_id) if self.tenant_id else None,
            "topic": self.topic,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Event:
        return cls(
            id=uuid.UUID(message["id"]),
            tenant_id=uuid.UUID(message["tenant_id"]) if message["tenant_id"] else None,
            topic=message["topic"],
            payload=message["payload"],
            created_at=dt.datetime.fromisoformat(message["created_at"]),
        )


async def record_event(
    session: AsyncSession | AsyncConnection,
    tenant: TenantContext | None,
    topic: str,
    payload: dict[str, Any],
) -> uuid.UUID:
    """Append an event to the outbox inside the caller's transaction; return its id."""
    event_id = uuid7()
    # Core insert without RETURNING: tenant roles may append to the outbox but not read it.
    await session.execute(
        insert(OutboxEvent).values(
            id=event_id,
            tenant_id=tenant.tenant_id if tenant else None,
            topic=topic,
            payload=payload,
        )
    )
    return event_id


async def record_events(
    session: AsyncSession | AsyncConnection,
    tenant: TenantContext | None,
    events: list[tuple[str, dict[str, Any]]],
) -> list[uuid.UUID]:
    """Append several (topic, payload) events in one statement; their ids, in order."""
    rows: list[dict[str, Any]] = [
        {"id": uuid7(), "tenant_id": tenant.tenant_id if tenant else None, "topic": topic, "payload": payload}
        for topic, payload in events
    ]
    if rows:
        await session.execute(insert(OutboxEvent), rows)
    return [row["id"] for row in rows]


# A tenant consumer gets the tenant, a session in that tenant's transaction, and the event.
TenantHandler = Callable[[TenantContext, AsyncSession, Event], Awaitable[None]]
# A platform consumer gets a session on the platform schema (runtime role) and the event.
PlatformHandler = Callable[[AsyncSession, Event], Awaitable[None]]


@dataclass(frozen=True)
class EventConsumer:
    """One consumer: a stable name (its idempotency scope and queue) and its topics.

    Exactly one of `handle` (tenant-scoped: runs in the event's tenant) and
    `handle_platform` (runs on the platform schema) is set.
    """

    name: str
    topics: frozenset[str]
    handle: TenantHandler | None = None
    handle_platform: PlatformHandler | None = None
    max_retries: int = 10


class ConsumerRegistry:
    """Which consumers listen to which topics. Rooms register theirs at import time."""

    def __init__(self) -> None:
        self._consumers: dict[str, EventConsumer] = {}

    def consumer(
        self, name: str, *topics: str, max_retries: int = 10
    ) -> Callable[[TenantHandler], TenantHandler]:
        """Register the decorated coroutine as consumer `name` of `topics`."""

        def register(handle: TenantHandler) -> TenantHandler:
            self._add(EventConsumer(name, frozenset(topics), handle=handle, max_retries=max_retries))
            return handle

        return register

    def platform_consumer(
        self, name: str, *topics: str, max_retries: int = 10
    ) -> Callable[[PlatformHandler], PlatformHandler]:
        """Register the decorated coroutine as platform-level consumer `name` of `topics`."""

        def register(handle: PlatformHandler) -> PlatformHandler:
            self._add(EventConsumer(name, frozenset(topics), handle_platform=handle, max_retries=max_retries))
            return handle

        return register

    def _add(self, consumer: EventConsumer) -> None:
        if consumer.name in self._consumers:
            raise ValueError(f"consumer {consumer.name!r} is registered twice")
        self._consumers[consumer.name] = consumer

    def for_topic(self, topic: str) -> list[EventConsumer]:
        return [consumer for consumer in self._consumers.values() if topic in consumer.topics]

    def all(self) -> list[EventConsumer]:
        return list(self._consumers.values())


# The process-wide registry; importing a room's `handlers` module fills it.
consumers = ConsumerRegistry()
