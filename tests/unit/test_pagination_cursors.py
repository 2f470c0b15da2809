"""Cursors a caller sends back: only what a list returned decodes, anything else is a 422 naming `cursor`."""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest

from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.pagination import (
    PageRequest,
    decode_cursor,
    decode_time_cursor,
    encode_cursor,
    encode_time_cursor,
)

CURSOR_ERROR = FieldError("cursor", "use the next_cursor of the previous page, or omit it to start over")
ITEM_ID = uuid.UUID("0190f2a4-5c4e-7d2a-9b1e-3f6a8c0d2e14")


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_round_trips() -> None:
    created_at = dt.datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=dt.UTC)
    assert decode_cursor(encode_cursor("a", 7), 2) == ["a", 7]
    assert decode_time_cursor(encode_time_cursor(created_at, ITEM_ID)) == (created_at, ITEM_ID)


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        # Nested deeper than the JSON parser recurses.
        _raw("[" * 5000),
        _raw("[" * 5000 + "]" * 5000),
        _raw('["2026-11-27T12:00:00+00:00", 7]'),
        _raw(f'["2026-11-27T12:00:00", "{ITEM_ID}"]'),
        _raw(f'["0001-01-01T00:00:00+00:00", "{ITEM_ID}"]'),
        _raw(f'[true, "{ITEM_ID}"]'),
    ],
    ids=["not base64 json", "deeply nested", "deeply nested closed", "int id", "naive", "too early", "bool"],
)
def test_a_crafted_time_cursor_is_a_422_naming_the_cursor(cursor: str) -> None:
    with pytest.raises(ValidationFailedError) as refused:
        decode_time_cursor(cursor)
    assert refused.value.errors == [CURSOR_ERROR]
    with pytest.raises(ValidationFailedError) as refused:
        PageRequest.parse(50, cursor)
    assert refused.value.errors == [CURSOR_ERROR]
