"""Alembic environment of the tenant stream: offline rendering only.

Revisions use unqualified table names; the SQL they render is replayed inside each
tenant schema with a transaction-local search_path (see platform/schema_migrations.py).
"""

from __future__ import annotations

from alembic import context

if not context.is_offline_mode():
    raise SystemExit("tenant migrations are rendered offline and applied by `ordersmith tenants migrate`")

context.configure(
    dialect_name="postgresql",
    literal_binds=True,
    transactional_ddl=False,
    version_table_schema=None,
)
context.run_migrations()
