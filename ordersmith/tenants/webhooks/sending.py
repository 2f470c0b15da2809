"""Sending deliveries: claim, POST outside any transaction, record; retries with backoff; replay.

Each send is three steps. (1) A short tenant transaction claims the delivery: it locks
the row (`SKIP LOCKED` for the sender), counts the attempt and pushes `next_attempt_at`
a lease ahead of the database clock at that moment, so no other sender takes it
meanwhile, and opens the endpoint's secret. (2) The POST, with no transaction open: a
slow receiver holds no connection and no lock (checked addresses, no redirects:
`oidc.provider_client`; the whole attempt ends within `ATTEMPT_TIMEOUT_SECONDS`, and
only the start of the answer is read); whatever goes wrong with one POST is that
attempt's logged error, never the batch's. (3) A second short transaction logs the
attempt and moves the delivery: `succeeded` on any 2xx, whatever happened meanwhile;
after a failed automatic attempt, the next retry per `RETRY_DELAYS` from when it was
sent, or `failed` after the last (replays are not counted there); a failed replay changes
only the log. A delivery deleted meanwhile (with its endpoint) is skipped. A sender that
dies between (1) and (3) leaves the attempt counted and unlogged; the lease expires and
the delivery is sent again (at-least-once: receivers de-duplicate on the event id).

The periodic job `webhooks.deliver` (every `SEND_EVERY_SECONDS`) sends what is due,
first attempts and retries alike, in every active store on the sender's list (those with
an active endpoint, `platform/webhook_stores.py`) that has the `webhooks` feature, up to
`STORES_AT_ONCE` stores at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import DateTime, Update, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from ordersmith.platform import webhook_stores
from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.entitlements import resolve_entitlements
from ordersmith.platform.identity import oidc
from ordersmith.platform.ids import uuid7
from ordersmith.platform.plans import Feature
from ordersmith.platform.tenancy import TenantRecord
from ordersmith.platform.workers import PeriodicJob
from ordersmith.tenants.webhooks import config, endpoint_secrets, retention, signing
from ordersmith.tenants.webhooks.deliveries import (
    FAILED,
    PENDING,
    SUCCEEDED,
    DeliveryView,
    delivery_missing,
    get_delivery,
)
from ordersmith.tenants.webhooks.errors import WebhookSecretUnreadableError
from ordersmith.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint

logger = logging.getLogger(__name__)

# Waits after the 1st, 2nd, … failed automatic attempt; after the last, the delivery is failed.
RETRY_DELAYS = (
    dt.timedelta(minutes=1),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=6),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# One attempt ends this long after it began, whatever the receiver does: a timeout per
# read alone lets a receiver that trickles its answer hold the sender for ever.
ATTEMPT_TIMEOUT_SECONDS = 10.0
# What is read of an answer at most. Only its status is logged; reading the start lets a
# short answer end cleanly, so its connection serves the next POST.
ANSWER_READ_LIMIT = 4096
# Longer than any attempt can take (ATTEMPT_TIMEOUT_SECONDS): a claimed delivery is not
# claimed again before its sender is surely done, or dead.
LEASE = dt.timedelta(minutes=2)
BATCH_SIZE = 20
# Batches per store per run, so one busy store does not starve the others.
BATCHES_PER_RUN = 5
SEND_EVERY_SECONDS = 10
TENANT_BATCH_SIZE = 100
# Stores sent to at the same time by one run: a slow receiver holds only its own store's
# place, and the run never needs more than this many database connections.
STORES_AT_ONCE = 8
AUTOMATIC = "automatic"
REPLAY = "replay"
USER_AGENT = "Ordersmith-Webhooks/1.0"


@dataclass(frozen=True)
class Claimed:
    """A delivery taken for one attempt, with what the POST needs and what to restore after a replay."""

    delivery_id: uuid.UUID
    event_id: uuid.UUID
    url: str
    # None when the sealed secret does not open: the attempt fails without sending.
    secret: str | None
    body: bytes
    # A rotated secret still within its overlap: it signs too.
    previous_secret: str | None
    # Among all attempts, replays included: it numbers the attempt in the log.
    attempt_number: int
    # Among the automatic attempts only: it picks the next wait and decides the dead-lettering.
    automatic_number: int
    trigger: str
    previous_status: str
    previous_next_attempt_at: dt.datetime | None
    # What the claim set `next_attempt_at` to: a failed replay gives the schedule back only if it still is.
    lease_until: dt.datetime | None


@dataclass(frozen=True)
class Outcome:
    """What one POST came to."""

    attempted_at: dt.datetime
    status_code: int | None
    duration_ms: int
    error: str | None

    @property
    def is_success(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def encode_body(body: dict[str, object]) -> bytes:
    """The bytes POSTed (and signed): the envelope in its documented key order, compact."""
    ordered = {key: body[key] for key in ("id", "type", "created", "data")}
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()


async def _claim(
    tenant: TenantContext,
    session: AsyncSession,
    rows: list[tuple[WebhookDelivery, WebhookEndpoint]],
    now: dt.datetime,
    trigger: str,
) -> list[Claimed]:
    secret_key = config.current().secret_key
    claimed = []
    for delivery, endpoint in rows:
        try:
            secret: str | None = endpoint_secrets.open_sealed(
                secret_key, tenant.tenant_id, endpoint.id, endpoint.secret_sealed
            )
        except WebhookSecretUnreadableError:
            logger.error("webhook endpoint %s: signing secret does not open; not sent", endpoint.id)
            secret = None
        previous = None
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret_sealed is not None and expires is not None and expires > now:
            try:
                previous = endpoint_secrets.open_sealed(
                    secret_key, tenant.tenant_id, endpoint.id, endpoint.previous_secret_sealed
                )
            except WebhookSecretUnreadableError:
                logger.error(
                    "webhook endpoint %s: previous signing secret does not open; left out", endpoint.id
                )
        # Read before the update below, which also refreshes these attributes in the session.
        previous_status, previous_next_attempt_at = delivery.status, delivery.next_attempt_at
        attempt_number = delivery.attempt_count + 1
        automatic_number = delivery.automatic_attempt_count + (1 if trigger == AUTOMATIC else 0)
        # A replay of a settled delivery leaves it settled; the lease only keeps the sender off a pending one.
        # From the clock, not `now`: a run's `now` is as old as the run, and a store reached late
        # in a long run would get a lease already over, so the next run would send it again.
        lease = _clock() + LEASE if previous_status == PENDING else previous_next_attempt_at
        lease_until = await session.scalar(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id)
            .values(
                attempt_count=attempt_number,
                automatic_attempt_count=automatic_number,
                next_attempt_at=lease,
                updated_at=func.now(),
            )
            .returning(WebhookDelivery.next_attempt_at)
        )
        claimed.append(
            Claimed(
                delivery.id,
                delivery.event_id,
                endpoint.url,
                secret,
                encode_body(delivery.body),
                previous,
                attempt_number,
                automatic_number,
                trigger,
                previous_status,
                previous_next_attempt_at,
                lease_until,
            )
        )
    return claimed


def _clock() -> ColumnElement[dt.datetime]:
    """The database's time when the statement runs (not when its transaction began)."""
    return func.clock_timestamp(type_=DateTime(timezone=True))


