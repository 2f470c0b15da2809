"""Mail helpers for tests: choose where emails go, deliver the queued ones, read their links."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, select

from ordersmith.platform.database import Database
from ordersmith.platform.events import Event, EventConsumer, consumers
from ordersmith.platform.mail import EMAIL_REQUESTED, delivery
from ordersmith.platform.mail.sealing import current_sealer, open_context
from ordersmith.platform.models import OutboxEvent
from ordersmith.platform.outbox import relay_until_empty
from ordersmith.platform.settings import Settings
from ordersmith.platform.workers import deliver_event

_TOKEN = re.compile(r"[?&]token=([A-Za-z0-9_\-]+)")


@contextmanager
def mail_settings(settings: Settings) -> Iterator[None]:
    """Deliver emails with `settings` (SMTP or the mailbox) inside the block only."""
    delivery.configure(settings)
    try:
        yield
    finally:
        delivery.configure(None)


def mail_consumer() -> EventConsumer:
    """The registered consumer that sends emails."""
    return next(consumer for consumer in consumers.all() if consumer.name == delivery.CONSUMER_NAME)


async def run_email_producers(database: Database) -> None:
    """Run the platform consumers that queue emails (a password reset request's) on what is pending.

    As a worker would, before the emails are looked at; idempotent like a worker, so the
    relay later hands them the same events for nothing.
    """
    async with database.platform_session() as session:
        rows = (
            await session.execute(
                select(OutboxEvent)
                .where(OutboxEvent.published_at.is_(None))
                .order_by(OutboxEvent.created_at, OutboxEvent.id)
            )
        ).scalars()
        pending = [Event(row.id, row.tenant_id, row.topic, row.payload, row.created_at) for row in rows]
    for event in pending:
        for consumer in consumers.for_topic(event.topic):
            if consumer.handle_platform is not None and consumer.name != delivery.CONSUMER_NAME:
                await deliver_event(database, consumer, event)


async def relay_emails(database: Database) -> list[Event]:
    """Relay everything committed so far; return the email events, oldest first, undelivered."""
    await run_email_producers(database)
    queued: list[Event] = []

    def publish(consumer: EventConsumer, event: Event) -> None:
        if consumer.name == delivery.CONSUMER_NAME:
            queued.append(event)

    await relay_until_empty(database, consumers, publish)
    return queued


async def deliver_emails(database: Database) -> list[Event]:
    """Relay everything committed so far and run the email consumer on each email event.

    Deterministic: no broker and no worker thread, the same `deliver_event` a worker
    runs. Returns the email events that were delivered now (not before).
    """
    sender = mail_consumer()
    return [event for event in await relay_emails(database) if await deliver_event(database, sender, event)]


def token_in(text: str) -> str:
    """The `token` query parameter of the (first) link in an email."""
    found = _TOKEN.search(text)
    assert found is not None, f"no link with a token in: {text!r}"
    return found.group(1)


@dataclass(frozen=True)
class QueuedEmail:
    """An email event as the outbox row holds it."""

    event_id: uuid.UUID
    tenant_id: uuid.UUID | None
    payload: dict[str, Any]
    # The payload as PostgreSQL returns it: what anyone reading the table or a backup sees.
    stored_text: str

    def context(self) -> dict[str, Any]:
        """The whole context, secret values opened as the delivery opens them."""
        return open_context(current_sealer(), self.tenant_id, self.payload)


async def queued_email(database: Database, to: str, template: str) -> QueuedEmail:
    """The newest email of `template` queued for `to`, read straight from `platform.outbox`."""
    await run_email_producers(database)
    async with database.platform_session() as session:
        row = (
            await session.execute(
                select(
                    OutboxEvent.id,
                    OutboxEvent.tenant_id,
                    OutboxEvent.payload,
                    cast(OutboxEvent.payload, Text).label("stored_text"),
                )
                .where(
                    OutboxEvent.topic == EMAIL_REQUESTED,
                    OutboxEvent.payload["to"].astext == to,
                    OutboxEvent.payload["template"].astext == template,
                )
                .order_by(OutboxEvent.created_at.desc(), OutboxEvent.id.desc())
                .limit(1)
            )
        ).first()
    assert row is not None, f"no {template} email queued for {to}"
    event_id, tenant_id, payload, stored_text = row
    return QueuedEmail(event_id, tenant_id, payload, stored_text)
