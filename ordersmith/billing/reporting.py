"""Usage to Stripe: each closed hour's total, as a Billing Meter event, queued until Stripe has it.

The hourly job first *queues*: for every subscribed tenant and every closed hour whose
total is not yet reported, one `meter_reports` row holding the hour's whole total and an
identifier made of tenant, meter, hour and total. Then it *sends* the queued rows, oldest
first, each in its own short transaction. The meter is pre-aggregated per hour, so Stripe
keeps the latest event of an hour: an order counted late raises the hour's total, which is
reported again under a new identifier and replaces the earlier one. Sending the same row
twice (a crash after Stripe answered, two runs at once) repeats its identifier, which
Stripe drops. When Stripe cannot be reached (or refuses our key) the rows stay queued, and
the next run sends them: nothing is lost and nothing doubles. A report Stripe refuses for
itself (a 4xx such as a timestamp past its 35-day window, or `MAX_ATTEMPTS` conflicts) is
marked `failed` with the error, logged at error level for an operator, and not sent again;
rows tried fewer times go first, so rows that keep failing never hold back newer ones.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import stripe
from sqlalchemy import and_, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ordersmith.billing.gateway import client_for, current_settings, is_unavailable
from ordersmith.billing.metering import hour_of
from ordersmith.platform.billing_models import BillingAccount, MeterReport, UsageHour
from ordersmith.platform.database import Database
from ordersmith.platform.plans import Meter
from ordersmith.platform.settings import BillingSettings

logger = logging.getLogger(__name__)

SEND_BATCH_SIZE = 500
# Attempts a report gets when Stripe answers with a passing conflict (409, idempotency) before it fails.
MAX_ATTEMPTS = 5


def meter_identifier(tenant_id: uuid.UUID, meter: str, hour: dt.datetime, quantity: int) -> str:
    """The meter event identifier of one hour's total: the same hour and total, the same identifier."""
    return f"os-{tenant_id.hex}-{meter}-{hour.astimezone(dt.UTC):%Y%m%d%H}-{quantity}"


async def queue_closed_hours(database: Database, *, now: dt.datetime) -> int:
    """Queue a report for every closed hour of a subscribed tenant whose total is not reported yet."""
    return await _queue_hours(database, before=hour_of(now))


async def _queue_hours(database: Database, *, before: dt.datetime, tenant_id: uuid.UUID | None = None) -> int:
    """Queue the unreported totals of the hours before `before`, of every subscribed tenant or of one."""
    of_tenant = [] if tenant_id is None else [UsageHour.tenant_id == tenant_id]
    async with database.platform_session() as session:
        pending = (
            await session.execute(
                select(
                    UsageHour.tenant_id,
                    UsageHour.meter,
                    UsageHour.hour,
                    UsageHour.quantity,
                    BillingAccount.stripe_customer_id,
                )
                .join(BillingAccount, BillingAccount.tenant_id == UsageHour.tenant_id)
                .where(
                    # The Billing Meter counts orders; requests and seats are not billed.
                    UsageHour.meter == Meter.ORDERS.value,
                    BillingAccount.stripe_subscription_id.is_not(None),
                    BillingAccount.stripe_customer_id.is_not(None),
                    UsageHour.hour >= func.date_trunc(literal("hour"), BillingAccount.metered_since),
                    UsageHour.hour < before,
                    *of_tenant,
                    ~exists().where(
                        and_(
                            MeterReport.tenant_id == UsageHour.tenant_id,
                            MeterReport.meter == UsageHour.meter,
                            MeterReport.hour == UsageHour.hour,
                            MeterReport.quantity == UsageHour.quantity,
                        )
                    ),
                )
            )
        ).all()
        rows = [
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "meter": meter,
                "hour": hour,
                "quantity": quantity,
                "identifier": meter_identifier(tenant_id, meter, hour, quantity),
                "stripe_customer_id": customer_id,
            }
            for tenant_id, meter, hour, quantity, customer_id in pending
        ]
        if not rows:
            return 0
        result = await session.execute(pg_insert(MeterReport).values(rows).on_conflict_do_nothing())
        return int(result.rowcount)  # type: ignore[attr-defined]


async def _supersede_older_totals(database: Database) -> None:
    """Queued totals of an hour that a larger total has since replaced need not be sent."""
    newer = MeterReport.__table__.alias("newer")
    async with database.platform_session() as session:
        await session.execute(
            update(MeterReport)
            .where(
                MeterReport.status == "queued",
                exists().where(
                    and_(
                        newer.c.tenant_id == MeterReport.tenant_id,
                        newer.c.meter == MeterReport.meter,
                        newer.c.hour == MeterReport.hour,
                        newer.c.quantity > MeterReport.quantity,
                    )
                ),
            )
            .values(status="superseded")
        )


