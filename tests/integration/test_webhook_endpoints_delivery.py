"""Merchant webhooks on the wire: signatures, topic filter, retries, dead letters, replays, rotation."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
import uuid
from typing import Any

import pytest
from alembic import command
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text, update

from ordersmith.platform.database import Database
from ordersmith.platform.identity.oidc import NetworkPolicy
from ordersmith.platform.tenancy import TenantRecord, apply_tenant_script, get_tenant_record
from ordersmith.platform.workers import deliver_event
from ordersmith.tenants.schema import TENANT_MIGRATIONS
from ordersmith.tenants.webhooks import config, sending, signing
from ordersmith.tenants.webhooks.deliveries import fan_out as fan_out_handler
from ordersmith.tenants.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.support.entitlements import set_tenant_billing
from tests.support.loopback import serve_on_loopback
from tests.support.orders import Store, open_store
from tests.support.webhook_receiver import (
    Receiver,
    fan_out,
    fan_out_consumer,
    outbox_events,
    pump,
    serve_receiver,
)

ENDPOINTS = "/api/v1/webhook-endpoints"


async def _store(client: AsyncTestClient[Litestar], database: Database) -> tuple[Store, TenantRecord]:
    store = await open_store(client)
    return store, await get_tenant_record(database, store.slug)


async def _endpoint(store: Store, url: str, topics: list[str], **extra: Any) -> dict[str, Any]:
    created: dict[str, Any] = await store.call(
        "POST", ENDPOINTS, 201, json={"url": url, "topics": topics, **extra}
    )
    return created


async def _add_customer(store: Store, email: str) -> str:
    body = await store.call("POST", "/api/v1/customers", 201, json={"full_name": "Bo Berg", "email": email})
    return str(body["id"])


async def _deliveries(store: Store, endpoint_id: str) -> list[dict[str, Any]]:
    body = await store.call("GET", f"{ENDPOINTS}/{endpoint_id}/deliveries", 200)
    deliveries: list[dict[str, Any]] = body["data"]
    return deliveries


def _attempts(delivery: dict[str, Any]) -> list[tuple[int, str, int | None, str | None]]:
    return [
        (item["attempt_number"], item["trigger"], item["status_code"], item["error"])
        for item in delivery["attempts"]
    ]


async def _replay(store: Store, delivery: dict[str, Any]) -> dict[str, Any]:
    """The merchant's replay of a delivery, through the API; the delivery after it."""
    replayed: dict[str, Any] = await store.call(
        "POST", f"/api/v1/webhook-deliveries/{delivery['id']}/replay", 200
    )
    return replayed


async def _failed_once(
    database: Database, store: Store, tenant: TenantRecord, receiver: Receiver
) -> dict[str, Any]:
    """An endpoint at `receiver`, which answers 500 to the store's first customer.created; that delivery."""
    created = await _endpoint(store, receiver.url(), ["customer.created"])
    receiver.default_status = 500
    await _add_customer(store, "bo@example.com")
    assert await pump(database, tenant) == 1
    (delivery,) = await _deliveries(store, created["endpoint"]["id"])
    return delivery


