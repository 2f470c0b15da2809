"""Input rules of the fulfillment context: what a valid shipment or rejection is."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.ids import id_spelling
from ordersmith.platform.times import time_errors
from ordersmith.tenants.inventory.rules import WRITE_OFF_KINDS

MAX_LINES = 250
MAX_PACKAGES = 50
MAX_QUANTITY = 100_000
MAX_REASON = 1_000
# 1 tonne and 10 metres: beyond that it is freight, not a parcel.
MAX_WEIGHT_GRAMS = 1_000_000
MAX_DIMENSION_MM = 10_000
# How far ahead of our clock a caller's "now" may be: a warehouse's scanner runs a little fast.
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class LineQuantity:
    """Units of one order line (its id as given by the caller)."""

    line_id: str
    quantity: int


@dataclass(frozen=True)
class Package:
    weight_grams: int | None = None
    length_mm: int | None = None
    width_mm: int | None = None
    height_mm: int | None = None


@dataclass(frozen=True)
class ShipmentRequest:
    """What left the building: which units, with which carrier, in which parcels."""

    carrier: str
    lines: Sequence[LineQuantity]
    packages: Sequence[Package] = field(default_factory=lambda: [Package()])
    service: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    shipped_at: dt.datetime | None = None


@dataclass(frozen=True)
class RejectRequest:
    """A location turning down units of a line it was asked to ship, and why."""

    line_id: str
    quantity: int
    reason: str
    # Take the units off the location's count as this kind of adjustment (`WRITE_OFF_KINDS`);
    # None leaves the count as it is, for a person to check.
    write_off: str | None = None


def _quantity_ok(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_QUANTITY


def _text(errors: list[FieldError], name: str, value: str | None, limit: int, *, required: bool) -> None:
    if value is None or not value.strip():
        if required:
            errors.append(FieldError(name, "is required"))
        return
    if len(value) > limit:
        errors.append(FieldError(name, f"must be at most {limit} characters"))


def _measure(errors: list[FieldError], name: str, value: int | None, limit: int) -> None:
    if value is not None and (isinstance(value, bool) or not 1 <= value <= limit):
        errors.append(FieldError(name, f"must be a whole number from 1 to {limit}, or left out"))


def past_time_errors(name: str, value: dt.datetime | None, now: dt.datetime, what: str) -> list[FieldError]:
    """The time's own errors (`times.time_errors`), then whether it lies ahead of now.

    A shipment or delivery records something that happened: a time in the future would
    order a delivery before its shipment. `what` says which time to give instead.
    """
    errors = time_errors(**{name: value})
    if not errors and value is not None and value > now + MAX_CLOCK_SKEW:
        minutes = int(MAX_CLOCK_SKEW.total_seconds()) // 60
        errors.append(
            FieldError(
                name,
                f"must not be later than now (up to {minutes} minutes ahead is allowed for clock "
                f"differences); give {what}, or leave it out to mean now",
            )
        )
    return errors


def check_lines(lines: Sequence[LineQuantity], errors: list[FieldError]) -> None:
    """At least one line, each named once with 1 to 100000 units."""
    if not lines:
        errors.append(FieldError("lines", "give at least one line and its quantity"))
    if len(lines) > MAX_LINES:
        errors.append(FieldError("lines", f"at most {MAX_LINES} lines at once"))
    seen: set[str] = set()
    for index, item in enumerate(lines):
        if (spelling := id_spelling(item.line_id)) in seen:
            errors.append(FieldError(f"lines[{index}].line_id", "this line is named twice; name it once"))
        seen.add(spelling)
        if not _quantity_ok(item.quantity):
            errors.append(
                FieldError(f"lines[{index}].quantity", f"must be a whole number from 1 to {MAX_QUANTITY}")
            )


def check_shipment(request: ShipmentRequest) -> None:
    """422 naming each bad field of a shipment."""
    errors: list[FieldError] = []
    _text(errors, "carrier", request.carrier, 100, required=True)
    _text(errors, "service", request.service, 100, required=False)
    _text(errors, "tracking_number", request.tracking_number, 100, required=False)
    url = request.tracking_url
    if url is not None and (len(url) > 2000 or not url.startswith(("https://", "http://"))):
        errors.append(FieldError("tracking_url", "must be an http(s) address of at most 2000 characters"))
    now = dt.datetime.now(dt.UTC)
    errors.extend(past_time_errors("shipped_at", request.shipped_at, now, "the time the units left"))
    check_lines(request.lines, errors)
    if not request.packages:
        errors.append(FieldError("packages", "give at least one package"))
    if len(request.packages) > MAX_PACKAGES:
        errors.append(FieldError("packages", f"at most {MAX_PACKAGES} packages"))
    for index, package in enumerate(request.packages):
        _measure(errors, f"packages[{index}].weight_grams", package.weight_grams, MAX_WEIGHT_GRAMS)
        for name in ("length_mm", "width_mm", "height_mm"):
            _measure(errors, f"packages[{index}].{name}", getattr(package, name), MAX_DIMENSION_MM)
    if errors:
        raise ValidationFailedError("the shipment is invalid; see errors", errors=errors)


def check_reject(request: RejectRequest) -> None:
    """422 naming each bad field of a rejection."""
    errors: list[FieldError] = []
    if not _quantity_ok(request.quantity):
        errors.append(FieldError("quantity", f"must be a whole number from 1 to {MAX_QUANTITY}"))
    _text(errors, "reason", request.reason, MAX_REASON, required=True)
    if request.write_off is not None and request.write_off not in WRITE_OFF_KINDS:
        errors.append(
            FieldError(
                "write_off",
                "must be 'damage' (the units are broken) or 'correction' (they are not there), "
                "or left out to keep the location's count as it is",
            )
        )
    if errors:
        raise ValidationFailedError("the rejection is invalid; see errors", errors=errors)


NO_SUCH_LINE = "no such line on this order"


def _known_line(line_id: str, known: set[uuid.UUID]) -> uuid.UUID | None:
    """The order line an id the caller gave names, or None when it names none of the order's."""
    try:
        key = uuid.UUID(line_id)
    except ValueError:
        return None
    return key if key in known else None


def line_ids(
    lines: Sequence[LineQuantity], known: set[uuid.UUID], *, field_name: str = "lines"
) -> list[tuple[uuid.UUID, int]]:
    """The lines as (order line id, quantity); 422 for ids that are not lines of the order."""
    errors: list[FieldError] = []
    parsed: list[tuple[uuid.UUID, int]] = []
    for index, item in enumerate(lines):
        key = _known_line(item.line_id, known)
        if key is None:
            errors.append(FieldError(f"{field_name}[{index}].line_id", NO_SUCH_LINE))
        else:
            parsed.append((key, item.quantity))
    if errors:
        raise ValidationFailedError("some lines are not on this order; see errors", errors=errors)
    return parsed


def rejected_line(request: RejectRequest, known: set[uuid.UUID]) -> uuid.UUID:
    """The order line a rejection names; 422 on its own `line_id` field when it is not on the order."""
    key = _known_line(request.line_id, known)
    if key is None:
        raise ValidationFailedError(
            "the line is not on this order; see errors", errors=[FieldError("line_id", NO_SUCH_LINE)]
        )
    return key
