"""Fulfillment: releasing orders to their locations, shipping (split, tracked), delivery, rejections."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import requires
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.pagination import DEFAULT_PAGE_SIZE, PageRequest
from ordersmith.tenants.fulfillment.rejection import Rejection, reject_line
from ordersmith.tenants.fulfillment.release import release_to_fulfillment
from ordersmith.tenants.fulfillment.rules import LineQuantity, Package, RejectRequest, ShipmentRequest
from ordersmith.tenants.fulfillment.shipments import create_shipment, mark_delivered
from ordersmith.tenants.fulfillment.views import (
    FulfillmentOrderView,
    ShipmentView,
    fulfillment_order_id_of,
    fulfillment_order_view,
    fulfillment_orders_of,
    list_fulfillment_orders,
    shipment_id_of,
    shipment_view,
)
from ordersmith.tenants.inventory.service import location_id_of
from ordersmith.tenants.orders.views import order_id_of, order_row


class FulfillmentLine(msgspec.Struct):
    line_id: str
    line_number: int
    sku: str
    name: str
    # Still to ship from this location (its live reservation for the line).
    quantity_reserved: int
    quantity_shipped: int
    # Turned down here and re-routed or backordered.
    quantity_rejected: int


class FulfillmentOrder(msgspec.Struct):
    id: str
    order_id: str
    order_number: int
    location_id: str
    location_code: str
    # open, in_progress, on_hold, closed or cancelled: follows the location's stock for the order.
    status: str
    lines: list[FulfillmentLine]
    created_at: dt.datetime
    closed_at: dt.datetime | None
    cancelled_at: dt.datetime | None

    @classmethod
    def of(cls, view: FulfillmentOrderView) -> FulfillmentOrder:
        row = view.row
        return cls(
            id=str(row.id),
            order_id=str(row.order_id),
            order_number=view.order_number,
            location_id=str(row.location_id),
            location_code=view.location_code,
            status=view.status,
            lines=[
                FulfillmentLine(
                    str(line.order_line_id),
                    line.line_number,
                    line.sku,
                    line.name,
                    line.quantity_reserved,
                    line.quantity_shipped,
                    line.quantity_rejected,
                )
                for line in view.lines
            ],
            created_at=row.created_at,
            closed_at=row.closed_at,
            cancelled_at=row.cancelled_at,
        )


class FulfillmentOrders(msgspec.Struct):
    data: list[FulfillmentOrder]


class FulfillmentOrderList(msgspec.Struct):
    data: list[FulfillmentOrder]
    next_cursor: str | None


class ShipmentLine(msgspec.Struct):
    line_id: str
    line_number: int
    sku: str
    name: str
    quantity: int


class ShipmentPackage(msgspec.Struct):
    position: int
    weight_grams: int | None
    length_mm: int | None
    width_mm: int | None
    height_mm: int | None


class Shipment(msgspec.Struct):
    id: str
    order_id: str
    order_number: int
    fulfillment_order_id: str
    location_id: str
    location_code: str
    # shipped, then delivered.
    status: str
    carrier: str
    service: str | None
    tracking_number: str | None
    tracking_url: str | None
    lines: list[ShipmentLine]
    packages: list[ShipmentPackage]
    shipped_at: dt.datetime
    delivered_at: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def of(cls, view: ShipmentView) -> Shipment:
        row = view.row
        return cls(
            id=str(row.id),
            order_id=str(row.order_id),
            order_number=view.order_number,
            fulfillment_order_id=str(row.fulfillment_order_id),
            location_id=str(row.location_id),
            location_code=view.location_code,
            status=row.status,
            carrier=row.carrier,
            service=row.service,
            tracking_number=row.tracking_number,
            tracking_url=row.tracking_url,
            lines=[
                ShipmentLine(str(line.order_line_id), line.line_number, line.sku, line.name, line.quantity)
                for line in view.lines
            ],
            packages=[
                ShipmentPackage(
                    package.position,
                    package.weight_grams,
                    package.length_mm,
                    package.width_mm,
                    package.height_mm,
                )
                for package in view.packages
            ],
            shipped_at=row.shipped_at,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
        )


class LineQuantityIn(msgspec.Struct, forbid_unknown_fields=True):
    line_id: str
    quantity: int


class PackageIn(msgspec.Struct, forbid_unknown_fields=True):
    weight_grams: int | None = None
    length_mm: int | None = None
    width_mm: int | None = None
    height_mm: int | None = None


class ShipmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    carrier: str
    # Any subset of the fulfillment order's lines and quantities.
    lines: list[LineQuantityIn]
    # One parcel with unknown measures when left out.
    packages: list[PackageIn] = msgspec.field(default_factory=lambda: [PackageIn()])
    service: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    shipped_at: dt.datetime | None = None


class Delivered(msgspec.Struct, forbid_unknown_fields=True):
    # Defaults to now.
    delivered_at: dt.datetime | None = None


class RejectIn(msgspec.Struct, forbid_unknown_fields=True):
    line_id: str
    quantity: int
    # Damaged, not found… in words the team reads on the timeline.
    reason: str
    # "damage" or "correction" takes the units off the location's count as well; left out, the
    # count stays as it is until someone counts the location.
    write_off: str | None = None


class Rerouted(msgspec.Struct):
    location: str
    quantity: int
    reason: str


class RejectionResult(msgspec.Struct):
    """Where the rejected units went, what is backordered (under a stock hold), the fulfillment orders."""

    rerouted: list[Rerouted]
    backordered: int
    # Units taken off the rejecting location's count (0 without `write_off`).
    written_off: int
    hold_id: str | None
    fulfillment_orders: list[FulfillmentOrder]

    @classmethod
    def of(cls, result: Rejection) -> RejectionResult:
        return cls(
            [Rerouted(item["location"], item["quantity"], item["reason"]) for item in result.rerouted],
            result.backordered,
            result.written_off,
            str(result.hold_id) if result.hold_id else None,
            [FulfillmentOrder.of(view) for view in result.fulfillment_orders],
        )


def _shipment_request(data: ShipmentCreate) -> ShipmentRequest:
    return ShipmentRequest(
        carrier=data.carrier,
        lines=[LineQuantity(item.line_id, item.quantity) for item in data.lines],
        packages=[Package(p.weight_grams, p.length_mm, p.width_mm, p.height_mm) for p in data.packages],
        service=data.service,
        tracking_number=data.tracking_number,
        tracking_url=data.tracking_url,
        shipped_at=data.shipped_at,
    )


class ReleaseIn(msgspec.Struct, forbid_unknown_fields=True):
    pass


@post(
    "/api/v1/orders/{order_id:str}/fulfillment-orders",
    operation_id="releaseOrderToFulfillment",
    summary="Release a confirmed order to fulfillment: one fulfillment order per location holding its stock.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["fulfillment"],
    status_code=200,
)
async def release(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
) -> Response[FulfillmentOrders]:
    """409 `order_on_hold` names each open hold; releasing again creates only what is missing.

    An order whose every unit is backordered answers 200 with `data: []`: the release is recorded
    (a `released_to_fulfillment` timeline entry listing the backordered lines), and the locations
    get their fulfillment orders when the stock arrives and the units are reserved.
    """

    async def run() -> FulfillmentOrders:
        views = await release_to_fulfillment(
            principal.tenant_context, tenant_session, order_id_of(order_id), actor=principal.actor
        )
        return FulfillmentOrders([FulfillmentOrder.of(view) for view in views])

    return await idempotency.once(request, principal, tenant_session, ReleaseIn(), run, status_code=200)


@get(
    "/api/v1/orders/{order_id:str}/fulfillment-orders",
    operation_id="listOrderFulfillmentOrders",
    summary="An order's fulfillment orders, with what each location still has to ship.",
    opt=requires(Permission.ORDERS_READ),
    tags=["fulfillment"],
)
async def read_order_fulfillment(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
) -> FulfillmentOrders:
    row = await order_row(tenant_session, order_id_of(order_id))
    return FulfillmentOrders(
        [FulfillmentOrder.of(view) for view in await fulfillment_orders_of(tenant_session, row.id)]
    )


@get(
    "/api/v1/fulfillment-orders",
    operation_id="listFulfillmentOrders",
    summary=(
        "Fulfillment orders, oldest first; a location's queue with `location_id`, its open work with "
        "`status` (open, in_progress, on_hold, closed or cancelled)."
    ),
    opt=requires(Permission.ORDERS_READ),
    tags=["fulfillment"],
)
async def read_fulfillment_orders(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    location_id: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> FulfillmentOrderList:
    """422 names `status` when it is not one of the five."""
    location = None if location_id is None else location_id_of(location_id)
    page = await list_fulfillment_orders(
        tenant_session, PageRequest.parse(limit, cursor), location_id=location, status=status
    )
    return FulfillmentOrderList([FulfillmentOrder.of(view) for view in page.items], page.next_cursor)


@get(
    "/api/v1/fulfillment-orders/{fulfillment_order_id:str}",
    operation_id="getFulfillmentOrder",
    summary="Read one fulfillment order with its lines.",
    opt=requires(Permission.ORDERS_READ),
    tags=["fulfillment"],
)
async def read_fulfillment_order(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    fulfillment_order_id: FromPath[str],
) -> FulfillmentOrder:
    view = await fulfillment_order_view(tenant_session, fulfillment_order_id_of(fulfillment_order_id))
    return FulfillmentOrder.of(view)


@post(
    "/api/v1/fulfillment-orders/{fulfillment_order_id:str}/shipments",
    operation_id="createShipment",
    summary="Ship any part of a fulfillment order, with carrier, tracking and packages.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["fulfillment"],
)
async def add_shipment(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    fulfillment_order_id: FromPath[str],
    data: JSONBody[ShipmentCreate],
) -> Response[Shipment]:
    """409 `not_reserved` / `quantity_exceeds_reserved` name each line and what the location holds."""

    async def create() -> Shipment:
        view = await create_shipment(
            principal.tenant_context,
            tenant_session,
            fulfillment_order_id_of(fulfillment_order_id),
            _shipment_request(data),
            actor=principal.actor,
        )
        return Shipment.of(view)

    return await idempotency.once(request, principal, tenant_session, data, create)


@post(
    "/api/v1/fulfillment-orders/{fulfillment_order_id:str}/reject",
    operation_id="rejectFulfillmentLine",
    summary="A location turns down units of a line: re-route them, or backorder them under a stock hold.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["fulfillment"],
    status_code=200,
)
async def reject(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    fulfillment_order_id: FromPath[str],
    data: JSONBody[RejectIn],
) -> Response[RejectionResult]:
    """The reason goes on the order's timeline; an `Idempotency-Key` makes a retry safe."""

    async def run() -> RejectionResult:
        result = await reject_line(
            principal.tenant_context,
            tenant_session,
            fulfillment_order_id_of(fulfillment_order_id),
            RejectRequest(data.line_id, data.quantity, data.reason, data.write_off),
            actor=principal.actor,
        )
        return RejectionResult.of(result)

    return await idempotency.once(request, principal, tenant_session, data, run, status_code=200)


