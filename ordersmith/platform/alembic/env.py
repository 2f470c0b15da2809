"""Alembic environment of the `platform` stream: run online on a connection we pass in."""

from __future__ import annotations

from alembic import context

from ordersmith.platform.database import PLATFORM_SCHEMA
from ordersmith.platform.schema import PLATFORM_METADATA

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run platform migrations with `ordersmith migrate`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=PLATFORM_METADATA,
    version_table_schema=PLATFORM_SCHEMA,
    include_schemas=False,
)
with context.begin_transaction():
    context.run_migrations()
