"""Usage metering: each successful order counted exactly once, summed per tenant and hour.

Placement writes its `order.placed` event in the order's own transaction (the outbox), so
an order that rolled back, failed or was replayed from an `Idempotency-Key` announces
nothing, and each placed order announces once. The consumer below records one usage event
whose id *is* that event's id, and adds it to the tenant's hour in the same transaction: a
redelivered event finds its row and adds nothing. The billing room never reads tenant
schemas; the event is all it knows of the order.

Only orders are metered. API requests are limited per minute (an entitlement), not billed,
so counting each one in PostgreSQL would cost a write per request for nothing; active
seats are a limit checked when a member is added, not usage.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.billing_models import UsageEvent, UsageHour
from ordersmith.platform.events import Event, consumers
from ordersmith.platform.plans import Meter

CONSUMER_NAME = "billing.metering"
# The topic placement announces an order with (the contract between the rooms).
ORDER_PLACED = "order.placed"


def hour_of(moment: dt.datetime) -> dt.datetime:
    """The start of the UTC hour `moment` falls in."""
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def month_of(moment: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The calendar month (UTC) holding `moment`: its first instant and the next month's."""
    start = moment.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


async def record_usage(
    session: AsyncSession,
    *,
    usage_id: uuid.UUID,
    tenant_id: uuid.UUID,
    meter: Meter,
    occurred_at: dt.datetime,
    source: str,
    subject_id: str | None,
    quantity: int = 1,
) -> bool:
    """Record one usage event and add it to its hour, unless its id is already recorded; True if new."""
    inserted = await session.execute(
        pg_insert(UsageEvent)
        .values(
            id=usage_id,
            tenant_id=tenant_id,
            meter=meter.value,
            quantity=quantity,
            occurred_at=occurred_at,
            source=source,
            subject_id=subject_id,
        )
        .on_conflict_do_nothing()
        .returning(UsageEvent.id)
    )
    if inserted.first() is None:
        return False
    statement = pg_insert(UsageHour).values(
        tenant_id=tenant_id, meter=meter.value, hour=hour_of(occurred_at), quantity=quantity
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[UsageHour.tenant_id, UsageHour.meter, UsageHour.hour],
            set_={"quantity": UsageHour.quantity + statement.excluded.quantity, "updated_at": func.now()},
        )
    )
    return True


@consumers.platform_consumer(CONSUMER_NAME, ORDER_PLACED)
async def meter_placed_order(session: AsyncSession, event: Event) -> None:
    """Count a placed order once, in the hour it was placed."""
    if event.tenant_id is None:
        return
    await record_usage(
        session,
        usage_id=event.id,
        tenant_id=event.tenant_id,
        meter=Meter.ORDERS,
        occurred_at=event.created_at,
        source=ORDER_PLACED,
        subject_id=str(event.payload.get("order_id")),
    )


@dataclass(frozen=True)
class HourlyUsage:
    """One meter's usage in one hour."""

    hour: dt.datetime
    meter: Meter
    quantity: int


@dataclass(frozen=True)
class PeriodUsage:
    """A tenant's usage over a period: totals per meter and the hours they came from."""

    period_start: dt.datetime
    period_end: dt.datetime
    totals: dict[Meter, int]
    hours: list[HourlyUsage]


async def usage_for_period(
    session: AsyncSession, tenant_id: uuid.UUID, start: dt.datetime, end: dt.datetime
) -> PeriodUsage:
    """A tenant's usage from `start` (inclusive) to `end` (exclusive), per meter and per hour."""
    rows = (
        await session.execute(
            select(UsageHour.hour, UsageHour.meter, UsageHour.quantity)
            .where(UsageHour.tenant_id == tenant_id, UsageHour.hour >= start, UsageHour.hour < end)
            .order_by(UsageHour.hour, UsageHour.meter)
        )
    ).all()
    totals = {meter: 0 for meter in Meter}
    hours = []
    for hour, meter_name, quantity in rows:
        meter = Meter(meter_name)
        totals[meter] += quantity
        hours.append(HourlyUsage(hour, meter, quantity))
    return PeriodUsage(start, end, totals, hours)


async def current_period_usage(
    session: AsyncSession, tenant_id: uuid.UUID, *, now: dt.datetime
) -> PeriodUsage:
    """A tenant's usage in the current billing period (the calendar month, UTC)."""
    start, end = month_of(now)
    return await usage_for_period(session, tenant_id, start, end)


async def last_month_usage(
    session: AsyncSession, tenant_id: uuid.UUID, *, now: dt.datetime | None = None
) -> dict[Meter, int]:
    """A tenant's usage over the last whole calendar month, per meter (for the plan comparison)."""
    this_month, _ = month_of(now or dt.datetime.now(dt.UTC))
    start, end = month_of(this_month - dt.timedelta(days=1))
    return (await usage_for_period(session, tenant_id, start, end)).totals
