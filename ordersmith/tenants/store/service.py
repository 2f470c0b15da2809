"""Store profile services: the merchant's store name, default currency, time zone and review threshold."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import available_timezones

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ordersmith.platform.currencies import is_currency
from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.identity.audit import Actor, record_audit
from ordersmith.platform.models import Tenant
from ordersmith.platform.tenancy import TENANT_NAME_MAX_LENGTH
from ordersmith.tenants.store.models import StoreSettings

DEFAULT_CURRENCY = "EUR"
DEFAULT_TIMEZONE = "UTC"
# The largest amount an order can total (orders.rules.MAX_AMOUNT): a threshold above it holds nothing.
MAX_REVIEW_THRESHOLD = 2**53


@dataclass(frozen=True)
class StoreProfile:
    display_name: str
    default_currency: str
    timezone: str
    # Orders in the default currency over this many minor units are held for review; None: none are.
    review_orders_over_amount: int | None
    # A customer's first order is held for review.
    review_first_orders: bool


async def seed_store(connection: AsyncConnection, tenant: TenantContext, display_name: str) -> None:
    """Write the store row of a new tenant (runs inside the provisioning transaction)."""
    await connection.execute(
        insert(StoreSettings).values(
            id=1, display_name=display_name, default_currency=DEFAULT_CURRENCY, timezone=DEFAULT_TIMEZONE
        )
    )


async def get_store_profile(tenant: TenantContext, session: AsyncSession) -> StoreProfile:
    """The merchant's store name, currency, time zone and review threshold."""
    row = (await session.execute(select(StoreSettings))).scalar_one()
    return StoreProfile(
        display_name=row.display_name,
        default_currency=row.default_currency,
        timezone=row.timezone,
        review_orders_over_amount=row.review_orders_over_amount,
        review_first_orders=row.review_first_orders,
    )


def _is_amount(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_REVIEW_THRESHOLD


def _profile_values(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a change sets, or 422 naming each bad field.

    A None leaves the name, currency and time zone as they are (none of them may be
    empty); for `review_orders_over_amount` it turns the review rule off.
    """
    display_name = changes.get("display_name")
    default_currency = changes.get("default_currency")
    timezone = changes.get("timezone")
    errors = []
    if display_name is not None and not display_name.strip():
        errors.append(FieldError("display_name", "must not be empty"))
    elif display_name is not None and len(display_name.strip()) > TENANT_NAME_MAX_LENGTH:
        errors.append(FieldError("display_name", f"must be at most {TENANT_NAME_MAX_LENGTH} characters"))
    if default_currency is not None and not is_currency(default_currency):
        errors.append(
            FieldError("default_currency", "must be the ISO 4217 code of a currency, such as EUR or USD")
        )
    if timezone is not None and timezone not in available_timezones():
        errors.append(FieldError("timezone", "must be an IANA time zone such as Europe/Paris"))
    threshold = changes.get("review_orders_over_amount")
    if threshold is not None and not _is_amount(threshold):
        errors.append(
            FieldError(
                "review_orders_over_amount",
                f"must be a whole amount in minor units from 1 to {MAX_REVIEW_THRESHOLD}, "
                "or null to hold no order for review",
            )
        )
    first_orders = changes.get("review_first_orders")
    if first_orders is not None and not isinstance(first_orders, bool):
        errors.append(FieldError("review_first_orders", "must be true or false"))
    if errors:
        raise ValidationFailedError("some fields are invalid; see errors", errors=errors)
    values: dict[str, Any] = {
        key: value
        for key, value in (
            ("display_name", display_name.strip() if display_name else None),
            ("default_currency", default_currency),
            ("timezone", timezone),
            ("review_first_orders", first_orders),
        )
        if value is not None
    }
    if "review_orders_over_amount" in changes:
        values["review_orders_over_amount"] = threshold
    return values


async def update_store_profile(
    database: Database,
    tenant: TenantContext,
    session: AsyncSession,
    changes: Mapping[str, Any],
    *,
    actor: Actor,
) -> StoreProfile:
    """Change the store's name, currency, time zone or review threshold (422 names what is wrong); audited."""
    # Locked, so that two changes at once each record what they really replaced.
    await session.execute(select(StoreSettings.id).with_for_update())
    before = await get_store_profile(tenant, session)
    values = _profile_values(changes)
    if values:
        await session.execute(update(StoreSettings).values(**values, updated_at=func.now()))
    after = await get_store_profile(tenant, session)
    old, new = asdict(before), asdict(after)
    changes = {field: {"old": old[field], "new": new[field]} for field in old if old[field] != new[field]}
    if changes:
        # Tenant roles can write neither the registry nor the audit log: both commit from a
        # platform transaction just before the caller commits the change (as `record_audit_beside`).
        # Emails and the sign-in response name the store by the registry's name.
        async with database.platform_session() as platform:
            if "display_name" in changes:
                await platform.execute(
                    update(Tenant).where(Tenant.id == tenant.tenant_id).values(name=after.display_name)
                )
            await record_audit(
                platform,
                tenant_id=tenant.tenant_id,
                actor=actor,
                action="store.profile_changed",
                target_type="store",
                data={"changes": changes},
            )
    return after
