"""The sender against what happens while its POSTs are in flight: a run that overlaps, a deleted endpoint."""

from __future__ import annotations

import asyncio
import datetime as dt

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from ordersmith.platform.database import Database
from ordersmith.platform.tenancy import get_tenant_record
from ordersmith.tenants.webhooks import sending
from ordersmith.tenants.webhooks.models import WebhookDelivery
from tests.support.orders import open_store
from tests.support.webhook_receiver import fan_out, serve_receiver

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
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        assert await sending.send_due_for_tenant(database, tenant.context, now=later) == 0
        (delivery,) = (await store.call("GET", f"{ENDPOINTS}/{kept['endpoint']['id']}/deliveries", 200))[
            "data"
        ]
    assert sorted(item.path for item in receiver.requests) == ["/doomed", "/kept"]
    assert (delivery["status"], delivery["attempt_count"]) == ("succeeded", 1)
    assert [(item["attempt_number"], item["status_code"]) for item in delivery["attempts"]] == [(1, 200)]
