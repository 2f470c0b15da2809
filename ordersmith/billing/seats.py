"""Active seats metered as a gauge: one snapshot per store and UTC hour, whatever the runs.

A periodic job counts each active store's active members (as the seat limit counts them)
and records the count as one usage event whose id is made of the store, the meter and the
hour. The first run in an hour records it; later runs in the same hour find the id (or,
before that, the hour already kept) and write nothing, so two schedulers, a retry or a
job run every quarter of an hour all leave one value per hour. An hour the job did not run
in has no value; a period reports its largest hour (`metering.GAUGE_METERS`).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy import and_, exists, func, select

from ordersmith.billing.metering import Recorded, UsageRecord, hour_of, record_usages
from ordersmith.platform.billing_models import UsageHour
from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import Membership
from ordersmith.platform.models import Tenant, TenantStatus
from ordersmith.platform.plans import Meter

logger = logging.getLogger(__name__)

SOURCE = "seats.snapshot"
# Fixed forever: the ids of past snapshots are derived from it.
_USAGE_NAMESPACE = uuid.UUID("0b6f4a52-8d1e-4f7a-b3c9-5e2d7a90c6f8")


def seats_usage_id(tenant_id: uuid.UUID, hour: dt.datetime) -> uuid.UUID:
    """The id of a store's seat count for one hour: the same store and hour, the same id."""
    return uuid.uuid5(_USAGE_NAMESPACE, f"{tenant_id}:{Meter.SEATS.value}:{hour_of(hour):%Y%m%d%H}")


async def record_active_seats(database: Database, *, now: dt.datetime | None = None) -> Recorded:
    """Record each active store's active members for the hour of `now`, unless that hour has its count."""
    moment = now or dt.datetime.now(dt.UTC)
    hour = hour_of(moment)
    async with database.platform_session() as session:
        counts = (
            await session.execute(
                select(Membership.tenant_id, func.count())
                .join(Tenant, Tenant.id == Membership.tenant_id)
                .where(
                    Tenant.status == TenantStatus.ACTIVE.value,
                    Membership.status == "active",
                    # Stores counted earlier in the hour are skipped before any write.
                    ~exists().where(
                        and_(
                            UsageHour.tenant_id == Membership.tenant_id,
                            UsageHour.meter == Meter.SEATS.value,
                            UsageHour.hour == hour,
                        )
                    ),
                )
                .group_by(Membership.tenant_id)
            )
        ).all()
        recorded = await record_usages(
            session,
            [
                UsageRecord(
                    id=seats_usage_id(tenant_id, hour),
                    tenant_id=tenant_id,
                    meter=Meter.SEATS,
                    occurred_at=moment,
                    quantity=seats,
                    source=SOURCE,
                    subject_id=None,
                )
                for tenant_id, seats in counts
            ],
        )
    logger.info("seat counts of %s recorded for %d stores", f"{hour:%Y-%m-%d %H}:00", recorded.events)
    return recorded