async def test_an_order_event_arrives_signed_with_the_secret_shown_at_creation(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        created = await _endpoint(store, receiver.url(), ["order.placed"], description="ERP")
        secret = created["secret"]
        assert secret.startswith("whsec_")
        assert len(secret) > 40
        assert created["endpoint"]["secret_hint"] == f"whsec_…{secret[-4:]}"
        await store.add_skus("TEE-S", price=1500)
        await store.add_location("WH-1")
        await store.receive("TEE-S", "WH-1", 5)
        order = await store.place(("TEE-S", 2))

        assert await pump(database, tenant) == 1
        (request,) = receiver.requests

    placed = next(
        event for event in await outbox_events(database, tenant.id) if event.topic == "order.placed"
    )
    assert request.json() == {
        "id": str(placed.id),
        "type": "order.placed",
        "created": int(placed.created_at.timestamp()),
        "data": placed.payload,
    }
    assert request.json()["data"]["order_id"] == order["id"]
    assert signing.verify(secret, request.body, request.headers["ordersmith-signature"])
    assert not signing.verify("whsec_someone-else", request.body, request.headers["ordersmith-signature"])
    assert request.headers["ordersmith-event-id"] == str(placed.id)
    assert request.headers["content-type"] == "application/json"
    (delivery,) = await _deliveries(store, created["endpoint"]["id"])
    assert request.headers["ordersmith-delivery-id"] == delivery["id"]
    assert (delivery["status"], delivery["topic"], delivery["attempt_count"]) == (
        "succeeded",
        "order.placed",
        1,
    )
    assert _attempts(delivery) == [(1, "automatic", 200, None)]
    assert delivery["next_attempt_at"] is None
    assert delivery["delivered_at"] is not None
    # The secret is never read back, and it rests sealed.
    shown = await store.call("GET", f"{ENDPOINTS}/{created['endpoint']['id']}", 200)
    assert "secret" not in shown
    async with database.tenant_session(tenant.context) as session:
        sealed = await session.scalar(select(WebhookEndpoint.secret_sealed))
    assert sealed is not None
    assert secret.encode() not in sealed


async def test_each_endpoint_gets_only_the_topics_it_chose_and_an_inactive_one_nothing(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        await _endpoint(store, receiver.url("/created"), ["customer.created"])
        await _endpoint(store, receiver.url("/all"), ["*"])
        await _endpoint(store, receiver.url("/off"), ["*"], is_active=False)
        customer_id = await _add_customer(store, "bo@example.com")
        await store.call("PATCH", f"/api/v1/customers/{customer_id}", 200, json={"full_name": "Bo Berg-Lund"})

        assert await pump(database, tenant) == 3
        assert [item.json()["type"] for item in receiver.to("/created")] == ["customer.created"]
        assert sorted(item.json()["type"] for item in receiver.to("/all")) == [
            "customer.created",
            "customer.updated",
        ]
        assert receiver.to("/off") == []
    # The customer made at sign-up, before any endpoint existed, is not owed to anyone either.
    assert [item.json()["data"]["customer_id"] for item in receiver.to("/created")] == [customer_id]


async def test_a_500_is_retried_a_minute_later_and_the_log_shows_both_attempts(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        created = await _endpoint(store, receiver.url(), ["customer.created"])
        receiver.answer(500, 200)
        await _add_customer(store, "bo@example.com")
        assert await pump(database, tenant) == 1
        (delivery,) = await _deliveries(store, created["endpoint"]["id"])
        first_at = dt.datetime.fromisoformat(delivery["attempts"][0]["attempted_at"])
        assert delivery["status"] == "pending"
        assert dt.datetime.fromisoformat(delivery["next_attempt_at"]) == first_at + dt.timedelta(minutes=1)
        assert (delivery["last_status_code"], delivery["last_error"]) == (500, "answered HTTP 500")

        # Not yet due: nothing is sent.
        assert await pump(database, tenant, now=first_at + dt.timedelta(seconds=59)) == 0
        assert await pump(database, tenant, now=first_at + dt.timedelta(seconds=61)) == 1
        assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body
    assert [item.headers["ordersmith-delivery-attempt"] for item in receiver.requests] == ["1", "2"]
    (delivery,) = await _deliveries(store, created["endpoint"]["id"])
    assert delivery["status"] == "succeeded"
    assert delivery["attempt_count"] == 2
    assert _attempts(delivery) == [(1, "automatic", 500, "answered HTTP 500"), (2, "automatic", 200, None)]
    assert all(item["duration_ms"] >= 0 for item in delivery["attempts"])


async def test_retries_back_off_then_the_last_failure_dead_letters_and_a_replay_sends_again(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        created = await _endpoint(store, receiver.url(), ["customer.created"])
        receiver.default_status = 503
        await _add_customer(store, "bo@example.com")
        await pump(database, tenant)
        waits = []
        for _ in sending.RETRY_DELAYS:
            (delivery,) = await _deliveries(store, created["endpoint"]["id"])
            last_at = dt.datetime.fromisoformat(delivery["attempts"][-1]["attempted_at"])
            due = dt.datetime.fromisoformat(delivery["next_attempt_at"])
            waits.append(due - last_at)
            assert await pump(database, tenant, now=due) == 1
        assert waits == list(sending.RETRY_DELAYS)
        (delivery,) = await _deliveries(store, created["endpoint"]["id"])
        assert (delivery["status"], delivery["attempt_count"], delivery["next_attempt_at"]) == (
            "failed",
            6,
            None,
        )
        assert [attempt[:3] for attempt in _attempts(delivery)] == [
            (number, "automatic", 503) for number in range(1, 7)
        ]
        # Dead: nothing is sent however late it gets.
        assert await pump(database, tenant, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=30)) == 0
        assert len(receiver.requests) == 6

        receiver.default_status = 200
        replayed = await _replay(store, delivery)
        assert len(receiver.requests) == 7
        assert (replayed["status"], replayed["attempt_count"], replayed["last_status_code"]) == (
            "succeeded",
            7,
            200,
        )
        assert _attempts(replayed)[-1] == (7, "replay", 200, None)
        # A delivered one can be replayed too: another send, another line in the log.
        again = await _replay(store, delivery)
        assert len(receiver.requests) == 8
        assert [attempt[:3] for attempt in _attempts(again)[-2:]] == [(7, "replay", 200), (8, "replay", 200)]
    assert receiver.requests[-1].body == receiver.requests[0].body


async def test_a_failed_replay_of_a_pending_delivery_keeps_its_schedule(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        before = await _failed_once(database, store, tenant, receiver)
        replayed = await _replay(store, before)
    assert (replayed["status"], replayed["next_attempt_at"]) == ("pending", before["next_attempt_at"])
    assert [attempt[:3] for attempt in _attempts(replayed)] == [(1, "automatic", 500), (2, "replay", 500)]


async def test_a_failed_replay_of_a_pending_delivery_does_not_use_up_its_automatic_retries(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        delivery = await _failed_once(database, store, tenant, receiver)
        # The merchant tries a replay while fixing their receiver; it fails too.
        await _replay(store, delivery)
        waits = []
        for _ in range(10):
            (delivery,) = await _deliveries(store, delivery["endpoint_id"])
            if delivery["status"] != "pending":
                break
            last_automatic = [item for item in delivery["attempts"] if item["trigger"] == "automatic"][-1]
            due = dt.datetime.fromisoformat(delivery["next_attempt_at"])
            waits.append(due - dt.datetime.fromisoformat(last_automatic["attempted_at"]))
            assert await pump(database, tenant, now=due) == 1
    # The automatic schedule is whole: 1 min, 5 min, 30 min, 2 h, 6 h, then dead-lettered after 6 tries.
    assert waits == list(sending.RETRY_DELAYS)
    assert (delivery["status"], delivery["attempt_count"], delivery["next_attempt_at"]) == ("failed", 7, None)
    assert [attempt[:3] for attempt in _attempts(delivery)] == [
        (1, "automatic", 500),
        (2, "replay", 500),
        *[(number, "automatic", 500) for number in range(3, 8)],
    ]


async def test_the_migration_counts_the_automatic_attempts_of_existing_deliveries(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        delivery = await _failed_once(database, store, tenant, receiver)
        await _replay(store, delivery)
        await pump(database, tenant, now=dt.datetime.fromisoformat(delivery["next_attempt_at"]))
    buffer = io.StringIO()
    downgrade = TENANT_MIGRATIONS.config()
    downgrade.output_buffer = buffer
    command.downgrade(downgrade, f"{TENANT_MIGRATIONS.head()}:0020_chargeback_reversals", sql=True)
    count = text("SELECT attempt_count, automatic_attempt_count FROM webhook_deliveries")
    async with database.owner.connect() as connection:
        # Begun here and rolled back, so nothing else sees the round trip.
        await connection.begin()
        try:
            await apply_tenant_script(connection, tenant.schema_name, buffer.getvalue())
            await apply_tenant_script(
                connection, tenant.schema_name, TENANT_MIGRATIONS.render_upgrade("0020_chargeback_reversals")
            )
            counts = (await connection.execute(count)).all()
        finally:
            await connection.rollback()
    # Automatic, replay, automatic: three attempts, two of them the sender's.
    assert [tuple(row) for row in counts] == [(3, 2)]


async def test_an_event_delivered_twice_owes_each_endpoint_one_delivery(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        await _endpoint(store, receiver.url(), ["customer.created"])
        await _add_customer(store, "bo@example.com")
        # The sign-up customer's event (before the endpoint: owed to none) and this one, once each.
        assert await fan_out(database, tenant) == 2
        assert await fan_out(database, tenant) == 0
        # Even past the inbox (a consumer renamed, a purged inbox row), the pair stays unique.
        *_, event = [
            item for item in await outbox_events(database, tenant.id) if item.topic == "customer.created"
        ]
        for _ in range(2):
            async with database.tenant_session(tenant.context) as session:
                await fan_out_handler(tenant.context, session, event)
        assert await deliver_event(database, fan_out_consumer(), event) is False
        async with database.tenant_session(tenant.context) as session:
            count = await session.scalar(select(func.count()).select_from(WebhookDelivery))
        assert count == 1
        assert await sending.send_due_for_tenant(database, tenant.context) == 1
        assert [item.headers["ordersmith-event-id"] for item in receiver.requests] == [str(event.id)]


async def test_a_rotated_secret_signs_what_is_sent_next_and_the_old_one_no_longer_verifies(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        created = await _endpoint(store, receiver.url(), ["customer.created"])
        path = f"{ENDPOINTS}/{created['endpoint']['id']}/rotate-secret"
        # A secret an earlier rotation kept stops too: a rotation keeps only what it replaces.
        kept = await store.call("POST", path, 200, json={"keep_previous_hours": 24})
        rotated = await store.call("POST", path, 200)
        assert rotated["secret"] not in (created["secret"], kept["secret"])
        assert rotated["endpoint"]["secret_hint"] == f"whsec_…{rotated['secret'][-4:]}"
        assert rotated["endpoint"]["secret_rotated_at"] is not None
        assert rotated["endpoint"]["previous_secret_expires_at"] is None
        await _add_customer(store, "bo@example.com")
        await pump(database, tenant)
        (request,) = receiver.requests
    header = request.headers["ordersmith-signature"]
    assert header.count("v1=") == 1
    assert signing.verify(rotated["secret"], request.body, header)
    assert not signing.verify(kept["secret"], request.body, header)
    assert not signing.verify(created["secret"], request.body, header)


async def test_a_secret_kept_after_rotation_signs_beside_the_new_one_until_it_expires(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        created = await _endpoint(store, receiver.url(), ["customer.created"])
        endpoint_id = created["endpoint"]["id"]
        path = f"{ENDPOINTS}/{endpoint_id}/rotate-secret"
        refused = await store.call("POST", path, 422, json={"keep_previous_hours": 169})
        assert refused["errors"] == [
            {
                "field": "keep_previous_hours",
                "message": "must be between 0 (stop the old secret now) and 168 (a week)",
            }
        ]
        rotated = await store.call("POST", path, 200, json={"keep_previous_hours": 24})
        rotated_at = dt.datetime.fromisoformat(rotated["endpoint"]["secret_rotated_at"])
        kept_until = dt.datetime.fromisoformat(rotated["endpoint"]["previous_secret_expires_at"])
        assert kept_until - rotated_at == dt.timedelta(hours=24)
        await _add_customer(store, "bo@example.com")
        await pump(database, tenant)
        # The kept secret's time runs out: what is sent next carries the new signature only.
        async with database.tenant_session(tenant.context) as session:
            endpoint = await session.get(WebhookEndpoint, uuid.UUID(endpoint_id))
            assert endpoint is not None
            endpoint.previous_secret_expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        await _add_customer(store, "cy@example.com")
        await pump(database, tenant)
        during, after = receiver.requests
    both = during.headers["ordersmith-signature"]
    assert both.count("v1=") == 2
    assert signing.verify(rotated["secret"], during.body, both)
    assert signing.verify(created["secret"], during.body, both)
    one = after.headers["ordersmith-signature"]
    assert one.count("v1=") == 1
    assert signing.verify(rotated["secret"], after.body, one)
    assert not signing.verify(created["secret"], after.body, one)


async def test_the_sender_job_skips_a_store_without_the_feature_until_it_has_it_again(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        created = await _endpoint(store, receiver.url(), ["customer.created"])
        await _add_customer(store, "bo@example.com")
        await fan_out(database, tenant)
        await set_tenant_billing(database, tenant.id, plan="starter")
        await sending.send_due(database)
        assert receiver.requests == []
        await set_tenant_billing(database, tenant.id, plan="growth")
        await sending.send_due(database)
        assert len(receiver.requests) == 1
    (delivery,) = await _deliveries(store, created["endpoint"]["id"])
    assert delivery["status"] == "succeeded"


async def test_an_unreachable_receiver_is_a_logged_failure_not_an_error(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        dead_url = receiver.url()
    # The receiver has stopped: nothing listens at its address any more.
    created = await _endpoint(store, dead_url, ["customer.created"])
    await _add_customer(store, "bo@example.com")
    assert await pump(database, tenant) == 1
    (delivery,) = await _deliveries(store, created["endpoint"]["id"])
    ((number, trigger, status_code, error),) = _attempts(delivery)
    assert (number, trigger, status_code, delivery["status"]) == (1, "automatic", None, "pending")
    assert error is not None
    assert error.startswith("ConnectError")


async def test_in_production_a_send_to_a_loopback_receiver_is_refused_and_logged(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        created = await _endpoint(store, receiver.url(), ["customer.created"])
        await _add_customer(store, "bo@example.com")
        # The URL was accepted outside production; a production sender still refuses it on every send.
        relaxed = config.current()
        config.configure(
            config.WebhooksConfig(
                secret_key=relaxed.secret_key,
                network=NetworkPolicy(allow_private_addresses=False, require_https=False),
            )
        )
        try:
            assert await pump(database, tenant) == 1
        finally:
            config.configure(relaxed)
        assert receiver.requests == []
    (delivery,) = await _deliveries(store, created["endpoint"]["id"])
    assert _attempts(delivery) == [(1, "automatic", None, "address refused: 127.0.0.1 is a loopback address")]
    assert delivery["status"] == "pending"


async def _point_at(database: Database, tenant: TenantRecord, endpoint_id: str, url: str) -> None:
    """Give an endpoint a URL the API refuses now, as one saved before that check existed."""
    async with database.tenant_session(tenant.context) as session:
        await session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == uuid.UUID(endpoint_id)).values(url=url)
        )


async def test_a_host_that_cannot_be_encoded_fails_its_own_attempt_and_the_batch_is_recorded(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        good = await _endpoint(store, receiver.url(), ["customer.created"])
        dots = await _endpoint(store, receiver.url("/dots"), ["customer.created"])
        snowman = await _endpoint(store, receiver.url("/snowman"), ["customer.created"])
        # Python's IDNA codec refuses the first (at the address check); httpx refuses the second.
        await _point_at(database, tenant, dots["endpoint"]["id"], "http://a..b/hooks")
        await _point_at(database, tenant, snowman["endpoint"]["id"], "http://☃.com/hooks")
        await _add_customer(store, "bo@example.com")
        assert await pump(database, tenant) == 3
        assert [item.path for item in receiver.requests] == ["/hooks"]
        # The next run has nothing due: the good delivery is recorded, the others wait their retry.
        assert await pump(database, tenant) == 0

        (delivered,) = await _deliveries(store, good["endpoint"]["id"])
        assert (delivered["status"], _attempts(delivered)) == ("succeeded", [(1, "automatic", 200, None)])
        (dotted,) = await _deliveries(store, dots["endpoint"]["id"])
        assert _attempts(dotted) == [
            (
                1,
                "automatic",
                None,
                "ConnectError: a..b does not resolve ([Errno -2] not a name that can be looked up: "
                "encoding with 'idna' codec failed (UnicodeError: label empty or too long))",
            )
        ]
        (snowy,) = await _deliveries(store, snowman["endpoint"]["id"])
        assert _attempts(snowy) == [(1, "automatic", None, "InvalidURL: Invalid IDNA hostname: '☃.com'")]
        for delivery in (dotted, snowy):
            attempted_at = dt.datetime.fromisoformat(delivery["attempts"][0]["attempted_at"])
            assert (delivery["status"], delivery["attempt_count"]) == ("pending", 1)
            assert dt.datetime.fromisoformat(delivery["next_attempt_at"]) == attempted_at + dt.timedelta(
                minutes=1
            )

        # A replay of one is a logged failure too, not a 500.
        replayed = await _replay(store, snowy)
        assert _attempts(replayed)[-1] == (2, "replay", None, "InvalidURL: Invalid IDNA hostname: '☃.com'")
        assert (replayed["status"], replayed["next_attempt_at"]) == ("pending", snowy["next_attempt_at"])
    assert len(receiver.requests) == 1


async def test_a_receiver_that_never_answers_fails_the_attempt_at_the_deadline(
    client: AsyncTestClient[Litestar], database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sending, "ATTEMPT_TIMEOUT_SECONDS", 0.5)
    store, tenant = await _store(client, database)
    with serve_receiver() as receiver:
        created = await _endpoint(store, receiver.url(), ["customer.created"])
        await _add_customer(store, "bo@example.com")
        receiver.hold()
        try:
            assert await pump(database, tenant) == 1
        finally:
            receiver.release()
    (delivery,) = await _deliveries(store, created["endpoint"]["id"])
    assert _attempts(delivery) == [(1, "automatic", None, "no answer within 0.5 s")]
    assert 500 <= delivery["attempts"][0]["duration_ms"] < 2000
    attempted_at = dt.datetime.fromisoformat(delivery["attempts"][0]["attempted_at"])
    assert delivery["status"] == "pending"
    assert dt.datetime.fromisoformat(delivery["next_attempt_at"]) == attempted_at + dt.timedelta(minutes=1)


TRICKLE_STEPS = 100


async def trickler(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200 at once, then a byte every 0.1 s: each read well within any per-read timeout."""
    assert scope["type"] == "http"
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for _ in range(TRICKLE_STEPS):
        await send({"type": "http.response.body", "body": b".", "more_body": True})
        try:
            message = await asyncio.wait_for(receive(), 0.1)
        except TimeoutError:
            continue
        if message["type"] == "http.disconnect":
            return
    await send({"type": "http.response.body", "body": b""})


async def test_a_receiver_that_answers_then_trickles_its_body_holds_the_sender_only_until_the_deadline(
    client: AsyncTestClient[Litestar], database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sending, "ATTEMPT_TIMEOUT_SECONDS", 0.5)
    store, tenant = await _store(client, database)
    with serve_on_loopback(lambda base_url: trickler) as base_url:
        created = await _endpoint(store, f"{base_url}/hooks", ["customer.created"])
        await _add_customer(store, "bo@example.com")
        await fan_out(database, tenant)
        started = time.monotonic()
        sent = await asyncio.wait_for(sending.send_due_for_tenant(database, tenant.context), timeout=10)
        elapsed = time.monotonic() - started
    assert sent == 1
    assert elapsed < 2, f"one attempt held the sender {elapsed:.1f} s"
    # The answer's status was in: the attempt is the 200 it said, the body left unread.
    (delivery,) = await _deliveries(store, created["endpoint"]["id"])
    assert (delivery["status"], _attempts(delivery)) == ("succeeded", [(1, "automatic", 200, None)])
