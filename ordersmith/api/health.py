"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec

from ordersmith.api.access import PUBLIC
from ordersmith.platform.database import Database
from ordersmith.platform.workers import broker_is_reachable

READINESS_TIMEOUT_SECONDS = 2.0


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    database: str
    broker: str


@get(
    "/healthz",
    operation_id="getHealth",
    summary="Report that the process is up.",
    opt=PUBLIC,
    tags=["health"],
)
async def healthz() -> Health:
    """Answer as long as the process serves HTTP."""
    return Health(status="ok")


async def _database_ready(database: Database) -> bool:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            await database.ping()
    except Exception:
        return False
    return True


@get(
    "/readyz",
    operation_id="getReadiness",
    summary="Report whether the database and the broker are reachable.",
    opt=PUBLIC,
    tags=["health"],
    responses={
        503: ResponseSpec(
            Readiness, description="The database or the broker is unreachable.", generate_examples=False
        )
    },
)
async def readyz(state: State) -> Response[Readiness]:
    """200 when PostgreSQL and the broker answer, else 503 naming what is down."""
    database_ok = await _database_ready(state.database)
    broker_ok = await _broker_ready(state.broker)
    body = Readiness(
        status="ready" if database_ok and broker_ok else "unavailable",
        database="ok" if database_ok else "unreachable",
        broker="ok" if broker_ok else "unreachable",
    )
    return Response(body, status_code=200 if database_ok and broker_ok else 503)


async def _broker_ready(broker: Any) -> bool:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            return await asyncio.to_thread(broker_is_reachable, broker)
    except Exception:
        return False
