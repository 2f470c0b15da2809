"""Order KPIs: how much of the store's work runs without a person touching it.

A *touch* is a change made by a person (see `timeline.py`); each order keeps its count.
The touchless rate is the share of completed orders that nobody touched on the way to
completion (`touches_at_completion`: archiving one later is not held against it). Orders are
counted by when they were created, so a period's numbers keep improving as its orders
complete; one aggregate over the `created_at` index computes them all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.times import range_errors
from ordersmith.tenants.orders.models import Order

DEFAULT_PERIOD = dt.timedelta(days=30)
# Rates and averages are reported to this many decimal places.
PRECISION = 4


@dataclass(frozen=True)
class TouchReport:
    """Touches and touchless orders among the orders created in [created_after, created_before)."""

    created_after: dt.datetime
    created_before: dt.datetime
    orders_placed: int
    orders_completed: int
    orders_completed_touchless: int
    # Completed with zero touches / completed; None when nothing completed.
    touchless_rate: float | None
    # Touches per placed order; None when nothing was placed.
    average_touches: float | None


def _period(
    created_after: dt.datetime | None, created_before: dt.datetime | None, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """The period [after, before) in UTC, as timestamps are answered, whatever offset the caller used."""
    errors = range_errors("created_after", created_after, "created_before", created_before)
    if errors:
        raise ValidationFailedError("the report period is invalid; see errors", errors=errors)
    before = (created_before or now).astimezone(dt.UTC)
    after = (created_after or before - DEFAULT_PERIOD).astimezone(dt.UTC)
    if after >= before:
        # Only created_after was sent, and it is not in the past: the period would end before it began.
        raise ValidationFailedError(
            "the report period is invalid; see errors",
            errors=[
                FieldError(
                    "created_after",
                    "must be earlier than created_before, which is now when not given; "
                    "give created_before as well for a period that ends later",
                )
            ],
        )
    return after, before


async def touch_report(
    tenant: TenantContext,
    session: AsyncSession,
    *,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> TouchReport:
    """Orders placed and completed in a period, how many completed untouched, and touches per order."""
    after, before = _period(created_after, created_before, now or dt.datetime.now(dt.UTC))
    placed = Order.placed_at.is_not(None)
    completed = Order.completed_at.is_not(None)
    row = (
        await session.execute(
            select(
                func.count().filter(placed),
                func.count().filter(completed),
                func.count().filter(completed, Order.touches_at_completion == 0),
                func.sum(Order.touch_count).filter(placed),
            ).where(Order.created_at >= after, Order.created_at < before)
        )
    ).one()
    orders_placed, orders_completed, touchless, touches = row
    return TouchReport(
        created_after=after,
        created_before=before,
        orders_placed=orders_placed,
        orders_completed=orders_completed,
        orders_completed_touchless=touchless,
        touchless_rate=round(touchless / orders_completed, PRECISION) if orders_completed else None,
        average_touches=round(int(touches) / orders_placed, PRECISION) if orders_placed else None,
    )
