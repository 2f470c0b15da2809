"""Alembic migration streams: one for schema `platform`, one shared by every tenant schema.

Tenant revisions are rendered to SQL once per process (Alembic's offline mode, with
unqualified names) and replayed inside each tenant schema with a transaction-local
`search_path`. Provisioning and migrating thousands of schemas then costs a few round
trips per tenant instead of one Alembic run each. The price: tenant revisions must be
renderable offline (DDL and literal data only); `tests/integration/test_migrations.py`
checks that the result matches the models.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ordersmith.platform.database import TenantContext


@dataclass
class MigrationStream:
    """One Alembic script directory and what is known about it."""

    name: str
    script_location: Path
    version_table_schema: str | None = None
    _rendered: dict[str | None, str] = field(default_factory=dict, repr=False)
    _head: str | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def config(self, **attributes: Any) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.script_location))
        config.attributes.update(attributes)
        return config

    def scripts(self) -> ScriptDirectory:
        return ScriptDirectory.from_config(self.config())

    def head(self) -> str:
        """The newest revision (read once: the scripts do not change while the process runs)."""
        if self._head is None:
            head = self.scripts().get_current_head()
            if head is None:
                raise RuntimeError(f"migration stream {self.name!r} has no revisions")
            self._head = head
        return self._head

    def render_upgrade(self, from_revision: str | None) -> str:
        """SQL that takes a schema from `from_revision` (None: empty) to head, cached."""
        with self._lock:
            if from_revision not in self._rendered:
                buffer = io.StringIO()
                config = self.config()
                config.output_buffer = buffer
                span = "head" if from_revision is None else f"{from_revision}:head"
                command.upgrade(config, span, sql=True)
                self._rendered[from_revision] = buffer.getvalue()
            return self._rendered[from_revision]

    async def upgrade_online(self, connection: AsyncConnection, **attributes: Any) -> None:
        """Run the stream's pending revisions on this connection (used for `platform`)."""

        def upgrade(sync_connection: Connection) -> None:
            command.upgrade(self.config(connection=sync_connection, **attributes), "head")

        await connection.run_sync(upgrade)

    async def current_online(self, connection: AsyncConnection) -> str | None:
        """The revision a schema is at, read through Alembic's own version table."""

        def current(sync_connection: Connection) -> str | None:
            context = MigrationContext.configure(
                sync_connection, opts={"version_table_schema": self.version_table_schema}
            )
            return context.get_current_revision()

        return await connection.run_sync(current)


# Seed rows for a new tenant, written inside the provisioning transaction.
TenantSeeder = Callable[[AsyncConnection, TenantContext, str], Awaitable[None]]


@dataclass(frozen=True)
class TenantSchemaSpec:
    """What every tenant schema is made of: its migration stream and its seed rows."""

    migrations: MigrationStream
    seed: TenantSeeder
