"""Mail helpers for tests: choose where emails go, deliver the queued ones, read their links."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from ordersmith.platform.database import Database
from ordersmith.platform.events import Event, EventConsumer, consumers
from ordersmith.platform.mail import delivery
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


async def relay_emails(database: Database) -> list[Event]:
    """Relay everything committed so far; return the email events, oldest first, undelivered."""
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
