"""Reports: the store's numbers, starting with how touchless its orders run."""

from __future__ import annotations

import datetime as dt

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api.access import requires
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.tenants.orders.kpis import touch_report


class OrderTouches(msgspec.Struct):
    # The period, in UTC whatever offset the caller used: orders created at or after
    # created_after and before created_before.
    created_after: dt.datetime
    created_before: dt.datetime
    orders_placed: int
    orders_completed: int
    orders_completed_touchless: int
    # orders_completed_touchless / orders_completed, from 0 to 1; null when none completed.
    touchless_rate: float | None
    # Changes made by people per placed order; null when none was placed.
    average_touches: float | None


@get(
    "/api/v1/reports/orders/touches",
    operation_id="getOrderTouchReport",
    summary="Touchless-order rate and touches per order for orders created in a period.",
    opt=requires(Permission.REPORTS_READ),
    tags=["reports"],
)
async def order_touches(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    created_after: FromQuery[dt.datetime | None] = None,
    created_before: FromQuery[dt.datetime | None] = None,
) -> OrderTouches:
    """By default the 30 days up to created_before (now if not sent); a touch is a person's change."""
    assert principal.tenant is not None
    report = await touch_report(
        principal.tenant.context, tenant_session, created_after=created_after, created_before=created_before
    )
    return OrderTouches(
        report.created_after,
        report.created_before,
        report.orders_placed,
        report.orders_completed,
        report.orders_completed_touchless,
        report.touchless_rate,
        report.average_touches,
    )


ROUTES = [order_touches]
