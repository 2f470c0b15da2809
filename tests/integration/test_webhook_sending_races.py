"""The sender against what happens while its POSTs are in flight: a run that overlaps, a deleted
endpoint, a replay of the same delivery, another store's slow receiver."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from ordersmith.platform.database import Database
from ordersmith.platform.identity import oidc
from ordersmith.platform.tenancy import TenantRecord, get_tenant_record
from ordersmith.tenants.webhooks import config, sending
from ordersmith.tenants.webhooks.models import WebhookDelivery
from tests.support.orders import Store, open_store
from tests.support.webhook_receiver import Receiver, fan_out, serve_receiver

ENDPOINTS = "/api/v1/webhook-endpoints"


async def test_a_delivery_claimed_late_in_a_long_run_is_not_claimed_again_by_the_next_run(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await open_store(client)
    tenant = await get_tenant_record(database, store.slug)
    with serve_receiver() as receiver:
        created = await store.call(
            "POST", ENDPOINTS, 201, json={"url": receiver.url(), "topics": ["customer.created"]}
        )
        await store.call(
            "POST", "/api/v1/customers", 201, json={"full_name": "Bo", "email": "bo@example.com"}
        )
        await fan_out(database, tenant)
        # The job decides what is due with the `now` its run began with; this store's turn
        # comes 3 minutes into the run, longer than the lease.
        run_began = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)
        async with database.tenant_session(tenant.context) as session:
            await session.execute(
                update(WebhookDelivery).values(next_attempt_at=run_began - dt.timedelta(seconds=1))
            )
        receiver.default_status = 500
        receiver.hold()
        sent_at = dt.datetime.now(dt.UTC)
        late_run = asyncio.create_task(sending.send_due_for_tenant(database, tenant.context, now=run_began))
        await receiver.received(1)
        # The next run of the job, while the POST is still in flight: the lease holds it off.
        next_run = await asyncio.wait_for(sending.send_due_for_tenant(database, tenant.context), timeout=5)
        receiver.release()
        assert (await late_run, next_run) == (1, 0)
        (delivery,) = (await store.call("GET", f"{ENDPOINTS}/{created['endpoint']['id']}/deliveries", 200))[
            "data"
        ]
    assert len(receiver.requests) == 1
    # Logged when it was sent, and retried a minute after that, not after the run's stale `now`.
    (attempt,) = delivery["attempts"]
    attempted_at = dt.datetime.fromisoformat(attempt["attempted_at"])
    assert attempted_at >= sent_at
    assert (delivery["status"], delivery["attempt_count"]) == ("pending", 1)
    assert dt.datetime.fromisoformat(delivery["next_attempt_at"]) == attempted_at + dt.timedelta(minutes=1)


async def test_deleting_an_endpoint_mid_send_keeps_the_outcome_of_the_rest_of_the_batch(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await open_store(client)
    tenant = await get_tenant_record(database, store.slug)
    with serve_receiver() as receiver:
        doomed = await store.call(
            "POST", ENDPOINTS, 201, json={"url": receiver.url("/doomed"), "topics": ["customer.created"]}
        )
        kept = await store.call(
            "POST", ENDPOINTS, 201, json={"url": receiver.url("/kept"), "topics": ["customer.created"]}
        )
        await store.call(
            "POST", "/api/v1/customers", 201, json={"full_name": "Bo", "email": "bo@example.com"}
        )
        await fan_out(database, tenant)
        receiver.hold()
        run = asyncio.create_task(sending.send_due_for_tenant(database, tenant.context))
        await receiver.received(2)
        # Both POSTs are in flight, outside any transaction: the merchant removes one endpoint.
        response = await client.delete(f"{ENDPOINTS}/{doomed['endpoint']['id']}", headers=store.headers)
        assert response.status_code == 204
        receiver.release()
        assert await run == 2
        # Nothing is due again, however late: the kept delivery's success was recorded.
        assert await _sent_a_day_later(database, tenant) == 0
        (delivery,) = (await store.call("GET", f"{ENDPOINTS}/{kept['endpoint']['id']}/deliveries", 200))[
            "data"
        ]
    assert sorted(item.path for item in receiver.requests) == ["/doomed", "/kept"]
    assert (delivery["status"], delivery["attempt_count"]) == ("succeeded", 1)
    assert [(item["attempt_number"], item["status_code"]) for item in delivery["attempts"]] == [(1, 200)]


async def _owe_one(database: Database, store: Store, tenant: TenantRecord, receiver: Receiver) -> str:
    """Give the store one endpoint (at `receiver`) and owe it one customer.created; the endpoint's id."""
    created = await store.call(
        "POST", ENDPOINTS, 201, json={"url": receiver.url(), "topics": ["customer.created"]}
    )
    await store.call("POST", "/api/v1/customers", 201, json={"full_name": "Bo", "email": "bo@example.com"})
    await fan_out(database, tenant)
    return str(created["endpoint"]["id"])


