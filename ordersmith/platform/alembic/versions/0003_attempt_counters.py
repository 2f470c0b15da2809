"""Login failures become attempt counters: attempts are reserved before they are checked.

The counters now count every attempt as it starts (a success gives its own back), and
hold the moment the next attempt may come, whether a slow-down or a lock. Existing
locks carry over; slow-downs of a few seconds in progress during the upgrade are lost.

Revision ID: 0003_attempt_counters
Revises: 0002_identity
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0003_attempt_counters"
down_revision = "0002_identity"
branch_labels = None
depends_on = None

SCHEMA = "platform"
_RENAMED_COLUMNS = (
    ("failures", "attempts"),
    ("last_failed_at", "last_attempt_at"),
    ("locked_until", "blocked_until"),
)


def upgrade() -> None:
    op.rename_table("login_failures", "attempt_counters", schema=SCHEMA)
    op.execute(
        "ALTER TABLE platform.attempt_counters RENAME CONSTRAINT pk_login_failures TO pk_attempt_counters"
    )
    for old, new in _RENAMED_COLUMNS:
        op.alter_column("attempt_counters", old, new_column_name=new, schema=SCHEMA)
    op.execute(
        "UPDATE platform.attempt_counters SET blocked_until = last_attempt_at WHERE blocked_until IS NULL"
    )
    op.alter_column("attempt_counters", "blocked_until", nullable=False, schema=SCHEMA)


def downgrade() -> None:
    op.alter_column("attempt_counters", "blocked_until", nullable=True, schema=SCHEMA)
    op.execute(
        "UPDATE platform.attempt_counters SET blocked_until = NULL WHERE blocked_until <= last_attempt_at"
    )
    for old, new in _RENAMED_COLUMNS:
        op.alter_column("attempt_counters", new, new_column_name=old, schema=SCHEMA)
    op.execute(
        "ALTER TABLE platform.attempt_counters RENAME CONSTRAINT pk_attempt_counters TO pk_login_failures"
    )
    op.rename_table("attempt_counters", "login_failures", schema=SCHEMA)
