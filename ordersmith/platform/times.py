"""Times a caller sends: they carry a zone, and lie where the database can store them.

Python holds years 1 to 9999 in any zone, PostgreSQL and the driver convert to UTC: a
time near either end (0001-01-01T00:00+01:00) cannot be converted and would fail deep
in a query. Every time taken from a caller (a filter, a cursor, a date in a body) is
checked here first, so that it is a 422 naming the field.
"""

from __future__ import annotations

import datetime as dt

from ordersmith.platform.errors import FieldError

# Python's own range, less a month at the start (a report looks 30 days back from its
# end) and a day at the end: whatever the offset, such a time converts to UTC.
EARLIEST = dt.datetime(1, 2, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
EXAMPLE = "2026-11-27T00:00:00Z"


def in_range(value: dt.datetime) -> bool:
    """Whether an aware time lies from EARLIEST up to (not including) LATEST, in UTC."""
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        return False
    return EARLIEST <= utc < LATEST


def time_error(name: str, value: dt.datetime | None) -> FieldError | None:
    """Why a time a caller sent cannot be used, or None when it can (or was not sent)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return FieldError(name, f"must carry a time zone, such as {EXAMPLE}")
    if not in_range(value):
        return FieldError(name, f"must lie between 0001-02-01 and 9999-12-30, such as {EXAMPLE}")
    return None


def time_errors(**times: dt.datetime | None) -> list[FieldError]:
    """`time_error` of each named time, in the order given."""
    return [error for name, value in times.items() if (error := time_error(name, value)) is not None]


def range_errors(
    after_name: str, after: dt.datetime | None, before_name: str, before: dt.datetime | None
) -> list[FieldError]:
    """The times' own errors, then whether `after` comes before `before` when both are usable."""
    errors = time_errors(**{after_name: after, before_name: before})
    if not errors and after is not None and before is not None and after >= before:
        errors.append(FieldError(after_name, f"must be earlier than {before_name}"))
    return errors
