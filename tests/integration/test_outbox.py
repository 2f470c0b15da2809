"""The outbox: written with the change, published once, consumed once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select, text, update

from ordersmith.platform.database import Database
from ordersmith.platform.errors import TenantArchivedError
from ordersmith.platform.events import ConsumerRegistry, Event, EventConsumer, record_event
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.models import OutboxEvent
from ordersmith.platform.outbox import relay_batch, relay_until_empty
from ordersmith.platform.tenancy import TenantRecord, archive_tenant, restore_tenant
from ordersmith.platform.tenant_tables import TenantProcessedEvent
from ordersmith.platform.workers import deliver_event
from ordersmith.tenants.store.models import StoreSettings
from tests.support.consumers import CONSUMER, TOPIC, touch_store


def _registry() -> ConsumerRegistry:
    registry = ConsumerRegistry()
    registry.consumer(CONSUMER, TOPIC)(touch_store)
    return registry


class Recorder:
    """A publisher that keeps what it was given, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Event]] = []

    def __call__(self, consumer: EventConsumer, event: Event) -> None:
        self.sent.append((consumer.name, event))

    def event_ids(self, tenant: TenantRecord) -> list[uuid.UUID]:
        return [event.id for _, event in self.sent if event.tenant_id == tenant.id]


async def _store_name(database: Database, tenant: TenantRecord) -> str:
    async with database.tenant_session(tenant.context) as session:
        return (await session.execute(select(StoreSettings.display_name))).scalar_one()


async def _outbox_row(database: Database, event_id: uuid.UUID) -> OutboxEvent | None:
    async with database.platform_session() as session:
        return await session.get(OutboxEvent, event_id)


async def test_an_event_written_in_a_rolled_back_transaction_is_never_published(
    database: Database, tenant: TenantRecord
) -> None:
    recorder = Recorder()

    async def rename_then_fail() -> None:
        async with database.tenant_session(tenant.context) as session:
            await session.execute(update(StoreSettings).values(display_name="Renamed"))
            await record_event(session, tenant.context, TOPIC, {"name": "Renamed"})
            raise RuntimeError("change abandoned")

    with pytest.raises(RuntimeError, match="change abandoned"):
        await rename_then_fail()

    await relay_until_empty(database, _registry(), recorder)

    assert recorder.event_ids(tenant) == []
    assert await _store_name(database, tenant) == "Test Shop"


async def test_a_committed_event_reaches_its_consumer_once_even_if_the_relay_runs_twice(
    database: Database, tenant: TenantRecord
) -> None:
    registry = _registry()
    async with database.tenant_session(tenant.context) as session:
        event_id = await record_event(session, tenant.context, TOPIC, {"reason": "test"})

    first, second = Recorder(), Recorder()
    await relay_until_empty(database, registry, first)
    await relay_until_empty(database, registry, second)

    assert first.event_ids(tenant) == [event_id]
    assert second.event_ids(tenant) == []
    row = await _outbox_row(database, event_id)
    assert row is not None
    assert row.published_at is not None
    assert (row.topic, row.payload, row.tenant_id) == (TOPIC, {"reason": "test"}, tenant.id)

    # A broker may still deliver twice (a relay that crashed before marking the row):
    # the consumer's inbox makes the second delivery a no-op.
    consumer = registry.for_topic(TOPIC)[0]
    (_, event) = first.sent[-1]
    assert await deliver_event(database, consumer, event) is True
    assert await deliver_event(database, consumer, event) is False
    assert await _store_name(database, tenant) == "Test Shop+"
    async with database.tenant_session(tenant.context) as session:
        inbox = (
            await session.execute(select(TenantProcessedEvent.consumer, TenantProcessedEvent.event_id))
        ).all()
    assert [tuple(row) for row in inbox] == [(CONSUMER, event_id)]


async def test_concurrent_relays_publish_each_event_exactly_once(
    database: Database, tenant: TenantRecord
) -> None:
    registry = _registry()
    async with database.tenant_session(tenant.context) as session:
        written = [await record_event(session, tenant.context, TOPIC, {"n": n}) for n in range(60)]

    recorders = [Recorder() for _ in range(3)]

    async def relay(recorder: Recorder) -> None:
        for _ in range(100):
            if not await relay_batch(database, registry, recorder, batch_size=7):
                return
            await asyncio.sleep(0)  # let the other relays interleave

    await asyncio.gather(*(relay(recorder) for recorder in recorders))

    published = [event_id for recorder in recorders for event_id in recorder.event_ids(tenant)]
    assert sorted(published) == sorted(written)
    assert len(published) == len(set(published)) == 60


async def test_simultaneous_deliveries_of_one_event_take_effect_once(
    database: Database, tenant: TenantRecord
) -> None:
    registry = _registry()
    async with database.tenant_session(tenant.context) as session:
        await record_event(session, tenant.context, TOPIC, {})
    recorder = Recorder()
    await relay_until_empty(database, registry, recorder)
    (consumer_name, event) = recorder.sent[-1]
    consumer = registry.for_topic(TOPIC)[0]

    outcomes = await asyncio.gather(*(deliver_event(database, consumer, event) for _ in range(4)))

    assert consumer_name == CONSUMER
    assert sorted(outcomes) == [False, False, False, True]
    assert await _store_name(database, tenant) == "Test Shop+"


async def test_a_failed_publish_keeps_the_event_for_the_next_pass(
    database: Database, tenant: TenantRecord
) -> None:
    registry = _registry()
    async with database.tenant_session(tenant.context) as session:
        event_id = await record_event(session, tenant.context, TOPIC, {})

    def broker_down(consumer: EventConsumer, event: Event) -> None:
        raise ConnectionError("broker unreachable")

    await relay_until_empty(database, registry, broker_down)
    row = await _outbox_row(database, event_id)
    assert row is not None
    assert (row.published_at, row.publish_attempts, row.last_error) == (None, 1, "broker unreachable")

    recorder = Recorder()
    await relay_until_empty(database, registry, recorder)
    assert recorder.event_ids(tenant) == [event_id]


async def test_events_of_an_archived_tenant_wait_until_it_is_restored(
    database: Database, tenant: TenantRecord
) -> None:
    registry = _registry()
    async with database.tenant_session(tenant.context) as session:
        await record_event(session, tenant.context, TOPIC, {})
    recorder = Recorder()
    await relay_until_empty(database, registry, recorder)
    (_, event) = recorder.sent[-1]
    consumer = registry.for_topic(TOPIC)[0]

    await archive_tenant(database, tenant.slug, actor=SYSTEM)
    with pytest.raises(TenantArchivedError, match="is archived"):
        await deliver_event(database, consumer, event)
    await restore_tenant(database, tenant.slug, actor=SYSTEM)

    assert await deliver_event(database, consumer, event) is True
    assert await _store_name(database, tenant) == "Test Shop+"


async def test_tenant_roles_can_append_to_the_outbox_but_not_change_it(
    database: Database, tenant: TenantRecord
) -> None:
    async with database.tenant_session(tenant.context) as session:
        event_id = await record_event(session, tenant.context, TOPIC, {})
    with pytest.raises(Exception, match="permission denied for table outbox"):
        async with database.tenant_session(tenant.context) as session:
            await session.execute(text("UPDATE platform.outbox SET topic = 'forged'"))
    async with database.platform_session() as session:
        count = (await session.execute(select(func.count()).where(OutboxEvent.id == event_id))).scalar_one()
    assert count == 1