async def _one_delivery_owed(
    client: AsyncTestClient[Litestar], database: Database, receiver: Receiver
) -> tuple[Store, TenantRecord, str]:
    """A new store whose one endpoint (at `receiver`) is owed one customer.created."""
    store = await open_store(client)
    tenant = await get_tenant_record(database, store.slug)
    return store, tenant, await _owe_one(database, store, tenant, receiver)


async def _two_stores_in_run_order(
    client: AsyncTestClient[Litestar], database: Database
) -> list[tuple[Store, TenantRecord]]:
    """Two new stores, in the order a run of the job reaches them (by tenant id)."""
    stores = []
    for _ in range(2):
        store = await open_store(client)
        stores.append((store, await get_tenant_record(database, store.slug)))
    return sorted(stores, key=lambda pair: pair[1].id)


async def _only_delivery(store: Store, endpoint_id: str) -> dict[str, Any]:
    (delivery,) = (await store.call("GET", f"{ENDPOINTS}/{endpoint_id}/deliveries", 200))["data"]
    return dict(delivery)


async def _automatic_attempt(
    database: Database, tenant: TenantRecord
) -> tuple[sending.Claimed, sending.Outcome]:
    """The sender's steps (1) and (2) for the one due delivery, leaving (3), the record, to the test."""
    async with database.tenant_session(tenant.context) as session:
        (claimed,) = await sending.claim_due(tenant.context, session, dt.datetime.now(dt.UTC))
    async with oidc.provider_client(config.current().network) as http:
        return claimed, await sending.post(http, claimed)


async def _replay(store: Store, claimed: sending.Claimed) -> dict[str, Any]:
    """The admin's replay of the claimed delivery, through the API."""
    return dict(await store.call("POST", f"/api/v1/webhook-deliveries/{claimed.delivery_id}/replay", 200))


async def _record(
    database: Database, tenant: TenantRecord, claimed: sending.Claimed, outcome: sending.Outcome
) -> bool:
    """The sender's step (3): record the outcome of the automatic attempt, late."""
    async with database.tenant_session(tenant.context) as session:
        return await sending.record(session, claimed, outcome)


async def _sent_a_day_later(database: Database, tenant: TenantRecord) -> int:
    """How many deliveries a run a day from now sends the store: none once every outcome is recorded."""
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    return await sending.send_due_for_tenant(database, tenant.context, now=later)


def _attempts(delivery: dict[str, Any]) -> list[tuple[int, str, int]]:
    """The delivery's attempts as (number, trigger, status code), in order."""
    return [(item["attempt_number"], item["trigger"], item["status_code"]) for item in delivery["attempts"]]


async def _run_held_by_the_slow_one(
    database: Database, stores: list[tuple[Store, TenantRecord]], slow: Receiver, fast: Receiver
) -> asyncio.Task[int]:
    """Owe the first store one event at `slow`, the second one at `fast`; start a run that `slow` holds."""
    (first, first_tenant), (second, second_tenant) = stores
    await _owe_one(database, first, first_tenant, slow)
    await _owe_one(database, second, second_tenant, fast)
    slow.hold()
    return asyncio.create_task(sending.send_due(database))


