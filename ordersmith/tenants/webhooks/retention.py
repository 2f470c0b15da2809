"""Purging the delivery log: a settled delivery is kept `RETENTION`, then deleted with its attempts.

A delivery is settled once it `succeeded` or `failed` (dead-lettered); a pending one is
still owed and is never purged. Its age runs from its last change (`updated_at`: the
last attempt recorded, a replay's included), and it must be as old by its creation too,
which lets the purge walk each endpoint's deliveries by the index on (endpoint,
created_at). Each batch is a short transaction of its own, so a store with a large log
never holds one long transaction; the attempts go with their delivery (ON DELETE CASCADE).

The daily job `webhooks.purge` runs it in every active store, not only those on the
sender's list: a store whose endpoints are all switched off keeps a log too.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.tenancy import active_tenant_batches
from ordersmith.tenants.webhooks.deliveries import FAILED, SUCCEEDED
from ordersmith.tenants.webhooks.models import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

# Long enough to answer "did you send us that last month?" from the log; replaying an
# event older than that is no longer possible.
RETENTION = dt.timedelta(days=30)
# Deliveries deleted per transaction (each with its few attempts).
PURGE_BATCH_SIZE = 500
PURGE_EVERY_SECONDS = 24 * 3600
TENANT_BATCH_SIZE = 100


async def _endpoint_ids(session: AsyncSession) -> list[uuid.UUID]:
    return list(await session.scalars(select(WebhookEndpoint.id).order_by(WebhookEndpoint.id)))


async def _purge_endpoint(
    database: Database, tenant: TenantContext, endpoint_id: uuid.UUID, cutoff: dt.datetime
) -> int:
    """Delete one endpoint's deliveries settled before `cutoff`, a batch per transaction; how many."""
    settled_before_cutoff = (
        WebhookDelivery.status.in_((SUCCEEDED, FAILED)),
        WebhookDelivery.created_at < cutoff,
        WebhookDelivery.updated_at < cutoff,
    )
    total = 0
    while True:
        batch = (
            select(WebhookDelivery.id)
            .where(WebhookDelivery.endpoint_id == endpoint_id, *settled_before_cutoff)
            .limit(PURGE_BATCH_SIZE)
        )
        async with database.tenant_session(tenant) as session:
            result = await session.execute(
                # The conditions again on the row itself: one a replay changed meanwhile is kept.
                delete(WebhookDelivery)
                .where(WebhookDelivery.id.in_(batch), *settled_before_cutoff)
                .execution_options(synchronize_session=False)
            )
        deleted = int(result.rowcount)  # type: ignore[attr-defined]
        total += deleted
        if deleted < PURGE_BATCH_SIZE:
            return total


async def purge_store(database: Database, tenant: TenantContext, *, now: dt.datetime | None = None) -> int:
    """Delete a store's deliveries settled more than RETENTION ago, with their attempts; how many.

    `now` stands for the present (tests move time with it).
    """
    cutoff = (now or dt.datetime.now(dt.UTC)) - RETENTION
    async with database.tenant_session(tenant) as session:
        endpoint_ids = await _endpoint_ids(session)
    deleted = 0
    for endpoint_id in endpoint_ids:
        deleted += await _purge_endpoint(database, tenant, endpoint_id, cutoff)
    return deleted


async def purge_deliveries(database: Database) -> int:
    """The job: purge the settled deliveries past their retention in every active store; how many."""
    total = 0
    # Archived stores send nothing; their logs wait until they are restored.
    async for tenants in active_tenant_batches(database, batch_size=TENANT_BATCH_SIZE):
        for tenant in tenants:
            try:
                total += await purge_store(database, tenant.context)
            except Exception:
                # Archived since it was listed, say: the next run gets it; the others go on.
                logger.exception("purging the webhook deliveries of tenant %s failed", tenant.slug)
    logger.info("webhook purge deleted %d settled deliveries", total)
    return total
