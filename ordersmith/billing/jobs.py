"""The billing room's periodic jobs, for the composition root to add to the scheduler's list."""

from __future__ import annotations

from ordersmith.billing.ledger import close_last_month
from ordersmith.billing.reporting import report_usage
from ordersmith.billing.seats import record_active_seats
from ordersmith.platform.database import Database
from ordersmith.platform.workers import PeriodicJob


async def _report_usage(database: Database) -> None:
    await report_usage(database)


async def _record_active_seats(database: Database) -> None:
    await record_active_seats(database)


async def _close_last_month(database: Database) -> None:
    await close_last_month(database)


BILLING_JOBS = [
    # Closed hours go to Stripe within the hour; a failed run's queue goes with the next.
    PeriodicJob(name="billing.report_usage", every_seconds=3600, run=_report_usage),
    # Offline only: last month's local invoices, once per tenant (a daily run catches up).
    # Each hour's seat count; four runs an hour so a late or skipped run still leaves the
    # hour its value (the first run in an hour records it, the others write nothing).
    PeriodicJob(name="billing.record_active_seats", every_seconds=900, run=_record_active_seats),
    PeriodicJob(name="billing.close_local_invoices", every_seconds=24 * 3600, run=_close_last_month),
]
