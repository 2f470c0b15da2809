"""Input rules of the returns context."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.ids import id_spelling
from ordersmith.tenants.orders.rules import MAX_TAGS, LineRequest, check_lines, check_tags, clean_tags
from ordersmith.tenants.returns.models import DISPOSITIONS, REASON_CODES

MAX_LINES = 250
MAX_QUANTITY = 100_000
MAX_NOTE = 1_000
MAX_AMOUNT = 10**12
# What units held for inspection may become.
DECISIONS = ("restock", "damaged")
# Every exchange order carries this tag.
EXCHANGE_TAG = "exchange"


@dataclass(frozen=True)
class ReturnLineRequest:
    """Units of one order line the customer sends back, and why."""

    line_id: str
    quantity: int
    reason_code: str
    note: str = ""


@dataclass(frozen=True)
class ReturnRequest:
    lines: Sequence[ReturnLineRequest]
    note: str = ""


@dataclass(frozen=True)
class DispositionRequest:
    """What became of some units of a return line; restocked units name the location they go to."""

    return_line_id: str
    disposition: str
    quantity: int
    location_id: str | None = None


@dataclass(frozen=True)
class ExchangeLine:
    sku: str
    quantity: int
    # Defaults to 0: the returned units pay for the replacement.
    unit_price_amount: int | None = None


@dataclass(frozen=True)
class ExchangeRequest:
    lines: Sequence[ExchangeLine]
    note: str = ""
    tags: Sequence[str] = field(default_factory=list)


def whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_note(errors: list[FieldError], name: str, value: str, *, required: bool = False) -> None:
    if required and not value.strip():
        errors.append(FieldError(name, f"say why, in 1 to {MAX_NOTE} characters"))
    elif len(value) > MAX_NOTE:
        errors.append(FieldError(name, f"must be at most {MAX_NOTE} characters"))


def check_return(request: ReturnRequest) -> None:
    """422 naming each bad field of a return request."""
    errors: list[FieldError] = []
    check_note(errors, "note", request.note)
    if not request.lines:
        errors.append(FieldError("lines", "give at least one line to return"))
    if len(request.lines) > MAX_LINES:
        errors.append(FieldError("lines", f"at most {MAX_LINES} lines"))
    seen: set[str] = set()
    for index, line in enumerate(request.lines):
        if (spelling := id_spelling(line.line_id)) in seen:
            errors.append(FieldError(f"lines[{index}].line_id", "this line is named twice; name it once"))
        seen.add(spelling)
        if not whole(line.quantity, 1, MAX_QUANTITY):
            errors.append(
                FieldError(f"lines[{index}].quantity", f"must be a whole number from 1 to {MAX_QUANTITY}")
            )
        if line.reason_code not in REASON_CODES:
            errors.append(
                FieldError(f"lines[{index}].reason_code", f"must be one of {', '.join(REASON_CODES)}")
            )
        check_note(errors, f"lines[{index}].note", line.note)
    if errors:
        raise ValidationFailedError("the return is invalid; see errors", errors=errors)


def check_exchange(request: ExchangeRequest) -> tuple[list[LineRequest], list[str]]:
    """422 naming each bad field of an exchange as the caller sent it; the replacement's lines and tags."""
    errors: list[FieldError] = []
    check_note(errors, "note", request.note)
    lines = [
        LineRequest(line.sku, line.quantity, 0 if line.unit_price_amount is None else line.unit_price_amount)
        for line in request.lines
    ]
    check_lines(lines, errors)
    check_tags(request.tags, errors)
    # The replacement is tagged `exchange` too, so the caller's tags are checked before it is added.
    tags = clean_tags([EXCHANGE_TAG, *request.tags])
    if len(request.tags) <= MAX_TAGS < len(tags):
        errors.append(FieldError("tags", f"must hold at most {MAX_TAGS - 1} tags besides '{EXCHANGE_TAG}'"))
    if errors:
        raise ValidationFailedError("the exchange is invalid; see errors", errors=errors)
    return lines, tags


