"""The stock ledger is append-only in the database, not only in the code.

`on_hand` equals the sum of `inventory_adjustments`, and the ledger is the record of who
moved stock and why: a row changed or removed afterwards would break both. A trigger
refuses UPDATE, DELETE and TRUNCATE for every role that writes the schema (a mistake is
put right with a `correction` row). Dropping the store's schema is unaffected.

Revision ID: 0010_append_only_stock_ledger
Revises: 0009_webhook_secret_overlap
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0010_append_only_stock_ledger"
down_revision = "0009_webhook_secret_overlap"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Created in the tenant's schema, the first on the migration's search_path.
    op.execute(
        """
        CREATE FUNCTION refuse_stock_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the stock ledger is append-only: record a correction instead of changing a row'
                USING ERRCODE = 'restrict_violation';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER inventory_adjustments_append_only BEFORE UPDATE OR DELETE ON inventory_adjustments "
        "FOR EACH ROW EXECUTE FUNCTION refuse_stock_ledger_change()"
    )
    op.execute(
        "CREATE TRIGGER inventory_adjustments_no_truncate BEFORE TRUNCATE ON inventory_adjustments "
        "FOR EACH STATEMENT EXECUTE FUNCTION refuse_stock_ledger_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER inventory_adjustments_no_truncate ON inventory_adjustments")
    op.execute("DROP TRIGGER inventory_adjustments_append_only ON inventory_adjustments")
    op.execute("DROP FUNCTION refuse_stock_ledger_change()")