async def claim_due(tenant: TenantContext, session: AsyncSession, now: dt.datetime) -> list[Claimed]:
    """Take up to BATCH_SIZE pending deliveries due by `now`, to active endpoints, for an attempt each."""
    query = (
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.is_active.is_(True),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(BATCH_SIZE)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )
    rows = [(delivery, endpoint) for delivery, endpoint in await session.execute(query)]
    return await _claim(tenant, session, rows, now, AUTOMATIC)


def _error_of(error: Exception, claimed: Claimed) -> str:
    if isinstance(error, oidc.SsoProviderAddressRefusedError):
        return f"address refused: {error.reason}"
    if isinstance(error, (TimeoutError, httpx.TimeoutException)):
        return f"no answer within {ATTEMPT_TIMEOUT_SECONDS:g} s"
    if not isinstance(error, httpx.HTTPError):
        # Not the network's or the receiver's doing (a URL httpx cannot encode, say): still
        # this attempt's failure only, retried like any other, but worth a look.
        logger.warning(
            "webhook delivery %s: sending failed unexpectedly", claimed.delivery_id, exc_info=error
        )
    # PostgreSQL text cannot hold NUL, and the log line must not fail to be written.
    return f"{type(error).__name__}: {error}".replace("\x00", "")[:500]


async def post(client: httpx.AsyncClient, claimed: Claimed) -> Outcome:
    """POST one claimed delivery, signed; never raises: any failure is the attempt's error."""
    attempted_at = dt.datetime.now(dt.UTC)
    if claimed.secret is None:
        return Outcome(attempted_at, None, 0, "signing secret unreadable; rotate the endpoint's secret")
    started = time.monotonic()
    try:
        status_code = await _send(client, claimed)
    except Exception as error:  # one delivery's failure, whatever it is, must not take the batch down
        return Outcome(
            attempted_at, None, round((time.monotonic() - started) * 1000), _error_of(error, claimed)
        )
    duration_ms = round((time.monotonic() - started) * 1000)
    refusal = None if 200 <= status_code < 300 else f"answered HTTP {status_code}"
    return Outcome(attempted_at, status_code, duration_ms, refusal)


