"""Requests a minute per store: counts restart when the minute changes, and stores count apart."""

from __future__ import annotations

import uuid

from ordersmith.api.rate_limits import RequestWindows


def test_counts_restart_each_minute_and_each_store_counts_alone() -> None:
    windows, shop, other = RequestWindows(), uuid.uuid4(), uuid.uuid4()
    assert [windows.count(shop, at) for at in (60.0, 61.5, 119.999)] == [1, 2, 3]
    assert windows.count(other, 119.999) == 1
    assert windows.count(shop, 120.0) == 1
    assert windows.count(other, 120.5) == 1
