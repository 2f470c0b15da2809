"""A tenant role appends outbox events in its own store's name only.

Tenant roles share INSERT on `platform.outbox` through the group role, so without a check
one store's role could append `order.placed` in another store's name (and have it billed).
Row-level security holds each tenant role to rows whose `tenant_id` is its own store's.
Tenant roles cannot read `platform.tenants`: `platform.is_tenant_role` answers for them,
as the owner, with one lookup by primary key. The runtime role (the relay, platform
sessions) keeps every row: it is a member of the tenant roles, so it is given a policy of
its own. The owner owns the table and is not subject to its policies.

Revision ID: 0008_outbox_row_security
Revises: 0007_billing_event_order
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import context, op

revision = "0008_outbox_row_security"
down_revision = "0007_billing_event_order"
branch_labels = None
depends_on = None


def upgrade() -> None:
    roles = context.config.attributes["roles"]
    group, app = roles["tenant_group"], roles["app"]
    # SECURITY DEFINER with a fixed search_path: it reads the registry as the owner, naming
    # everything by schema. It answers yes or no for a pair, so it reveals no store's id.
    op.execute(
        """
CREATE FUNCTION platform.is_tenant_role(uuid, name) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT FROM platform.tenants WHERE id = $1 AND db_role = $2) $$
"""
    )
    op.execute("REVOKE ALL ON FUNCTION platform.is_tenant_role(uuid, name) FROM PUBLIC")
    # The runtime role is a member of every active tenant role, so the policy applies to it too.
    op.execute(f'GRANT EXECUTE ON FUNCTION platform.is_tenant_role(uuid, name) TO "{group}", "{app}"')
    op.execute("ALTER TABLE platform.outbox ENABLE ROW LEVEL SECURITY")
    op.execute(
        f'CREATE POLICY tenant_appends_its_own ON platform.outbox FOR INSERT TO "{group}" '
        "WITH CHECK (platform.is_tenant_role(tenant_id, current_user))"
    )
    op.execute(f'CREATE POLICY runtime_all ON platform.outbox TO "{app}" USING (true) WITH CHECK (true)')


def downgrade() -> None:
    op.execute("DROP POLICY runtime_all ON platform.outbox")
    op.execute("DROP POLICY tenant_appends_its_own ON platform.outbox")
    op.execute("ALTER TABLE platform.outbox DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION platform.is_tenant_role(uuid, name)")
