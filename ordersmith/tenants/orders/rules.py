"""Input rules of the orders context: what a valid order request is."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.tenants.catalog.models import MAX_AMOUNT
from ordersmith.tenants.catalog.rules import check_currency, check_price, check_sku_code
from ordersmith.tenants.customers.rules import TAG, check_address, normalize_tags, trimmed_address
from ordersmith.tenants.orders.models import HOLD_TYPES

CHANNEL = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
MAX_LINES = 250
MAX_LINE_QUANTITY = 100_000
MAX_TAGS = 20
MAX_REASON = 1_000


@dataclass(frozen=True)
class LineRequest:
    """One line as asked for: a SKU code, a quantity, and a price when not the catalog's."""

    sku: str
    quantity: int
    unit_price_amount: int | None = None


@dataclass(frozen=True)
class HoldRequest:
    type: str
    reason: str
    release_role: str = "agent"


@dataclass(frozen=True)
class OrderRequest:
    """What `place_order` needs; the API fills it from the request body."""

    customer_id: uuid.UUID
    lines: Sequence[LineRequest]
    shipping_address: Mapping[str, Any]
    channel: str = "api"
    external_reference: str | None = None
    currency: str | None = None
    tags: Sequence[str] = field(default_factory=list)
    hold: HoldRequest | None = None

    def __post_init__(self) -> None:
        # Stored as it is checked, trimmed, like a customer's addresses.
        object.__setattr__(self, "shipping_address", trimmed_address(self.shipping_address))


def check_quantity(name: str, value: Any, errors: list[FieldError]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LINE_QUANTITY:
        errors.append(FieldError(name, f"must be a whole number from 1 to {MAX_LINE_QUANTITY}"))


def check_lines(lines: Sequence[LineRequest], errors: list[FieldError]) -> None:
    if not lines:
        errors.append(FieldError("lines", "an order needs at least one line"))
    if len(lines) > MAX_LINES:
        errors.append(FieldError("lines", f"an order has at most {MAX_LINES} lines"))
    for index, line in enumerate(lines):
        check_sku_code(f"lines[{index}].sku", line.sku, errors)
        check_quantity(f"lines[{index}].quantity", line.quantity, errors)
        if line.unit_price_amount is not None:
            check_price(f"lines[{index}].unit_price_amount", line.unit_price_amount, errors)


def check_hold(hold: HoldRequest, prefix: str, errors: list[FieldError]) -> None:
    if hold.type not in HOLD_TYPES:
        errors.append(FieldError(prefix + "type", f"must be one of {', '.join(HOLD_TYPES)}"))
    if not hold.reason.strip() or len(hold.reason) > MAX_REASON:
        errors.append(FieldError(prefix + "reason", f"say why, in 1 to {MAX_REASON} characters"))
    if hold.release_role not in ("owner", "admin", "manager", "agent"):
        errors.append(FieldError(prefix + "release_role", "must be one of owner, admin, manager, agent"))


def check_tags(tags: Sequence[str], errors: list[FieldError]) -> None:
    if len(tags) > MAX_TAGS:
        errors.append(FieldError("tags", f"must hold at most {MAX_TAGS} tags"))
    for index, tag in enumerate(tags):
        if not TAG.fullmatch(tag.strip()):
            errors.append(FieldError(f"tags[{index}]", "must be 1 to 50 letters, digits, spaces or . : / -"))


def check_order(request: OrderRequest) -> None:
    """Everything that can be checked without the database; 422 naming each bad field."""
    errors: list[FieldError] = []
    check_lines(request.lines, errors)
    check_address(request.shipping_address, "shipping_address.", errors)
    if not CHANNEL.fullmatch(request.channel):
        errors.append(FieldError("channel", "must be 1 to 40 lower-case letters, digits, '.', '_' or '-'"))
    if request.external_reference is not None and not 1 <= len(request.external_reference) <= 200:
        errors.append(FieldError("external_reference", "must be 1 to 200 characters"))
    if request.currency is not None:
        check_currency("currency", request.currency, errors)
    check_tags(request.tags, errors)
    if request.hold is not None:
        check_hold(request.hold, "hold.", errors)
    raise_if(errors)


def clean_tags(tags: Sequence[str]) -> list[str]:
    return normalize_tags(list(tags))


def check_total(name: str, amount: int, errors: list[FieldError]) -> None:
    if amount > MAX_AMOUNT:
        errors.append(FieldError(name, f"the amount would exceed {MAX_AMOUNT} minor units; split the order"))


def raise_if(errors: list[FieldError]) -> None:
    if errors:
        raise ValidationFailedError("the order is invalid; see errors", errors=errors)
