"""Times a caller sends: a zone, and a moment the database can store."""

from __future__ import annotations

import datetime as dt

from ordersmith.platform.errors import FieldError
from ordersmith.platform.times import in_range, range_errors, time_error

PLUS_ONE = dt.timezone(dt.timedelta(hours=1))
MINUS_FIVE = dt.timezone(dt.timedelta(hours=-5))
OUT_OF_RANGE = "must lie between 0001-02-01 and 9999-12-30, such as 2026-11-27T00:00:00Z"


def test_the_ends_of_pythons_range_are_refused_where_utc_would_overflow() -> None:
    # Year 1 at +01:00 is year 0 in UTC, and the last day of 9999 at -05:00 is year 10000.
    assert in_range(dt.datetime(1, 1, 1, tzinfo=PLUS_ONE)) is False
    assert in_range(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=MINUS_FIVE)) is False
    # A month is kept at the start (a report looks 30 days back), a day at the end.
    assert in_range(dt.datetime(1, 1, 31, 23, 59, tzinfo=dt.UTC)) is False
    assert in_range(dt.datetime(1, 2, 1, tzinfo=dt.UTC)) is True
    assert in_range(dt.datetime(1, 2, 1, 0, 30, tzinfo=PLUS_ONE)) is False
    assert in_range(dt.datetime(1900, 1, 1, tzinfo=dt.UTC)) is True
    assert in_range(dt.datetime(9999, 12, 30, 23, 59, tzinfo=dt.UTC)) is True
    assert in_range(dt.datetime(9999, 12, 31, tzinfo=dt.UTC)) is False


def test_a_time_error_names_the_field_and_says_what_to_send() -> None:
    assert time_error("shipped_at", None) is None
    assert time_error("shipped_at", dt.datetime(2026, 11, 27, tzinfo=PLUS_ONE)) is None
    assert time_error("shipped_at", dt.datetime(2026, 11, 27)) == FieldError(
        "shipped_at", "must carry a time zone, such as 2026-11-27T00:00:00Z"
    )
    assert time_error("delivered_at", dt.datetime(1, 1, 1, tzinfo=PLUS_ONE)) == FieldError(
        "delivered_at", OUT_OF_RANGE
    )


def test_a_range_is_checked_once_both_ends_are_usable() -> None:
    early = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    late = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    assert range_errors("created_after", early, "created_before", late) == []
    assert range_errors("created_after", early, "created_before", None) == []
    assert range_errors("created_after", late, "created_before", early) == [
        FieldError("created_after", "must be earlier than created_before")
    ]
    assert range_errors("created_after", late, "created_before", late) == [
        FieldError("created_after", "must be earlier than created_before")
    ]
    ancient = dt.datetime(1, 1, 1, tzinfo=PLUS_ONE)
    assert range_errors("created_after", late, "created_before", ancient) == [
        FieldError("created_before", OUT_OF_RANGE)
    ]
