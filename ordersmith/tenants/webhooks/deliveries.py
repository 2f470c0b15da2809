"""Deliveries: what each event owes each endpoint that wants it, and the delivery log.

The consumer `webhooks.fan_out` runs in the event's tenant transaction (once per event,
through the inbox) and only writes rows: one `pending` delivery per active endpoint that
subscribed to the topic and existed when the event happened, unique per (event,
endpoint), due at once. Sending is
`sending.py`'s, outside any transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.events import Event, consumers
from ordersmith.platform.ids import uuid7
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.tenants.webhooks.endpoints import get_endpoint
from ordersmith.tenants.webhooks.errors import WebhookDeliveryNotFoundError
from ordersmith.tenants.webhooks.models import (
    DELIVERY_STATUSES,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from ordersmith.tenants.webhooks.topics import ALL_TOPICS, WEBHOOK_TOPICS

CONSUMER_NAME = "webhooks.fan_out"
PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"


@dataclass(frozen=True)
class DeliveryView:
    """A delivery with its attempts, oldest first."""

    delivery: WebhookDelivery
    attempts: list[WebhookDeliveryAttempt]


def envelope(event: Event) -> dict[str, Any]:
    """The JSON document an endpoint receives for `event`."""
    return {
        "id": str(event.id),
        "type": event.topic,
        "created": int(event.created_at.timestamp()),
        "data": event.payload,
    }


@consumers.consumer(CONSUMER_NAME, *WEBHOOK_TOPICS)
async def fan_out(tenant: TenantContext, session: AsyncSession, event: Event) -> None:
    """Owe the event to every active endpoint that wants its topic; an event seen before adds nothing."""
    endpoint_ids = list(
        await session.scalars(
            select(WebhookEndpoint.id).where(
                WebhookEndpoint.is_active.is_(True),
                WebhookEndpoint.topics.overlap([event.topic, ALL_TOPICS]),
                # What happened before an endpoint existed is not owed to it, however late the relay.
                WebhookEndpoint.created_at <= event.created_at,
            )
        )
    )
    if not endpoint_ids:
        return
    body = envelope(event)
    await session.execute(
        pg_insert(WebhookDelivery)
        .values(
            [
                {
                    "id": uuid7(),
                    "endpoint_id": endpoint_id,
                    "event_id": event.id,
                    "topic": event.topic,
                    "body": body,
                    "status": PENDING,
                    "next_attempt_at": event.created_at,
                }
                for endpoint_id in endpoint_ids
            ]
        )
        .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"])
    )


def delivery_missing() -> WebhookDeliveryNotFoundError:
    return WebhookDeliveryNotFoundError(
        "no webhook delivery with this id in this store; list an endpoint's deliveries to find it"
    )


def delivery_id_of(text: str) -> uuid.UUID:
    """The delivery id in a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise delivery_missing() from None


async def _attempts_of(
    session: AsyncSession, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookDeliveryAttempt]]:
    rows = await session.scalars(
        select(WebhookDeliveryAttempt)
        .where(WebhookDeliveryAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookDeliveryAttempt.attempt_number, WebhookDeliveryAttempt.attempted_at)
    )
    attempts: dict[uuid.UUID, list[WebhookDeliveryAttempt]] = defaultdict(list)
    for row in rows:
        attempts[row.delivery_id].append(row)
    return attempts


async def list_deliveries(
    tenant: TenantContext,
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    page: PageRequest,
    *,
    status: str | None = None,
) -> Page[DeliveryView]:
    """An endpoint's deliveries with their attempts, newest first; `status` keeps one status only."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationFailedError(
            "unknown delivery status",
            errors=[FieldError("status", f"must be one of {', '.join(DELIVERY_STATUSES)}, or left out")],
        )
    await get_endpoint(tenant, session, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    query = page.apply(query, WebhookDelivery.created_at, WebhookDelivery.id, newest_first=True)
    rows = list(await session.scalars(query.execution_options(populate_existing=True)))
    cut = page.cut(rows, lambda row: (row.created_at, row.id))
    attempts = await _attempts_of(session, [row.id for row in cut.items])
    return Page([DeliveryView(row, attempts.get(row.id, [])) for row in cut.items], cut.next_cursor)


async def get_delivery(tenant: TenantContext, session: AsyncSession, delivery_id: uuid.UUID) -> DeliveryView:
    """One delivery with its attempts; 404 `webhook_delivery_not_found` if the store has no such one."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .execution_options(populate_existing=True)
    )
    row = (await session.scalars(query)).one_or_none()
    if row is None:
        raise delivery_missing()
    return DeliveryView(row, (await _attempts_of(session, [row.id])).get(row.id, []))