async def test_a_2xx_from_an_automatic_attempt_is_not_lost_to_a_concurrent_failed_replay(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    with serve_receiver() as receiver:
        store, tenant, endpoint_id = await _one_delivery_owed(client, database, receiver)
        # The sender POSTs the delivery (attempt 1) and the receiver answers 200 ...
        receiver.answer(200, 500)
        claimed, outcome = await _automatic_attempt(database, tenant)
        assert outcome.status_code == 200
        # ... while, before the sender records it, the admin's replay (attempt 2) gets a 500.
        await _replay(store, claimed)
        assert await _record(database, tenant, claimed, outcome) is True
        delivery = await _only_delivery(store, endpoint_id)
        # The receiver has the event: the delivery is succeeded and never sent again.
        assert await _sent_a_day_later(database, tenant) == 0
        assert len(receiver.requests) == 2
    assert (delivery["status"], delivery["next_attempt_at"], delivery["attempt_count"]) == (
        "succeeded",
        None,
        2,
    )
    assert dt.datetime.fromisoformat(delivery["delivered_at"]) == outcome.attempted_at
    assert _attempts(delivery) == [
        (1, "automatic", 200),
        (2, "replay", 500),
    ]


async def test_a_failed_automatic_attempt_recorded_after_a_successful_replay_leaves_it_succeeded(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    with serve_receiver() as receiver:
        store, tenant, endpoint_id = await _one_delivery_owed(client, database, receiver)
        receiver.answer(500, 200)
        claimed, outcome = await _automatic_attempt(database, tenant)
        replayed = await _replay(store, claimed)
        await _record(database, tenant, claimed, outcome)
        delivery = await _only_delivery(store, endpoint_id)
        assert await _sent_a_day_later(database, tenant) == 0
    assert (delivery["status"], delivery["next_attempt_at"]) == ("succeeded", None)
    assert delivery["delivered_at"] == replayed["delivered_at"]
    assert _attempts(delivery) == [
        (1, "automatic", 500),
        (2, "replay", 200),
    ]


async def test_a_failed_replay_recorded_after_the_automatic_attempt_leaves_its_retry_as_it_set_it(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    with serve_receiver() as receiver:
        store, tenant, endpoint_id = await _one_delivery_owed(client, database, receiver)
        receiver.default_status = 500
        claimed, outcome = await _automatic_attempt(database, tenant)
        # The replay claims the delivery while the automatic attempt is still unrecorded ...
        receiver.hold()
        replay = asyncio.create_task(sending.replay(database, tenant.context, claimed.delivery_id))
        await receiver.received(2)
        # ... which records first: a retry a minute after it was sent.
        await _record(database, tenant, claimed, outcome)
        receiver.release()
        await replay
        delivery = await _only_delivery(store, endpoint_id)
    # The failed replay gives back no schedule over the one the automatic attempt set.
    assert delivery["status"] == "pending"
    assert dt.datetime.fromisoformat(delivery["next_attempt_at"]) == outcome.attempted_at + dt.timedelta(
        minutes=1
    )
    assert _attempts(delivery) == [
        (1, "automatic", 500),
        (2, "replay", 500),
    ]


async def test_a_slow_receiver_of_one_store_does_not_delay_another_stores_webhooks(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    stores = await _two_stores_in_run_order(client, database)
    with serve_receiver() as slow, serve_receiver() as fast:
        # The run reaches the slow store first.
        run = await _run_held_by_the_slow_one(database, stores, slow, fast)
        try:
            await slow.received(1)
            # The other store's receiver answers at once: its event does not wait for the slow one.
            async with asyncio.timeout(3):
                await fast.received(1)
        finally:
            slow.release()
            sent = await run
    # Both stores' attempts are counted (with any retries other tests' stores had due).
    assert sent >= 2


async def test_a_run_serves_at_most_stores_at_once_stores_at_a_time(
    client: AsyncTestClient[Litestar], database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sending, "STORES_AT_ONCE", 1)
    stores = await _two_stores_in_run_order(client, database)
    with serve_receiver() as slow, serve_receiver() as fast:
        run = await _run_held_by_the_slow_one(database, stores, slow, fast)
        try:
            await slow.received(1)
            # Its one place is taken by the slow store until that store is done.
            await asyncio.sleep(0.5)
            assert fast.requests == []
        finally:
            slow.release()
            await run
        assert len(fast.requests) == 1
