"""Behind a trusted proxy, the forwarded client is who gets counted, locked and audited."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import uuid
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import insert, select

from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.identity import lockout
from ordersmith.platform.identity.accounts import TENANT_REALM
from ordersmith.platform.identity.models import AttemptCounter, AuditEntry
from ordersmith.platform.settings import Settings
from tests.support.http import seen_from, sign_up

PROXY = "192.0.2.10"
CLIENT = "203.0.113.7"
NEIGHBOUR = "203.0.113.8"
STRANGER = "198.51.100.9"


@dataclasses.dataclass
class Peer:
    """The address the app sees the connection come from, changed between requests."""

    host: str = PROXY


@pytest.fixture
def peer() -> Peer:
    return Peer()


@pytest.fixture
async def client(settings: Settings, peer: Peer) -> AsyncIterator[AsyncTestClient[Litestar]]:
    behind_proxy = dataclasses.replace(settings, trusted_proxies=(ipaddress.ip_network("192.0.2.0/24"),))
    async with AsyncTestClient(seen_from(create_app(behind_proxy), lambda: peer.host)) as client:
        yield client


async def test_the_lockout_counts_the_forwarded_client_and_ignores_a_spoofed_header(
    client: AsyncTestClient[Litestar], database: Database, peer: Peer
) -> None:
    store = (await sign_up(client))["tenant"]
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        await session.execute(
            insert(AttemptCounter).values(
                key=lockout.address_key(TENANT_REALM, CLIENT),
                attempts=50,
                last_attempt_at=now,
                blocked_until=now + dt.timedelta(minutes=15),
            )
        )

    async def sign_in(forwarded_for: str | None) -> tuple[int, str]:
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        response = await client.post(
            "/api/v1/auth/token",
            json={
                "email": f"{uuid.uuid4().hex[:10]}@example.com",
                "password": "wrong",
                "tenant": store["slug"],
            },
            headers=headers,
        )
        return response.status_code, response.json()["code"]

    # Through the proxy, the locked client is refused; its neighbour is not.
    assert await sign_in(f"10.1.2.3, {CLIENT}") == (429, "too_many_attempts")
    assert await sign_in(NEIGHBOUR) == (401, "invalid_credentials")
    # A direct caller naming the locked client is taken for itself.
    peer.host = STRANGER
    assert await sign_in(CLIENT) == (401, "invalid_credentials")
    # The locked client itself, without the proxy, is still locked.
    peer.host = CLIENT
    assert await sign_in(None) == (429, "too_many_attempts")

    async with database.platform_session() as session:
        counted = dict(
            (
                await session.execute(
                    select(AttemptCounter.key, AttemptCounter.attempts).where(
                        AttemptCounter.key.in_(
                            [lockout.address_key(TENANT_REALM, host) for host in (NEIGHBOUR, STRANGER, PROXY)]
                        )
                    )
                )
            ).all()
        )
        audited = (
            await session.scalars(
                select(AuditEntry.client_address)
                .where(
                    AuditEntry.tenant_id == uuid.UUID(store["id"]), AuditEntry.action == "auth.sign_in_failed"
                )
                .order_by(AuditEntry.id)
            )
        ).all()
    assert counted == {
        lockout.address_key(TENANT_REALM, NEIGHBOUR): 1,
        lockout.address_key(TENANT_REALM, STRANGER): 1,
    }
    assert audited == [NEIGHBOUR, STRANGER]
