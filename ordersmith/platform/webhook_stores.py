"""The stores the webhook sender looks into, so that its runs cost what the stores with endpoints cost.

Tenant roles cannot write the platform schema, so a store is marked from a platform
transaction of its own, committed just before the store's transaction that makes or
re-activates an endpoint. A mark without its endpoint (that transaction failed) only
costs the sender a look; an endpoint without a mark cannot happen, because the sender
removes a mark only when it sees no active endpoint *and* the mark is older than
`UNMARK_AFTER`: a marking transaction still open after that long is not a request's.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert

from ordersmith.platform.database import Database
from ordersmith.platform.models import Tenant, TenantStatus, WebhookStore
from ordersmith.platform.tenancy import TenantRecord, record_batches

UNMARK_AFTER = dt.timedelta(hours=1)


async def mark(database: Database, tenant_id: uuid.UUID) -> None:
    """Put the store on the sender's list (again); call it before the store's transaction commits."""
    statement = insert(WebhookStore).values(tenant_id=tenant_id)
    statement = statement.on_conflict_do_update(
        index_elements=[WebhookStore.tenant_id], set_={"marked_at": func.now()}
    )
    async with database.platform_session() as session:
        await session.execute(statement)


async def unmark_if_stale(database: Database, tenant_id: uuid.UUID) -> bool:
    """Take a store without active endpoints off the list, unless it was marked lately; whether it was."""
    statement = (
        delete(WebhookStore)
        .where(WebhookStore.tenant_id == tenant_id, WebhookStore.marked_at < func.now() - UNMARK_AFTER)
        .returning(WebhookStore.tenant_id)
    )
    async with database.platform_session() as session:
        return (await session.scalar(statement)) is not None


def marked_store_batches(database: Database, *, batch_size: int) -> AsyncIterator[list[TenantRecord]]:
    """The active stores on the list, `batch_size` at a time (`tenancy.record_batches`)."""
    return record_batches(
        database,
        lambda query: query.join(WebhookStore, WebhookStore.tenant_id == Tenant.id).where(
            Tenant.status == TenantStatus.ACTIVE.value
        ),
        batch_size=batch_size,
    )
