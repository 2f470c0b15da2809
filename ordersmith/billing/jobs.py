"""The billing room's periodic jobs, for the composition root to add to the scheduler's list."""

from __future__ import annotations

from ordersmith.billing.ledger import close_last_month
from ordersmith.billing.reporting import report_usage
from ordersmith.platform.database import Database
from ordersmith.platform.workers import PeriodicJob


async def _report_usage(database: Database) -> None:
    await report_usage(database)


async def _close_last_month(database: Database) -> None:
    await close_last_month(database)


BILLING_JOBS = [
    # Closed hours go to Stripe within the hour; a failed run's queue goes with the next.
    PeriodicJob(name="billing.report_usage", every_seconds=3600, run=_report_usage),
    # Offline only: last month's local invoices, once per tenant (a daily run catches up).
    PeriodicJob(name="billing.close_local_invoices", every_seconds=24 * 3600, run=_close_last_month),
]