def _parse_dispositions(
    dispositions: Sequence[DispositionRequest],
    line_ids: Iterable[uuid.UUID],
    allowed: Sequence[str],
    field: str,
) -> tuple[list[tuple[uuid.UUID, str, int, uuid.UUID | None]], list[FieldError]]:
    """Each entry checked on its own: (return line id, disposition, quantity, location id), and the errors."""
    errors: list[FieldError] = []
    parsed: list[tuple[uuid.UUID, str, int, uuid.UUID | None]] = []
    known = set(line_ids)
    for index, item in enumerate(dispositions):
        name = f"{field}[{index}]"
        try:
            line_id: uuid.UUID | None = uuid.UUID(item.return_line_id)
        except ValueError:
            line_id = None
        if line_id is None or line_id not in known:
            errors.append(FieldError(f"{name}.return_line_id", "no such line on this return"))
            continue
        if item.disposition not in allowed:
            errors.append(FieldError(f"{name}.disposition", f"must be one of {', '.join(allowed)}"))
            continue
        if not whole(item.quantity, 1, MAX_QUANTITY):
            errors.append(FieldError(f"{name}.quantity", f"must be a whole number from 1 to {MAX_QUANTITY}"))
            continue
        location: uuid.UUID | None = None
        if item.disposition == "restock":
            try:
                location = uuid.UUID(item.location_id or "")
            except ValueError:
                message = (
                    "restocked units go to a location: give its id"
                    if item.location_id is None
                    else "is not a location id; use an id from GET /api/v1/locations"
                )
                errors.append(FieldError(f"{name}.location_id", message))
                continue
        elif item.location_id is not None:
            errors.append(FieldError(f"{name}.location_id", "only restocked units go to a location"))
            continue
        parsed.append((line_id, item.disposition, item.quantity, location))
    return parsed, errors


def check_dispositions(
    dispositions: Sequence[DispositionRequest], quantities: dict[uuid.UUID, int]
) -> list[tuple[uuid.UUID, str, int, uuid.UUID | None]]:
    """Every unit of every return line gets exactly one disposition; 422 otherwise.

    Returns (return line id, disposition, quantity, location id) per entry.
    """
    parsed, errors = _parse_dispositions(dispositions, quantities, DISPOSITIONS, "dispositions")
    if not dispositions:
        errors.insert(0, FieldError("dispositions", "give a disposition for every unit received"))
    given: dict[uuid.UUID, int] = dict.fromkeys(quantities, 0)
    for line_id, _, quantity, _ in parsed:
        given[line_id] += quantity
    for line_id, quantity in quantities.items():
        if not errors and given[line_id] != quantity:
            errors.append(
                FieldError(
                    "dispositions",
                    f"return line {line_id} has {quantity} unit(s) and {given[line_id]} got a disposition; "
                    "give each unit exactly one",
                )
            )
    if errors:
        raise ValidationFailedError("the receipt is invalid; see errors", errors=errors)
    return parsed


def check_decisions(
    decisions: Sequence[DispositionRequest], line_ids: Iterable[uuid.UUID]
) -> list[tuple[uuid.UUID, str, int, uuid.UUID | None]]:
    """Decisions on units held for inspection: restock (to a location) or damaged; 422 naming each bad one.

    Returns (return line id, disposition, quantity, location id) per entry; whether that
    many are under inspection is the caller's to check.
    """
    parsed, errors = _parse_dispositions(decisions, line_ids, DECISIONS, "decisions")
    if not decisions:
        errors.insert(0, FieldError("decisions", "decide at least one unit under inspection"))
    if errors:
        raise ValidationFailedError("the inspection is invalid; see errors", errors=errors)
    return parsed


def check_amount(amount: int | None, name: str = "amount") -> None:
    if amount is not None and not whole(amount, 1, MAX_AMOUNT):
        raise ValidationFailedError(
            "the amount is invalid; see errors",
            errors=[FieldError(name, "must be a whole number of minor units, 1 or more (cents, not euros)")],
        )
