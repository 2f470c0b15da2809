"""Background work on Dramatiq: the broker, consumer actors and job actors.

`BROKER_URL=amqp://…` uses RabbitMQ, `redis://…` Redis; unset, Dramatiq's in-process
broker with worker threads inside `ordersmith run` (the outbox keeps events durable).
Actors are async and share one event loop per worker process, with a database pool of
their own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ordersmith.platform.database import Database
from ordersmith.platform.errors import TenantNotFoundError, UnreachableError
from ordersmith.platform.events import ConsumerRegistry, Event, EventConsumer
from ordersmith.platform.models import ProcessedEvent
from ordersmith.platform.settings import BrokerSettings
from ordersmith.platform.tenancy import get_tenant_by_id, require_active
from ordersmith.platform.tenant_tables import TenantProcessedEvent

logger = logging.getLogger(__name__)

# Retries back off exponentially from 1 s up to 5 minutes.
MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 300_000


def make_broker(settings: BrokerSettings) -> dramatiq.Broker:
    """The broker for `BROKER_URL`, with asyncio support, installed as Dramatiq's global one."""
    broker: dramatiq.Broker
    if settings.url is None:
        broker = StubBroker()
    elif settings.url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # Publisher confirms: `send` returns only once RabbitMQ has the message.
        broker = RabbitmqBroker(url=settings.url, confirm_delivery=True)
    else:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=settings.url)  # type: ignore[no-untyped-call]
    broker.add_middleware(AsyncIO())
    dramatiq.set_broker(broker)
    return broker


def queue_name(namespace: str, name: str) -> str:
    """A queue name Dramatiq accepts, prefixed with the deployment's namespace."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", f"{namespace}.{name}")


async def deliver_event(database: Database, consumer: EventConsumer, event: Event) -> bool:
    """Run one consumer on one event, at most once per event id; True if it ran now."""
    if consumer.handle_platform is not None:
        async with database.platform_session() as session:
            claimed = await session.execute(
                pg_insert(ProcessedEvent)
                .values(consumer=consumer.name, event_id=event.id)
                .on_conflict_do_nothing()
            )
            if claimed.rowcount == 0:  # type: ignore[attr-defined]
                logger.info("consumer %s already handled event %s", consumer.name, event.id)
                return False
            await consumer.handle_platform(session, event)
        return True
    if consumer.handle is None or event.tenant_id is None:
        logger.warning("consumer %s got tenantless event %s; ignored", consumer.name, event.id)
        return False
    try:
        tenant = await get_tenant_by_id(database, event.tenant_id)
    except TenantNotFoundError:
        logger.info("event %s belongs to a dropped tenant; ignored", event.id)
        return False
    # Raising makes the broker retry later: an archived tenant may be restored.
    require_active(tenant)
    async with database.tenant_session(tenant.context) as session:
        claimed = await session.execute(
            pg_insert(TenantProcessedEvent)
            .values(consumer=consumer.name, event_id=event.id)
            .on_conflict_do_nothing()
        )
        if claimed.rowcount == 0:  # type: ignore[attr-defined]
            logger.info("consumer %s already handled event %s", consumer.name, event.id)
            return False
        await consumer.handle(tenant.context, session, event)
    return True


class DatabaseHandle:
    """The worker's database, created on first use inside the actors' event loop."""

    def __init__(self, factory: Callable[[], Database]) -> None:
        self._factory = factory
        self._database: Database | None = None

    def get(self) -> Database:
        if self._database is None:
            self._database = self._factory()
        return self._database

    async def dispose(self) -> None:
        if self._database is not None:
            await self._database.dispose()
            self._database = None


@dataclass(frozen=True)
class PeriodicJob:
    """Work the scheduler enqueues every `every_seconds`; a worker runs it."""

    name: str
    every_seconds: int
    run: Callable[[Database], Awaitable[Any]]


@dataclass
class Actors:
    """The declared actors of one process, by consumer or job name."""

    consumers: dict[str, dramatiq.Actor[Any, Any]]
    jobs: dict[str, dramatiq.Actor[Any, Any]]

    def publish(self, consumer: EventConsumer, event: Event) -> None:
        """Send an event to one consumer's queue (the relay's publisher)."""
        self.consumers[consumer.name].send(event.to_message())

    def enqueue_job(self, name: str) -> None:
        self.jobs[name].send()


def declare_actors(
    broker: dramatiq.Broker,
    registry: ConsumerRegistry,
    jobs: list[PeriodicJob],
    database: DatabaseHandle,
    namespace: str,
) -> Actors:
    """Declare one actor per consumer and per periodic job on `broker`."""
    consumer_actors: dict[str, dramatiq.Actor[Any, Any]] = {}
    for consumer in registry.all():
        consumer_actors[consumer.name] = _consumer_actor(broker, consumer, database, namespace)
    job_actors = {job.name: _job_actor(broker, job, database, namespace) for job in jobs}
    return Actors(consumer_actors, job_actors)


def _consumer_actor(
    broker: dramatiq.Broker, consumer: EventConsumer, database: DatabaseHandle, namespace: str
) -> dramatiq.Actor[Any, Any]:
    async def deliver(message: dict[str, Any]) -> None:
        await deliver_event(database.get(), consumer, Event.from_message(message))

    return dramatiq.actor(  # type: ignore[no-any-return,call-overload]
        deliver,
        broker=broker,
        actor_name=queue_name(namespace, f"consumer.{consumer.name}"),
        queue_name=queue_name(namespace, f"consumer.{consumer.name}"),
        max_retries=consumer.max_retries,
        min_backoff=MIN_BACKOFF_MS,
        max_backoff=MAX_BACKOFF_MS,
    )


def _job_actor(
    broker: dramatiq.Broker, job: PeriodicJob, database: DatabaseHandle, namespace: str
) -> dramatiq.Actor[Any, Any]:
    async def run() -> None:
        logger.info("job %s starting", job.name)
        await job.run(database.get())

    return dramatiq.actor(  # type: ignore[no-any-return,call-overload]
        run,
        broker=broker,
        actor_name=queue_name(namespace, f"job.{job.name}"),
        queue_name=queue_name(namespace, "jobs"),
        max_retries=3,
        min_backoff=MIN_BACKOFF_MS,
        max_backoff=MAX_BACKOFF_MS,
    )


def start_worker(broker: dramatiq.Broker, threads: int) -> dramatiq.Worker:
    """Start worker threads consuming every declared queue of `broker`."""
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=500)
    worker.start()
    return worker


def broker_is_reachable(broker: dramatiq.Broker) -> bool:
    """True if the broker answers now (the in-process broker always does). Blocking."""
    if isinstance(broker, StubBroker):
        return True
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.brokers.redis import RedisBroker

    try:
        if isinstance(broker, RabbitmqBroker):
            return bool(broker.connection.is_open)
        if isinstance(broker, RedisBroker):
            return bool(broker.client.ping())
    except Exception:
        logger.debug("broker check failed", exc_info=True)
    return False


def connect_broker(settings: BrokerSettings) -> dramatiq.Broker:
    """`make_broker`, then check it answers; `UnreachableError` in one line if not."""
    broker = make_broker(settings)
    if not broker_is_reachable(broker):
        where = settings.url.split("@")[-1] if settings.url else "in-process"
        raise UnreachableError(
            f"cannot reach the broker at {where}; check BROKER_URL and that the broker runs"
        )
    return broker
