"""Cursor pagination of lists: `?limit=&cursor=` in, `{"data": [...], "next_cursor": ...}` out.

Cursors are opaque to callers: the keyset of the last item returned, base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, TypeVarTuple

from sqlalchemy import Select, tuple_

from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.times import in_range

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

T = TypeVar("T")
Columns = TypeVarTuple("Columns")
CursorKey = tuple[dt.datetime, uuid.UUID]


def limit_error(maximum: int) -> FieldError:
    return FieldError("limit", f"must be a whole number from 1 to {maximum}")


def cursor_error() -> FieldError:
    return FieldError("cursor", "use the next_cursor of the previous page, or omit it to start over")


def check_limit(limit: int, maximum: int = MAX_PAGE_SIZE) -> None:
    """422 unless 1 <= limit <= maximum."""
    if not 1 <= limit <= maximum:
        raise ValidationFailedError(f"limit must be between 1 and {maximum}", errors=[limit_error(maximum)])


def encode_cursor(*parts: str | int) -> str:
    """An opaque cursor carrying `parts`."""
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def bad_cursor() -> ValidationFailedError:
    return ValidationFailedError("the cursor is not one this list returned", errors=[cursor_error()])


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The parts of a cursor made by `encode_cursor`; 422 if it is not one."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    # RecursionError: a crafted cursor of a thousand nested brackets is deeper than the parser goes.
    except (binascii.Error, ValueError, TypeError, RecursionError):
        parts = None
    if not isinstance(parts, list) or len(parts) != arity:
        raise bad_cursor()
    return parts


def decode_time_cursor(cursor: str) -> CursorKey:
    """A (created_at, id) cursor; 422 if it is not one."""
    created_at, item_id = decode_cursor(cursor, 2)
    try:
        key = (dt.datetime.fromisoformat(created_at), uuid.UUID(item_id))
    except (ValueError, TypeError, AttributeError):
        raise ValidationFailedError(
            "the cursor is not one this list returned", errors=[cursor_error()]
        ) from None
    if key[0].tzinfo is None or not in_range(key[0]):
        raise bad_cursor()
    return key


def encode_time_cursor(created_at: dt.datetime, item_id: uuid.UUID) -> str:
    return encode_cursor(created_at.isoformat(), str(item_id))


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and the cursor of the next one (None on the last page)."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class PageRequest:
    """How many items to return, and after which one (keyset on created_at, id)."""

    limit: int = DEFAULT_PAGE_SIZE
    after: CursorKey | None = None

    @classmethod
    def parse(cls, limit: int, cursor: str | None, maximum: int = MAX_PAGE_SIZE) -> PageRequest:
        """Check `?limit=&cursor=`; 422 naming each parameter that is wrong."""
        errors = [] if 1 <= limit <= maximum else [limit_error(maximum)]
        after = None
        if cursor:
            try:
                after = decode_time_cursor(cursor)
            except ValidationFailedError as error:
                errors.extend(error.errors)
        if errors:
            raise ValidationFailedError("the list parameters are invalid; see errors", errors=errors)
        return cls(limit, after)

    def apply(
        self, query: Select[*Columns], created_at: Any, item_id: Any, *, newest_first: bool
    ) -> Select[*Columns]:
        """The query limited to this page (one extra row tells whether another page follows)."""
        key = tuple_(created_at, item_id)
        if self.after is not None:
            bound = tuple_(*self.after)
            query = query.where(key < bound if newest_first else key > bound)
        order = (created_at.desc(), item_id.desc()) if newest_first else (created_at, item_id)
        return query.order_by(*order).limit(self.limit + 1)

    def cut(self, rows: Sequence[T], key: Callable[[T], CursorKey]) -> Page[T]:
        """The page's items and the cursor that resumes after the last of them."""
        if len(rows) <= self.limit:
            return Page(list(rows), None)
        items = list(rows[: self.limit])
        return Page(items, encode_time_cursor(*key(items[-1])))
