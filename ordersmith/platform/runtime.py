"""Opening the process's resources: the database (embedded or not), checked reachable."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from ordersmith.platform.database import Database, to_libpq_url
from ordersmith.platform.embedded import ensure_database, start_embedded_postgres
from ordersmith.platform.errors import UnreachableError
from ordersmith.platform.settings import Settings

EMBEDDED_DATABASE = "ordersmith"


def describe_url(url: str) -> str:
    """Where a URL points, without its password."""
    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host") or "local socket"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.get_backend_name()} at {host}{port}/{parsed.database or ''}"


async def check_reachable(url: str, timeout_seconds: float = 5.0) -> None:
    """Connect once; raise `UnreachableError` with the reason if PostgreSQL does not answer."""
    try:
        connection = await asyncpg.connect(to_libpq_url(url), timeout=timeout_seconds)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        reason = str(error) or type(error).__name__
        raise UnreachableError(f"cannot reach PostgreSQL ({describe_url(url)}): {reason}") from None
    await connection.close()


async def resolve_database_url(settings: Settings, embedded_database: str = EMBEDDED_DATABASE) -> str:
    """DATABASE_URL if set, else the embedded server's database (started if needed)."""
    if settings.database.url is not None:
        return settings.database.url
    server_url = await asyncio.to_thread(start_embedded_postgres, Path(settings.data_dir))
    return await ensure_database(server_url, embedded_database)


async def open_database(settings: Settings) -> Database:
    """A `Database` for the configured (or embedded) server, after checking it answers."""
    url = await resolve_database_url(settings)
    await check_reachable(url)
    if settings.database.owner_url is not None:
        await check_reachable(settings.database.owner_url)
    return Database(settings.database, url, settings.database.owner_url)
