"""The platform's own periodic jobs."""

from __future__ import annotations

import datetime as dt
import logging

from ordersmith.platform.database import Database
from ordersmith.platform.outbox import purge_published
from ordersmith.platform.workers import PeriodicJob

logger = logging.getLogger(__name__)

# Published events are kept a week for inspection and replay, then deleted.
OUTBOX_RETENTION = dt.timedelta(days=7)


async def purge_outbox(database: Database) -> None:
    """Delete outbox rows published more than a week ago."""
    deleted = await purge_published(database, older_than=OUTBOX_RETENTION)
    logger.info("outbox purge deleted %d published events", deleted)


PLATFORM_JOBS = [PeriodicJob(name="outbox.purge", every_seconds=3600, run=purge_outbox)]
