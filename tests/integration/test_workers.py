"""Workers: the in-process broker inside the app, and a real RabbitMQ surviving SIGKILL."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pika
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from ordersmith.app import JOBS, create_app, declare_process_actors
from ordersmith.platform.database import Database
from ordersmith.platform.events import ConsumerRegistry, consumers, record_event
from ordersmith.platform.outbox import relay_until_empty
from ordersmith.platform.scheduler import claim_due_jobs
from ordersmith.platform.settings import BrokerSettings, Settings
from ordersmith.platform.tenancy import TenantRecord
from ordersmith.platform.tenant_tables import TenantProcessedEvent
from ordersmith.platform.workers import DatabaseHandle, declare_actors, make_broker, queue_name, start_worker
from ordersmith.tenants.store.models import StoreSettings
from tests.support.consumers import CONSUMER, TOPIC, touch_store
from tests.support.services import REPO, require_broker_url, require_redis_url


async def _store_name(database: Database, tenant: TenantRecord) -> str:
    async with database.tenant_session(tenant.context) as session:
        return (await session.execute(select(StoreSettings.display_name))).scalar_one()


async def _inbox_count(database: Database, tenant: TenantRecord) -> int:
    async with database.tenant_session(tenant.context) as session:
        return (await session.execute(select(func.count()).select_from(TenantProcessedEvent))).scalar_one()


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    """Wait for `check`; `seconds` only bounds a hang (a worker process starts slowly on a busy machine)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out after {seconds}s waiting for {what}")


async def test_the_app_relays_and_consumes_events_in_process(
    settings: Settings, database: Database, tenant: TenantRecord
) -> None:
    # Its periodic jobs are not what this test is about, and their purges would reach into
    # tables other tests running beside it are using: marked as just run, they wait their turn.
    await claim_due_jobs(database, JOBS, dt.datetime.now(dt.UTC))
    # The test client serves the app on a loop of its own, so the app opens its own pools.
    app = create_app(settings, background=True)
    async with AsyncTestClient(app):
        async with database.tenant_session(tenant.context) as session:
            await record_event(session, tenant.context, TOPIC, {})

        async def consumed() -> bool:
            return await _store_name(database, tenant) == "Test Shop+"

        await _eventually(consumed, 15, "the in-process worker to consume the event")
    assert await _inbox_count(database, tenant) == 1


def _worker(database_url: str, broker_url: str, namespace: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "ORDERSMITH_ENV": "test",
        "DATABASE_URL": database_url,
        "BROKER_URL": broker_url,
        "BROKER_NAMESPACE": namespace,
        "LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        "-m",
        "ordersmith.cli",
        "worker",
        "--threads",
        "1",
        "--import",
        "tests.support.consumers",
    ]
    return subprocess.Popen(command, cwd=REPO, env=environment)


@pytest.fixture
def namespace() -> Iterator[str]:
    """A queue namespace of this test's own, deleted from RabbitMQ afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    url = os.environ.get("TEST_BROKER_URL")
    if url:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        base = queue_name(name, f"consumer.{CONSUMER}")
        for queue in (
            base,
            f"{base}.DQ",
            f"{base}.XQ",
            queue_name(name, "jobs"),
            queue_name(name, "jobs") + ".DQ",
        ):
            channel.queue_delete(queue=queue)
        connection.close()


@pytest.mark.rabbitmq
async def test_a_worker_killed_mid_message_does_not_lose_it(
    database: Database, database_url: str, tenant: TenantRecord, namespace: str, tmp_path: Path
) -> None:
    broker_url = require_broker_url()
    marker = tmp_path / "started"
    broker = make_broker(BrokerSettings(url=broker_url, namespace=namespace))
    actors = declare_process_actors(settings_for(broker_url, namespace), broker, database)
    async with database.tenant_session(tenant.context) as session:
        await record_event(session, tenant.context, TOPIC, {"stall_once_marker": str(marker)})
    await asyncio.to_thread(_relay_blocking, database, actors.publish)

    first = _worker(database_url, broker_url, namespace)
    try:

        async def started() -> bool:
            return marker.exists()

        await _eventually(started, 120, "the first worker to start handling the message")
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()

    assert await _store_name(database, tenant) == "Test Shop"
    second = _worker(database_url, broker_url, namespace)
    try:

        async def consumed() -> bool:
            return await _store_name(database, tenant) == "Test Shop+"

        await _eventually(consumed, 120, "the second worker to receive the redelivered message")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
        broker.close()
    assert await _inbox_count(database, tenant) == 1
    assert await _store_name(database, tenant) == "Test Shop+"


def settings_for(broker_url: str, namespace: str) -> Settings:
    from ordersmith.platform.settings import load_settings

    return load_settings({"ORDERSMITH_ENV": "test", "BROKER_URL": broker_url, "BROKER_NAMESPACE": namespace})


def _relay_blocking(database: Database, publish: Callable[..., None]) -> None:
    # pika's blocking connection belongs to the thread that opened it; relay from one thread.
    async def relay() -> int:
        clone = database.clone()
        try:
            return await relay_until_empty(clone, consumers, publish)
        finally:
            await clone.dispose()

    assert asyncio.run(relay()) >= 1


async def test_events_flow_through_a_real_redis_broker(database: Database, tenant: TenantRecord) -> None:
    redis_url = require_redis_url()
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    broker = make_broker(BrokerSettings(url=redis_url, namespace=namespace))
    registry = ConsumerRegistry()
    registry.consumer(CONSUMER, TOPIC)(touch_store)
    actors = declare_actors(broker, registry, [], DatabaseHandle(database.clone), namespace)
    worker = start_worker(broker, threads=1)
    try:
        async with database.tenant_session(tenant.context) as session:
            await record_event(session, tenant.context, TOPIC, {})
        assert await relay_until_empty(database, registry, actors.publish) >= 1

        async def consumed() -> bool:
            return await _store_name(database, tenant) == "Test Shop+"

        await _eventually(consumed, 120, "the Redis-backed worker to consume the event")
    finally:
        await asyncio.to_thread(worker.stop)
        broker.flush_all()
        broker.close()
    assert await _inbox_count(database, tenant) == 1
