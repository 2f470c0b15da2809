"""Store profile services."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.tenants.store.models import StoreSettings

DEFAULT_CURRENCY = "EUR"
DEFAULT_TIMEZONE = "UTC"


@dataclass(frozen=True)
class StoreProfile:
    display_name: str
    default_currency: str
    timezone: str


async def seed_store(connection: AsyncConnection, tenant: TenantContext, display_name: str) -> None:
    """Write the store row of a new tenant (runs inside the provisioning transaction)."""
    await connection.execute(
        insert(StoreSettings).values(
            id=1, display_name=display_name, default_currency=DEFAULT_CURRENCY, timezone=DEFAULT_TIMEZONE
        )
    )


async def get_store_profile(tenant: TenantContext, session: AsyncSession) -> StoreProfile:
    """The merchant's store name, currency and time zone."""
    row = (await session.execute(select(StoreSettings))).scalar_one()
    return StoreProfile(
        display_name=row.display_name, default_currency=row.default_currency, timezone=row.timezone
    )
