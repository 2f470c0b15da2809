"""What an order edit is: the line changes a caller asks for, their checks, and the outcome.

`edits.py` applies an edit (or previews it); this module holds the values that cross
its boundary, so the API and tests can build and read them without the machinery.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ordersmith.platform.errors import FieldError
from ordersmith.tenants.catalog.rules import check_price, check_sku_code
from ordersmith.tenants.customers.rules import check_address, trimmed_address
from ordersmith.tenants.orders.edit_stock import StockEffect
from ordersmith.tenants.orders.rules import MAX_LINES, check_quantity, raise_if
from ordersmith.tenants.orders.views import OrderView

MAX_CHANGES = MAX_LINES


@dataclass(frozen=True)
class AddLine:
    """A new line: a SKU, a quantity, and a price when not the catalog's."""

    sku: str
    quantity: int
    unit_price_amount: int | None = None


@dataclass(frozen=True)
class SetQuantity:
    """A line's new live quantity (ordered - cancelled)."""

    line_id: str
    quantity: int


@dataclass(frozen=True)
class RemoveLine:
    """Cancel what is left of a line."""

    line_id: str


@dataclass(frozen=True)
class SetPrice:
    line_id: str
    unit_price_amount: int


LineChange = AddLine | SetQuantity | RemoveLine | SetPrice


@dataclass(frozen=True)
class EditRequest:
    """What `preview_edit` and `edit_order` need; the API fills it from the request body."""

    changes: Sequence[LineChange] = ()
    shipping_address: Mapping[str, Any] | None = None
    # The version a preview was computed on: the commit refuses if the order moved since.
    expected_version: int | None = None

    def __post_init__(self) -> None:
        # Trimmed as placement stores it, so padding alone is no change.
        if self.shipping_address is not None:
            object.__setattr__(self, "shipping_address", trimmed_address(self.shipping_address))


@dataclass(frozen=True)
class LineEdit:
    """One line before and after the edit; the old values are None for an added line."""

    line_id: uuid.UUID
    line_number: int
    sku: str
    action: str
    old_quantity: int | None
    new_quantity: int
    old_unit_price_amount: int | None
    new_unit_price_amount: int


@dataclass(frozen=True)
class EditOutcome:
    """The order after the edit (or as it would be) and what the edit did."""

    view: OrderView
    base_version: int
    old_subtotal_amount: int
    old_total_amount: int
    settled_amount: int
    settled_basis: str
    lines: list[LineEdit]
    shipping_address_changed: bool
    stock: list[StockEffect]

    @property
    def difference_amount(self) -> int:
        """New total - old total: positive when the customer pays more."""
        return self.view.order.total_amount - self.old_total_amount

    @property
    def balance_due_amount(self) -> int:
        return max(self.view.order.total_amount - self.settled_amount, 0)

    @property
    def refund_owed_amount(self) -> int:
        return max(self.settled_amount - self.view.order.total_amount, 0)


def check_edit(request: EditRequest) -> None:
    """Everything that can be checked without the database; 422 naming each bad field."""
    errors: list[FieldError] = []
    if not request.changes and request.shipping_address is None:
        errors.append(FieldError("changes", "give at least one change or a shipping_address"))
    if len(request.changes) > MAX_CHANGES:
        errors.append(FieldError("changes", f"an edit has at most {MAX_CHANGES} changes"))
    for index, item in enumerate(request.changes):
        prefix = f"changes[{index}]."
        if isinstance(item, AddLine):
            check_sku_code(prefix + "sku", item.sku, errors)
            check_quantity(prefix + "quantity", item.quantity, errors)
            if item.unit_price_amount is not None:
                check_price(prefix + "unit_price_amount", item.unit_price_amount, errors)
        elif isinstance(item, SetQuantity):
            check_quantity(prefix + "quantity", item.quantity, errors)
        elif isinstance(item, SetPrice):
            check_price(prefix + "unit_price_amount", item.unit_price_amount, errors)
    if request.shipping_address is not None:
        check_address(request.shipping_address, "shipping_address.", errors)
    raise_if(errors)
