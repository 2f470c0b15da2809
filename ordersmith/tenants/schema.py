"""What every tenant schema is made of: the tenant migration stream and the seed rows."""

from __future__ import annotations

from pathlib import Path

from ordersmith.platform.schema_migrations import MigrationStream, TenantSchemaSpec
from ordersmith.platform.tenant_tables import TenantBase
from ordersmith.tenants.catalog import models as _catalog_models  # noqa: F401  (registers tables)
from ordersmith.tenants.customers import models as _customers_models  # noqa: F401  (registers tables)
from ordersmith.tenants.fulfillment import models as _fulfillment_models  # noqa: F401  (registers tables)
from ordersmith.tenants.inventory import models as _inventory_models  # noqa: F401  (registers tables)
from ordersmith.tenants.orders import models as _orders_models  # noqa: F401  (registers tables)
from ordersmith.tenants.payments import models as _payments_models  # noqa: F401  (registers tables)
from ordersmith.tenants.returns import models as _returns_models  # noqa: F401  (registers tables)
from ordersmith.tenants.store import models as _store_models  # noqa: F401  (registers tables)
from ordersmith.tenants.store.service import seed_store
from ordersmith.tenants.webhooks import models as _webhooks_models  # noqa: F401  (registers tables)

TENANT_MIGRATIONS = MigrationStream(name="tenant", script_location=Path(__file__).parent / "alembic")

TENANT_SCHEMA = TenantSchemaSpec(migrations=TENANT_MIGRATIONS, seed=seed_store)

# Every tenant table, for the models-versus-migrations check.
TENANT_METADATA = TenantBase.metadata
