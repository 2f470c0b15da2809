"""Order edits over HTTP: preview what an edit does to lines, totals and stock, then commit it.

`POST /api/v1/orders/{id}/edits/preview` answers what committing the same body would do
now and changes nothing; `POST /api/v1/orders/{id}/edits` does it. Both answer the same
`OrderEdit`: the order (as it would be, or as it is now) and the edit's summary. Send
the preview's `edit.base_version` as `expected_version` to commit only if nothing changed
the order in between.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import requires
from ordersmith.api.orders import MAX_ORDER_BODY, AddressIn, Order
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.tenants.orders.edit_requests import (
    AddLine,
    EditOutcome,
    EditRequest,
    LineChange,
    LineEdit,
    RemoveLine,
    SetPrice,
    SetQuantity,
)
from ordersmith.tenants.orders.edit_stock import StockEffect
from ordersmith.tenants.orders.edits import edit_order, preview_edit
from ordersmith.tenants.orders.views import order_id_of


class AddIn(msgspec.Struct, tag_field="op", tag="add", forbid_unknown_fields=True):
    sku: str
    quantity: int
    # Defaults to the catalog price, which must then be in the order's currency.
    unit_price_amount: int | None = None


class SetQuantityIn(msgspec.Struct, tag_field="op", tag="set_quantity", forbid_unknown_fields=True):
    line_id: str
    # The line's live quantity (ordered - cancelled); never below what has shipped.
    quantity: int


class RemoveIn(msgspec.Struct, tag_field="op", tag="remove", forbid_unknown_fields=True):
    line_id: str


class SetPriceIn(msgspec.Struct, tag_field="op", tag="set_price", forbid_unknown_fields=True):
    line_id: str
    unit_price_amount: int


class OrderEditIn(msgspec.Struct, forbid_unknown_fields=True):
    changes: list[AddIn | SetQuantityIn | RemoveIn | SetPriceIn] = msgspec.field(default_factory=list)
    shipping_address: AddressIn | None = None
    # The version the preview showed: the edit is refused with 409 `order_changed` if it moved.
    expected_version: int | None = None


class LineChangeOut(msgspec.Struct):
    line_id: str
    line_number: int
    sku: str
    # added, changed or removed.
    action: str
    old_quantity: int | None
    new_quantity: int
    old_unit_price_amount: int | None
    new_unit_price_amount: int

    @classmethod
    def of(cls, line: LineEdit) -> LineChangeOut:
        return cls(
            str(line.line_id),
            line.line_number,
            line.sku,
            line.action,
            line.old_quantity,
            line.new_quantity,
            line.old_unit_price_amount,
            line.new_unit_price_amount,
        )


class LocationStockOut(msgspec.Struct):
    location_id: str
    location_code: str
    # Units newly reserved here, and units given back here.
    reserved: int
    released: int
    # Why units were reserved here; null when units were only released.
    reason: str | None


class StockChangeOut(msgspec.Struct):
    sku: str
    variant_id: str
    reserved: int
    released: int
    # Units added to (positive) or dropped from (negative) the SKU's backorders.
    backordered_change: int
    locations: list[LocationStockOut]

    @classmethod
    def of(cls, effect: StockEffect) -> StockChangeOut:
        return cls(
            effect.sku,
            str(effect.variant_id),
            effect.reserved,
            effect.released,
            effect.backordered_change,
            [
                LocationStockOut(
                    str(item.location_id), item.location_code, item.reserved, item.released, item.reason
                )
                for item in effect.locations
            ],
        )


class EditSummary(msgspec.Struct):
    # The order's version the edit was computed on, and its version after it.
    base_version: int
    version: int
    currency: str
    old_subtotal_amount: int
    new_subtotal_amount: int
    old_total_amount: int
    new_total_amount: int
    # new - old total: positive means the customer pays more, negative that they get money back.
    difference_amount: int
    # What the customer is counted as having settled, and from what: "order_total" until
    # payments exist (the total before the edit), then "payments".
    settled_amount: int
    settled_basis: str
    balance_due_amount: int
    refund_owed_amount: int
    shipping_address_changed: bool
    lines: list[LineChangeOut]
    stock: list[StockChangeOut]

    @classmethod
    def of(cls, outcome: EditOutcome) -> EditSummary:
        order = outcome.view.order
        return cls(
            base_version=outcome.base_version,
            version=order.version,
            currency=order.currency,
            old_subtotal_amount=outcome.old_subtotal_amount,
            new_subtotal_amount=order.subtotal_amount,
            old_total_amount=outcome.old_total_amount,
            new_total_amount=order.total_amount,
            difference_amount=outcome.difference_amount,
            settled_amount=outcome.settled_amount,
            settled_basis=outcome.settled_basis,
            balance_due_amount=outcome.balance_due_amount,
            refund_owed_amount=outcome.refund_owed_amount,
            shipping_address_changed=outcome.shipping_address_changed,
            lines=[LineChangeOut.of(line) for line in outcome.lines],
            stock=[StockChangeOut.of(effect) for effect in outcome.stock],
        )


class OrderEdit(msgspec.Struct):
    # The order after the edit, or for a preview as it would be.
    order: Order
    edit: EditSummary

    @classmethod
    def of(cls, outcome: EditOutcome) -> OrderEdit:
        return cls(Order.of_view(outcome.view), EditSummary.of(outcome))


def _change(item: AddIn | SetQuantityIn | RemoveIn | SetPriceIn) -> LineChange:
    if isinstance(item, AddIn):
        return AddLine(item.sku, item.quantity, item.unit_price_amount)
    if isinstance(item, SetQuantityIn):
        return SetQuantity(item.line_id, item.quantity)
    if isinstance(item, RemoveIn):
        return RemoveLine(item.line_id)
    return SetPrice(item.line_id, item.unit_price_amount)


def _request(data: OrderEditIn) -> EditRequest:
    return EditRequest(
        changes=[_change(item) for item in data.changes],
        shipping_address=None
        if data.shipping_address is None
        else msgspec.structs.asdict(data.shipping_address),
        expected_version=data.expected_version,
    )


@post(
    "/api/v1/orders/{order_id:str}/edits/preview",
    operation_id="previewOrderEdit",
    summary="Show what an edit would do to an order's lines, totals and stock, changing nothing.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["orders"],
    status_code=200,
    request_max_body_size=MAX_ORDER_BODY,
)
async def preview_order_edit(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
    data: JSONBody[OrderEditIn],
) -> OrderEdit:
    """Computed exactly as committing would be, on the same locked stock, then rolled back."""
    assert principal.tenant is not None
    outcome = await preview_edit(
        principal.tenant.context, tenant_session, order_id_of(order_id), _request(data), actor=principal.actor
    )
    return OrderEdit.of(outcome)


@post(
    "/api/v1/orders/{order_id:str}/edits",
    operation_id="editOrder",
    summary="Add, remove or change lines and the shipping address of a placed or confirmed order.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["orders"],
    request_max_body_size=MAX_ORDER_BODY,
    status_code=200,
)
async def add_order_edit(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
    data: JSONBody[OrderEditIn],
) -> Response[OrderEdit]:
    """Stock moves with the edit, all or nothing; an `Idempotency-Key` makes retries safe."""
    assert principal.tenant is not None
    tenant = principal.tenant.context
    order = order_id_of(order_id)

    async def apply() -> OrderEdit:
        outcome = await edit_order(tenant, tenant_session, order, _request(data), actor=principal.actor)
        return OrderEdit.of(outcome)

    return await idempotency.once(request, principal, tenant_session, data, apply, status_code=200)


ROUTES = [preview_order_edit, add_order_edit]
