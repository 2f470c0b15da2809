"""The app behind a real HTTP server in the test's event loop, and bursts of requests at it.

Litestar's AsyncTestClient hands each request to the app in a portal thread and blocks
until it is answered, so `asyncio.gather` over it runs requests one after another. These
helpers serve the app with uvicorn on a local port instead: the requests of a burst are
in flight together and each holds its own database connection.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from litestar import Litestar
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database


@dataclass
class ConnectionPeak:
    """How many runtime connections a database's requests held at once, at most."""

    current: int = 0
    peak: int = 0

    def watch(self, database: Database) -> None:
        event.listen(database.runtime.sync_engine, "checkout", self._checked_out)
        event.listen(database.runtime.sync_engine, "checkin", self._checked_in)

    def _checked_out(self, *_: Any) -> None:
        self.current += 1
        self.peak = max(self.peak, self.current)

    def _checked_in(self, *_: Any) -> None:
        self.current -= 1


@asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[str]:
    """Serve the app with uvicorn on a free local port; yields its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_config=None, access_log=False, ws="none", backlog=1024)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            if task.done():
                await task  # it failed to start: raise why
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listener.close()


async def post_all(
    base_url: str, path: str, headers: dict[str, str], bodies: Sequence[dict[str, Any]]
) -> list[httpx.Response]:
    """POST every body at once, each on its own connection; the responses in body order."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:
        return await asyncio.gather(*(client.post(path, json=body) for body in bodies))


async def backend_pid(session: AsyncSession) -> int:
    """The PostgreSQL backend serving this session's transaction."""
    pid: int = await session.scalar(text("SELECT pg_backend_pid()"))
    return pid


async def wait_until_blocked(database: Database, pid: int, by: int) -> None:
    """Return once backend `pid` waits for a lock that backend `by` holds (within 10 s)."""
    try:
        async with asyncio.timeout(10):
            while True:
                async with database.platform_session() as session:
                    blockers = await session.scalar(text("SELECT pg_blocking_pids(:pid)"), {"pid": pid})
                if by in (blockers or []):
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"backend {pid} never waited for backend {by}") from None


async def wait_for_lock_waiters(database: Database, count: int, *, owners_too: bool = False) -> None:
    """Return once `count` statements of this database wait on a lock (30 s at most).

    Each look is its own transaction: PostgreSQL keeps one snapshot of pg_stat_activity
    for a whole transaction, so polling inside one would never see a later waiter. With
    `owners_too` it looks as the owner, in pg_locks: the runtime login is not shown what
    the owner login's backends (a tenant drop, a migration) wait on.
    """
    waiting = None
    for _ in range(3000):
        if owners_too:
            async with database.owner.connect() as connection:
                waiting = await connection.scalar(
                    text(
                        "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND pid IN"
                        " (SELECT pid FROM pg_stat_activity WHERE datname = current_database())"
                    )
                )
        else:
            async with database.platform_session() as session:
                waiting = await session.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
        if waiting == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} changes waiting on a lock, saw {waiting}")
