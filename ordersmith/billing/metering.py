"""Usage metering: orders, API requests and active seats, each unit recorded once, per tenant and hour.

Orders: placement writes its `order.placed` event in the order's own transaction (the
outbox), so an order that rolled back, failed or was replayed from an `Idempotency-Key` announces
nothing, and each placed order announces once. The consumer below records one usage event
whose id *is* that event's id, and adds it to the tenant's hour in the same transaction: a
redelivered event finds its row and adds nothing. The billing room never reads tenant
schemas; the event is all it knows of the order.

API requests (`request_metering.py`) are counted in each process's memory and written in batches
whose ids are fixed before the first attempt; active seats (`seats.py`) are a snapshot per
tenant and hour whose id is made of the tenant and the hour. Both go through
`record_usages`: the event rows and their hours in one transaction, an id seen before adding
nothing. Only orders are billed; requests and seats are measured and shown, not priced.
Seats are a gauge: an hour holds the count taken in it, and a period reports its largest
hour, never a sum of hours.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.billing_models import UsageEvent, UsageHour
from ordersmith.platform.events import Event, consumers
from ordersmith.platform.models import Tenant
from ordersmith.platform.plans import Meter

CONSUMER_NAME = "billing.metering"
# The topic placement announces an order with (the contract between the rooms).
ORDER_PLACED = "order.placed"
# Meters that cost money (rating, Stripe); the others are shown in the usage, never priced.
BILLED_METERS = frozenset({Meter.ORDERS})
# Meters that measure a level, not a flow: a period reports its largest hour, not their sum.
GAUGE_METERS = frozenset({Meter.SEATS})
# Rows per INSERT: PostgreSQL takes at most 32,767 parameters in one statement.
_CHUNK = 1_000


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


@dataclass(frozen=True)
class UsageRecord:
    """One usage event to record: its id decides whether it was recorded before."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    meter: Meter
    occurred_at: dt.datetime
    quantity: int
    source: str
    subject_id: str | None


@dataclass(frozen=True)
class Recorded:
    """What `record_usages` added: new usage events and the units they hold."""

    events: int
    quantity: int


async def record_usages(session: AsyncSession, records: Sequence[UsageRecord]) -> Recorded:
    """Record the usage events not recorded yet and add each to its hour, in the caller's transaction."""
    if not records:
        return Recorded(events=0, quantity=0)
    # A store dropped since its usage was counted has nowhere to keep it (and its usage went
    # with it); a drop racing this insert fails it on the foreign key, and the retry skips it.
    tenant_ids = {record.tenant_id for record in records}
    present = set((await session.scalars(select(Tenant.id).where(Tenant.id.in_(tenant_ids)))).all())
    rows = [
        {
            "id": record.id,
            "tenant_id": record.tenant_id,
            "meter": record.meter.value,
            "quantity": record.quantity,
            "occurred_at": record.occurred_at,
            "source": record.source,
            "subject_id": record.subject_id,
        }
        for record in records
        if record.tenant_id in present
    ]
    added: dict[tuple[uuid.UUID, str, dt.datetime], int] = {}
    events = 0
    for start in range(0, len(rows), _CHUNK):
        inserted = await session.execute(
            pg_insert(UsageEvent)
            .values(rows[start : start + _CHUNK])
            .on_conflict_do_nothing()
            .returning(UsageEvent.tenant_id, UsageEvent.meter, UsageEvent.occurred_at, UsageEvent.quantity)
        )
        for tenant_id, meter, occurred_at, quantity in inserted:
            key = (tenant_id, meter, hour_of(occurred_at))
            added[key] = added.get(key, 0) + quantity
            events += 1
    # Sorted, so that two processes adding to the same hours lock them in the same order.
    hours = [
        {"tenant_id": tenant_id, "meter": meter, "hour": hour, "quantity": quantity}
        for (tenant_id, meter, hour), quantity in sorted(added.items())
    ]
    for start in range(0, len(hours), _CHUNK):
        statement = pg_insert(UsageHour).values(hours[start : start + _CHUNK])
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[UsageHour.tenant_id, UsageHour.meter, UsageHour.hour],
                set_={"quantity": UsageHour.quantity + statement.excluded.quantity, "updated_at": func.now()},
            )
        )
    return Recorded(events=events, quantity=sum(added.values()))


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
    """A tenant's usage over a period: totals per meter and the hours they came from.

    A flow (orders, API requests) totals the sum of its hours; a gauge (seats) its largest hour.
    """

    period_start: dt.datetime
    period_end: dt.datetime
    totals: dict[Meter, int]
    hours: list[HourlyUsage]


async def usage_for_period(
    session: AsyncSession, tenant_id: uuid.UUID, start: dt.datetime, end: dt.datetime
) -> PeriodUsage:
    """A tenant's usage from `start` to `end` (exclusive), per meter and per hour (a gauge: its peak)."""
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
        totals[meter] = max(totals[meter], quantity) if meter in GAUGE_METERS else totals[meter] + quantity
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
    """A tenant's usage of the billed meters over the last whole calendar month (for the plan comparison)."""
    this_month, _ = month_of(now or dt.datetime.now(dt.UTC))
    start, end = month_of(this_month - dt.timedelta(days=1))
    totals = (await usage_for_period(session, tenant_id, start, end)).totals
    # The comparison prices plans: meters no plan charges for would only be noise there.
    return {meter: quantity for meter, quantity in totals.items() if meter in BILLED_METERS}