async def _send(client: httpx.AsyncClient, claimed: Claimed) -> int:
    """POST the delivery and return the receiver's status, within ATTEMPT_TIMEOUT_SECONDS in all.

    The status decides the attempt. The answer's body is read only up to ANSWER_READ_LIMIT
    and only while time is left: a receiver that answered and then trickles its body is not waited for.
    """
    assert claimed.secret is not None  # post checked it
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.HEADER: signing.signature_header(
            claimed.secret,
            claimed.body,
            int(time.time()),
            *([claimed.previous_secret] if claimed.previous_secret else []),
        ),
        "Ordersmith-Event-Id": str(claimed.event_id),
        "Ordersmith-Delivery-Id": str(claimed.delivery_id),
        "Ordersmith-Delivery-Attempt": str(claimed.attempt_number),
    }
    status_code: int | None = None
    try:
        async with asyncio.timeout(ATTEMPT_TIMEOUT_SECONDS):
            async with client.stream("POST", claimed.url, content=claimed.body, headers=headers) as response:
                status_code = response.status_code
                await _read_start(response)
    except (TimeoutError, httpx.HTTPError):
        # Once the status is in, the rest of the answer running late or breaking off changes nothing.
        if status_code is None:
            raise
    return status_code


async def _read_start(response: httpx.Response) -> None:
    """Read the answer until it ends or ANSWER_READ_LIMIT bytes came; what was read is dropped."""
    # Raw bytes: a compressed answer is not inflated, so the limit is what crosses the wire.
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= ANSWER_READ_LIMIT:
            return


def _moved(claimed: Claimed, outcome: Outcome) -> Update | None:
    """How the outcome moves the delivery, under the conditions in which it still may; None if not at all."""
    delivery = update(WebhookDelivery).where(WebhookDelivery.id == claimed.delivery_id)
    if outcome.is_success:
        # The receiver has the event, whatever a concurrent attempt made of the delivery.
        return delivery.values(status=SUCCEEDED, next_attempt_at=None, delivered_at=outcome.attempted_at)
    if claimed.trigger == REPLAY:
        if claimed.previous_status != PENDING:
            return None  # a settled delivery's claim changed nothing to give back
        # A failed replay changes nothing but the log: a pending delivery gets back the schedule
        # its claim leased over, unless something else moved it since (an automatic attempt in
        # flight recorded its own outcome, another attempt succeeded).
        return delivery.where(
            WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at == claimed.lease_until
        ).values(next_attempt_at=claimed.previous_next_attempt_at)
    # Unless a later automatic attempt was claimed (this one's lease ran out) or it is settled.
    still_this_attempts = delivery.where(
        WebhookDelivery.status == PENDING,
        WebhookDelivery.automatic_attempt_count == claimed.automatic_number,
    )
    if claimed.automatic_number >= MAX_ATTEMPTS:
        return still_this_attempts.values(status=FAILED, next_attempt_at=None)
    return still_this_attempts.values(
        next_attempt_at=outcome.attempted_at + RETRY_DELAYS[claimed.automatic_number - 1]
    )


async def record(session: AsyncSession, claimed: Claimed, outcome: Outcome) -> bool:
    """Log the attempt and move its delivery on as far as the outcome still may (`_moved`).

    False, and nothing written, when the delivery is gone: its endpoint was deleted while
    it was being sent. The lock holds off such a delete until this transaction ends.
    """
    exists = await session.scalar(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.id == claimed.delivery_id)
        .with_for_update(key_share=True)
    )
    if exists is None:
        logger.info(
            "webhook delivery %s was deleted while being sent; its attempt is not logged", claimed.delivery_id
        )
        return False
    session.add(
        WebhookDeliveryAttempt(
            id=uuid7(),
            delivery_id=claimed.delivery_id,
            attempt_number=claimed.attempt_number,
            trigger=claimed.trigger,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
            attempted_at=outcome.attempted_at,
        )
    )
    # The last attempt recorded, whichever it is, shows on the delivery itself.
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == claimed.delivery_id)
        .values(
            last_status_code=outcome.status_code, last_error=outcome.error, updated_at=outcome.attempted_at
        )
    )
    moved = _moved(claimed, outcome)
    if moved is not None:
        await session.execute(moved)
    await session.flush()
    return True