@get(
    "/api/v1/shipments/{shipment_id:str}",
    operation_id="getShipment",
    summary="Read one shipment with its tracking, lines and packages.",
    opt=requires(Permission.ORDERS_READ),
    tags=["fulfillment"],
)
async def read_shipment(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    shipment_id: FromPath[str],
) -> Shipment:
    return Shipment.of(await shipment_view(tenant_session, shipment_id_of(shipment_id)))


@post(
    "/api/v1/shipments/{shipment_id:str}/delivered",
    operation_id="markShipmentDelivered",
    summary="Record that a shipment was delivered; saying it again changes nothing.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["fulfillment"],
    status_code=200,
)
async def delivered(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    shipment_id: FromPath[str],
    data: JSONBody[Delivered | None] = None,
) -> Shipment:
    """Another date on a second call is 409 `shipment_already_delivered`; one before it shipped, 422."""
    view = await mark_delivered(
        principal.tenant_context,
        tenant_session,
        shipment_id_of(shipment_id),
        delivered_at=data.delivered_at if data else None,
        actor=principal.actor,
    )
    return Shipment.of(view)


ROUTES = [
    release,
    read_order_fulfillment,
    read_fulfillment_orders,
    read_fulfillment_order,
    add_shipment,
    reject,
    read_shipment,
    delivered,
]
