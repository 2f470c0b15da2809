"""Ids: version 7, unique, and in the order they were made within a process."""

from __future__ import annotations

import uuid
from unittest import mock

from ordersmith.platform import ids


def test_ids_made_in_one_millisecond_sort_in_the_order_they_were_made() -> None:
    with mock.patch("time.time_ns", return_value=1_800_000_000_000_000_000):
        made = [ids.uuid7() for _ in range(5_000)]
    assert made == sorted(made)
    assert len(set(made)) == 5_000
    assert {(item.version, item.variant) for item in made} == {(7, uuid.RFC_4122)}
    assert made[0].int >> 80 == 1_800_000_000_000


def test_a_clock_stepping_back_does_not_break_the_order() -> None:
    with mock.patch("time.time_ns", return_value=1_900_000_000_000_000_000):
        before = ids.uuid7()
    with mock.patch("time.time_ns", return_value=1_899_999_999_000_000_000):
        after = ids.uuid7()
    assert after > before
    assert after.int >> 80 == 1_900_000_000_000
