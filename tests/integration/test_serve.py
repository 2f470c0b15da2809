"""`ordersmith serve`, the production command, as an operator runs it: a real server process."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import AuditEntry
from tests.support.cli import run_ordersmith, start_server, wait_until_healthy
from tests.support.http import sign_up
from tests.support.smtp import free_port


@pytest.fixture
def served(database_url: str) -> Iterator[str]:
    """The base URL of `ordersmith serve` on a free port, stopped with SIGTERM afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "ORDERSMITH_ENV": "test",
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "SIGNUP_LIMIT_PER_HOUR": "100000",
    }
    env.pop("BROKER_URL", None)
    env.pop("TRUSTED_PROXIES", None)
    process = start_server("serve", "--port", str(port), env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, base_url, command="serve", seconds=60)
        yield base_url
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it handled: killed by
    # SIGTERM, as a supervisor expects, with nothing on stderr.
    assert (process.returncode, errors) == (-signal.SIGTERM, "")


async def test_a_forwarded_for_header_from_a_local_peer_is_not_taken_without_trusted_proxies(
    served: str, database: Database
) -> None:
    async with httpx.AsyncClient(base_url=served, timeout=30) as client:
        signed_up = await sign_up(client)
        refused = await client.post(
            "/api/v1/auth/token",
            json={"email": signed_up["email"], "password": "wrong", "tenant": signed_up["tenant"]["slug"]},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
    assert (refused.status_code, refused.json()["code"]) == (401, "invalid_credentials")
    # The peer is the client: uvicorn's own proxy-header reading, which would trust a
    # local peer's header, is off; TRUSTED_PROXIES (unset here) is the only authority.
    async with database.platform_session() as session:
        audited = (
            await session.scalars(
                select(AuditEntry.client_address).where(
                    AuditEntry.tenant_id == uuid.UUID(signed_up["tenant"]["id"]),
                    AuditEntry.action == "auth.sign_in_failed",
                )
            )
        ).all()
    assert audited == ["127.0.0.1"]


def test_serve_refuses_to_start_without_a_database_url() -> None:
    result = run_ordersmith("serve", database_url="")
    assert result.returncode == 1
    assert result.stderr == (
        "error: serve needs DATABASE_URL (and `ordersmith migrate` run first); "
        "`ordersmith run` serves with an embedded database instead\n"
    )
