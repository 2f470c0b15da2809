"""The platform's own periodic jobs: purges that keep its tables from growing without end."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import ColumnElement, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ordersmith.platform import idempotency
from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import ActionToken, AttemptCounter, Invitation, RefreshToken
from ordersmith.platform.models import PlatformBase, ProcessedEvent
from ordersmith.platform.outbox import purge_published
from ordersmith.platform.tenancy import active_tenant_batches
from ordersmith.platform.tenant_tables import TenantProcessedEvent
from ordersmith.platform.workers import PeriodicJob

logger = logging.getLogger(__name__)

# Published events are kept a week for inspection and replay, then deleted.
OUTBOX_RETENTION = dt.timedelta(days=7)
# Refresh tokens, emailed links and invitations that no longer work are kept a month, to
# answer "my link did not work" questions, then deleted.
ENDED_TOKEN_RETENTION = dt.timedelta(days=30)
# An inbox row must outlive every redelivery of its event, or the effect would run twice:
# the outbox keeps events a week and the broker gives up after hours, so a month is ample.
PROCESSED_EVENT_RETENTION = dt.timedelta(days=30)
# Attempt counters (sign-in, reset and sign-up limits) idle this long are deleted: longer
# than any policy's window (an hour at most), past which a counter starts afresh anyway.
ATTEMPT_COUNTER_RETENTION = dt.timedelta(days=1)
# Rows deleted per statement, so that a backlog never holds one long transaction.
PURGE_BATCH_SIZE = 5000
TENANT_BATCH_SIZE = 100


async def purge_outbox(database: Database) -> None:
    """Delete outbox rows published more than a week ago."""
    deleted = await purge_published(database, older_than=OUTBOX_RETENTION)
    logger.info("outbox purge deleted %d published events", deleted)


async def _delete_in_batches(
    database: Database,
    table: type[PlatformBase],
    condition: ColumnElement[bool],
    *key: InstrumentedAttribute[Any],
) -> int:
    """Delete the rows of `table` that meet `condition`, a batch per transaction; return how many."""
    total = 0
    while True:
        batch = select(*key).where(condition).limit(PURGE_BATCH_SIZE)
        async with database.platform_session() as session:
            result = await session.execute(
                delete(table).where(tuple_(*key).in_(batch)).execution_options(synchronize_session=False)
            )
        deleted = int(result.rowcount)  # type: ignore[attr-defined]
        total += deleted
        if deleted < PURGE_BATCH_SIZE:
            return total


async def purge_refresh_tokens(database: Database) -> int:
    """Delete refresh tokens that expired more than a month ago; return how many."""
    # Used and revoked tokens stay until they expire: presenting a used one again is how
    # a leaked copy is detected (it ends the whole family).
    cutoff = dt.datetime.now(dt.UTC) - ENDED_TOKEN_RETENTION
    return await _delete_in_batches(database, RefreshToken, RefreshToken.expires_at < cutoff, RefreshToken.id)


async def purge_action_tokens(database: Database) -> int:
    """Delete email-verification and password-reset tokens used or expired a month ago; how many."""
    cutoff = dt.datetime.now(dt.UTC) - ENDED_TOKEN_RETENTION
    ended = (ActionToken.used_at < cutoff) | (ActionToken.expires_at < cutoff)
    return await _delete_in_batches(database, ActionToken, ended, ActionToken.id)


async def purge_invitations(database: Database) -> int:
    """Delete invitations accepted, withdrawn or expired a month ago; return how many."""
    # Who invited whom stays in the audit trail; the row only served the link.
    cutoff = dt.datetime.now(dt.UTC) - ENDED_TOKEN_RETENTION
    ended = (
        (Invitation.accepted_at < cutoff)
        | (Invitation.revoked_at < cutoff)
        | (Invitation.expires_at < cutoff)
    )
    return await _delete_in_batches(database, Invitation, ended, Invitation.id)


async def purge_attempt_counters(database: Database) -> int:
    """Delete attempt counters that no longer slow down or lock anyone; return how many."""
    now = dt.datetime.now(dt.UTC)
    idle = (AttemptCounter.last_attempt_at < now - ATTEMPT_COUNTER_RETENTION) & (
        AttemptCounter.blocked_until < now
    )
    return await _delete_in_batches(database, AttemptCounter, idle, AttemptCounter.key)


async def purge_identity(database: Database) -> None:
    """Delete ended refresh tokens, emailed links and invitations, and idle attempt counters."""
    counts = {
        "refresh tokens": await purge_refresh_tokens(database),
        "action tokens": await purge_action_tokens(database),
        "invitations": await purge_invitations(database),
        "attempt counters": await purge_attempt_counters(database),
    }
    logger.info("identity purge deleted %s", ", ".join(f"{count} {what}" for what, count in counts.items()))


async def purge_processed_events(database: Database) -> int:
    """Delete consumers' inbox rows older than a month, the platform's and every active tenant's; how many."""
    cutoff = dt.datetime.now(dt.UTC) - PROCESSED_EVENT_RETENTION
    total = await _delete_in_batches(
        database,
        ProcessedEvent,
        ProcessedEvent.processed_at < cutoff,
        ProcessedEvent.consumer,
        ProcessedEvent.event_id,
    )

    async def purge_inbox(session: AsyncSession) -> int:
        result = await session.execute(
            delete(TenantProcessedEvent)
            .where(TenantProcessedEvent.processed_at < cutoff)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    # Archived tenants receive no events; their inboxes wait until they are restored.
    return total + await _in_each_active_tenant(database, "inbox", purge_inbox)


async def _in_each_active_tenant(
    database: Database, what: str, purge: Callable[[AsyncSession], Awaitable[int]]
) -> int:
    """Run one purge in every active tenant, a batch of tenants at a time; rows deleted."""
    total = 0
    async for tenants in active_tenant_batches(database, batch_size=TENANT_BATCH_SIZE):
        for tenant in tenants:
            try:
                async with database.tenant_session(tenant.context) as session:
                    total += await purge(session)
            except Exception:
                # Archived since it was listed, say: the next run gets it; the others go on.
                logger.exception("purging the %s of tenant %s failed", what, tenant.slug)
    return total


async def purge_idempotency_keys(database: Database) -> int:
    """Forget idempotency keys older than a day in every active tenant (ADR 0007); how many."""
    return await _in_each_active_tenant(database, "idempotency keys", idempotency.purge)


async def purge_inboxes(database: Database) -> None:
    """The daily sweep of replay protection: month-old inbox rows everywhere and day-old
    idempotency keys in every tenant; log how many."""
    deleted = await purge_processed_events(database)
    keys = await purge_idempotency_keys(database)
    logger.info("inbox purge deleted %d processed events and %d idempotency keys", deleted, keys)


PLATFORM_JOBS = [
    PeriodicJob(name="outbox.purge", every_seconds=3600, run=purge_outbox),
    PeriodicJob(name="identity.purge", every_seconds=3600, run=purge_identity),
    PeriodicJob(name="inbox.purge", every_seconds=24 * 3600, run=purge_inboxes),
]
