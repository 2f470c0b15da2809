"""A webhook receiver on loopback (records requests, answers as told), and running the delivery path."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.events import Event, EventConsumer, consumers
from ordersmith.platform.models import OutboxEvent
from ordersmith.platform.tenancy import TenantRecord
from ordersmith.platform.workers import deliver_event
from ordersmith.tenants.webhooks.deliveries import CONSUMER_NAME
from ordersmith.tenants.webhooks.sending import send_due_for_tenant
from tests.support.loopback import serve_on_loopback


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _open_gate() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


@dataclass
class Receiver:
    """Records requests; answers each with the next scripted status, then with `default_status`."""

    base_url: str = ""
    default_status: int = 200
    requests: list[Received] = field(default_factory=list)
    _script: deque[int] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Closed by `hold`: requests are recorded at once but answered only after `release`.
    _gate: threading.Event = field(default_factory=_open_gate)

    def hold(self) -> None:
        """Answer nothing until `release`, as a slow receiver: the sender's POSTs stay in flight."""
        self._gate.clear()

    def release(self) -> None:
        """Answer the held requests, and the next ones at once."""
        self._gate.set()

    async def received(self, count: int) -> None:
        """Wait until `count` requests have arrived (answered or held); 10 s at most."""
        async with asyncio.timeout(10):
            while True:
                with self._lock:
                    if len(self.requests) >= count:
                        return
                await asyncio.sleep(0.01)

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order."""
        with self._lock:
            self._script.extend(statuses)

    def url(self, path: str = "/hooks") -> str:
        return f"{self.base_url}{path}"

    def to(self, path: str) -> list[Received]:
        """The requests that reached `path`, in order."""
        with self._lock:
            return [item for item in self.requests if item.path == path]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
        with self._lock:
            self.requests.append(Received(scope["path"], headers, body))
            status = self._script.popleft() if self._script else self.default_status
        if not self._gate.is_set():
            # Within the sender's 10 s timeout, so a test that forgets to release fails rather than hangs.
            await asyncio.to_thread(self._gate.wait, 8.0)
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})


@contextlib.contextmanager
def serve_receiver() -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 for the block."""
    receiver = Receiver()

    def build(base_url: str) -> Receiver:
        receiver.base_url = base_url
        return receiver

    with serve_on_loopback(build):
        yield receiver


async def outbox_events(database: Database, tenant_id: uuid.UUID) -> list[Event]:
    """The store's events in the outbox, oldest first."""
    async with database.platform_session() as session:
        rows = (
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.tenant_id == tenant_id)
                .order_by(OutboxEvent.created_at, OutboxEvent.id)
            )
        ).all()
    return [Event(row.id, row.tenant_id, row.topic, row.payload, row.created_at) for row in rows]


def consumer_named(name: str) -> EventConsumer:
    """The registered consumer of this name."""
    return next(consumer for consumer in consumers.all() if consumer.name == name)


def fan_out_consumer() -> EventConsumer:
    """The registered consumer that turns events into deliveries."""
    return consumer_named(CONSUMER_NAME)


async def deliver_outbox(database: Database, tenant_id: uuid.UUID, consumer: EventConsumer) -> int:
    """Hand a store's outbox events of the consumer's topics to it, as workers would; how many ran now."""
    ran = 0
    for event in await outbox_events(database, tenant_id):
        if event.topic in consumer.topics:
            ran += await deliver_event(database, consumer, event)
    return ran


async def fan_out(database: Database, tenant: TenantRecord) -> int:
    """Hand the store's outbox events to the fan-out consumer as workers would; how many ran now."""
    return await deliver_outbox(database, tenant.id, fan_out_consumer())


async def pump(database: Database, tenant: TenantRecord, *, now: dt.datetime | None = None) -> int:
    """Fan the store's events out, then send what is due (as the sender job would); attempts made."""
    await fan_out(database, tenant)
    return await send_due_for_tenant(database, tenant.context, now=now)
