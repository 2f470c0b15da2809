"""A copy of the tenant migration stream with one more revision, for migration tests and the bench."""

from __future__ import annotations

import shutil
from pathlib import Path

from ordersmith.platform.schema_migrations import MigrationStream, TenantSchemaSpec
from ordersmith.tenants.schema import TENANT_MIGRATIONS, TENANT_SCHEMA

EXTRA_REVISION = "9001_store_settings_region"
EXTRA_COLUMN = "region"

_REVISION_TEMPLATE = '''"""Add a region to store settings, with an index (test revision).

Revision ID: {revision}
Revises: {down_revision}
"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("store_settings", sa.Column("{column}", sa.String(40), nullable=True))
    op.create_index("ix_store_settings_{column}", "store_settings", ["{column}"])


def downgrade() -> None:
    op.drop_index("ix_store_settings_{column}", table_name="store_settings")
    op.drop_column("store_settings", "{column}")
'''


def stream_with_revision(directory: Path, revision: str, text: str) -> TenantSchemaSpec:
    """The tenant stream copied into `directory`, plus the revision `revision` written as `text`."""
    target = directory / "tenant_alembic"
    shutil.copytree(
        TENANT_MIGRATIONS.script_location,
        target,
        ignore=shutil.ignore_patterns("__pycache__"),
        dirs_exist_ok=True,
    )
    (target / "versions" / f"{revision}.py").write_text(text)
    stream = MigrationStream(name="tenant", script_location=target)
    return TenantSchemaSpec(migrations=stream, seed=TENANT_SCHEMA.seed)


def stream_with_extra_revision(directory: Path) -> TenantSchemaSpec:
    """The tenant stream copied into `directory`, plus a revision adding a column and an index."""
    text = _REVISION_TEMPLATE.format(
        revision=EXTRA_REVISION, down_revision=TENANT_MIGRATIONS.head(), column=EXTRA_COLUMN
    )
    return stream_with_revision(directory, EXTRA_REVISION, text)