async def send_due_for_tenant(
    database: Database, tenant: TenantContext, *, now: dt.datetime | None = None
) -> int:
    """Send what is due in one store, a batch at a time; how many attempts were made.

    `now` stands for the present when deciding what is due (tests move time with it).
    """
    now = now or dt.datetime.now(dt.UTC)
    sent = 0
    async with oidc.provider_client(config.current().network) as client:
        for _ in range(BATCHES_PER_RUN):
            async with database.tenant_session(tenant) as session:
                claimed = await claim_due(tenant, session, now)
            if not claimed:
                break
            outcomes = await asyncio.gather(*(post(client, item) for item in claimed))
            async with database.tenant_session(tenant) as session:
                for item, outcome in zip(claimed, outcomes, strict=True):
                    await record(session, item, outcome)
            sent += len(claimed)
            if len(claimed) < BATCH_SIZE:
                break
    return sent


async def _endpoint_and_due(database: Database, tenant: TenantContext, now: dt.datetime) -> tuple[bool, bool]:
    """Whether the store has an active endpoint, and whether a delivery is due."""
    async with database.tenant_session(tenant) as session:
        active = select(WebhookEndpoint.id).where(WebhookEndpoint.is_active.is_(True)).exists()
        due = (
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
            .exists()
        )
        has_endpoint, has_due = (await session.execute(select(active, due))).one()
        return bool(has_endpoint), bool(has_due)


async def _send_due_in_store(database: Database, tenant: TenantRecord, now: dt.datetime) -> int:
    """One store's part of a run: what is due there, if it still has an endpoint and the feature."""
    try:
        has_endpoint, has_due = await _endpoint_and_due(database, tenant.context, now)
        if not has_endpoint:
            await webhook_stores.unmark_if_stale(database, tenant.id)
            return 0
        if not has_due:
            return 0
        # A store that lost the feature keeps what it is owed until it has it again.
        if not (await resolve_entitlements(database, tenant.id)).has(Feature.WEBHOOKS):
            return 0
        return await send_due_for_tenant(database, tenant.context, now=now)
    except Exception:
        # Archived since it was listed, say: the next run gets it; the others go on.
        logger.exception("sending the webhooks of tenant %s failed", tenant.slug)
        return 0


async def send_due(database: Database) -> int:
    """The job: send what is due in the stores on the sender's list that have the `webhooks` feature.

    The list (`platform.webhook_stores`) holds the stores with an active endpoint, so a
    run looks into those, not into every store. A store found without one leaves the list
    once its mark is old enough (`webhook_stores.unmark_if_stale`). Up to STORES_AT_ONCE
    stores are served at the same time, the next one starting as soon as one is done, so
    a store whose receiver is slow delays no other store.
    """
    now = dt.datetime.now(dt.UTC)
    places = asyncio.Semaphore(STORES_AT_ONCE)
    sent = 0

    async def serve(tenant: TenantRecord) -> None:
        nonlocal sent
        try:
            # Awaited before adding: `sent += await …` would read `sent` before the wait.
            attempts = await _send_due_in_store(database, tenant, now)
            sent += attempts
        finally:
            places.release()

    async with asyncio.TaskGroup() as group:
        async for tenants in webhook_stores.marked_store_batches(database, batch_size=TENANT_BATCH_SIZE):
            for tenant in tenants:
                await places.acquire()
                group.create_task(serve(tenant))
    if sent:
        logger.info("webhooks: %d attempts made", sent)
    return sent


async def replay(database: Database, tenant: TenantContext, delivery_id: uuid.UUID) -> DeliveryView:
    """Send a delivery again now, whatever its status; the attempt joins its log (trigger `replay`)."""
    now = dt.datetime.now(dt.UTC)
    async with database.tenant_session(tenant) as session:
        query = (
            select(WebhookDelivery, WebhookEndpoint)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id == delivery_id)
            .with_for_update(of=WebhookDelivery)
        )
        rows = [(delivery, endpoint) for delivery, endpoint in await session.execute(query)]
        if not rows:
            raise delivery_missing()
        (claimed,) = await _claim(tenant, session, rows, now, REPLAY)
    async with oidc.provider_client(config.current().network) as client:
        outcome = await post(client, claimed)
    async with database.tenant_session(tenant) as session:
        await record(session, claimed, outcome)
        return await get_delivery(tenant, session, delivery_id)


JOBS = [
    # First attempts and retries alike; claims are leased, so overlapping runs never double-send.
    PeriodicJob(name="webhooks.deliver", every_seconds=SEND_EVERY_SECONDS, run=send_due),
    # Listed here, beside the sender, because this list is the webhooks context's jobs.
    PeriodicJob(
        name="webhooks.purge", every_seconds=retention.PURGE_EVERY_SECONDS, run=retention.purge_deliveries
    ),
]