def _is_refused_for_our_key(error: stripe.StripeError) -> bool:
    # A key revoked or lacking a permission refuses every report alike: none is at fault.
    return isinstance(error, stripe.AuthenticationError | stripe.PermissionError)


def _is_worth_retrying(error: stripe.StripeError) -> bool:
    # A conflict passes; any other 4xx (bad timestamp, unknown customer) answers the same again.
    return isinstance(error, stripe.IdempotencyError) or error.http_status == 409


async def _record_failed_attempt(
    database: Database, report: MeterReport, error: stripe.StripeError, *, is_final: bool
) -> None:
    async with database.platform_session() as session:
        await session.execute(
            update(MeterReport)
            # A run alongside may have superseded it meanwhile: that stays.
            .where(MeterReport.id == report.id, MeterReport.status == "queued")
            .values(
                status="failed" if is_final else "queued",
                attempts=MeterReport.attempts + 1,
                last_error=str(error)[:2000],
            )
        )


async def send_queued(
    database: Database,
    settings: BillingSettings,
    *,
    batch_size: int = SEND_BATCH_SIZE,
    tenant_id: uuid.UUID | None = None,
) -> int:
    """Send up to `batch_size` queued reports (of one tenant if told), least tried and oldest first.

    Stops at the first sign that Stripe is unreachable; what was not sent stays queued.
    """
    await _supersede_older_totals(database)
    of_tenant = [] if tenant_id is None else [MeterReport.tenant_id == tenant_id]
    async with database.platform_session() as session:
        queued = (
            await session.scalars(
                select(MeterReport)
                .where(MeterReport.status == "queued", *of_tenant)
                .order_by(MeterReport.attempts, MeterReport.hour, MeterReport.quantity)
                .limit(batch_size)
            )
        ).all()
    if not queued:
        return 0
    client = client_for(settings)
    sent = 0
    for report in queued:
        try:
            await client.v1.billing.meter_events.create_async(
                {
                    "event_name": settings.stripe_meter_event_name,
                    "payload": {
                        "stripe_customer_id": report.stripe_customer_id,
                        "value": str(report.quantity),
                    },
                    "identifier": report.identifier,
                    "timestamp": int(report.hour.timestamp()),
                },
                {"idempotency_key": report.identifier},
            )
        except stripe.StripeError as error:
            if is_unavailable(error) or _is_refused_for_our_key(error):
                await _record_failed_attempt(database, report, error, is_final=False)
                log = logger.warning if is_unavailable(error) else logger.error
                log("stripe did not take usage; %d reports stay queued: %s", len(queued) - sent, error)
                return sent
            attempts = report.attempts + 1
            if _is_worth_retrying(error) and attempts < MAX_ATTEMPTS:
                await _record_failed_attempt(database, report, error, is_final=False)
                logger.warning("stripe refused usage report %s for now: %s", report.identifier, error)
                continue
            await _record_failed_attempt(database, report, error, is_final=True)
            logger.error(
                "stripe refused usage report %s (%s of hour %s, attempt %d) for good; it is marked "
                "failed and not sent again: %s",
                report.identifier,
                report.quantity,
                f"{report.hour:%Y-%m-%d %H:00}",
                attempts,
                error,
            )
            continue
        async with database.platform_session() as session:
            await session.execute(
                update(MeterReport)
                .where(MeterReport.id == report.id)
                .values(status="sent", sent_at=func.now(), attempts=MeterReport.attempts + 1, last_error=None)
            )
        sent += 1
    return sent


async def report_store_usage(
    database: Database, settings: BillingSettings, tenant_id: uuid.UUID, *, now: dt.datetime
) -> int:
    """Queue and send every unreported hour of one store, the current one too; how many stay queued.

    For a subscription about to end with an invoice at once: an hour Stripe has not been
    told of by then is never billed. The hour under way is sent with its total so far.
    """
    await _queue_hours(database, before=hour_of(now) + dt.timedelta(hours=1), tenant_id=tenant_id)
    # A batch at a time until one sends nothing: all were sent, or Stripe stopped taking them.
    while await send_queued(database, settings, tenant_id=tenant_id) > 0:
        continue
    async with database.platform_session() as session:
        left = await session.scalar(
            select(func.count())
            .select_from(MeterReport)
            .where(MeterReport.tenant_id == tenant_id, MeterReport.status == "queued")
        )
    return int(left or 0)


async def report_usage(database: Database, *, now: dt.datetime | None = None) -> None:
    """The hourly job: queue the closed hours' totals and send what is queued (nothing offline)."""
    settings = current_settings()
    if not settings.is_online:
        return
    queued = await queue_closed_hours(database, now=now or dt.datetime.now(dt.UTC))
    sent = await send_queued(database, settings)
    logger.info("usage reporting queued %d hour totals and sent %d to Stripe", queued, sent)
