"""Reading fulfillment: fulfillment orders with what each still holds, shipments with tracking."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.tenants.fulfillment import lifecycle
from ordersmith.tenants.fulfillment.errors import (
    FulfillmentOrderClosedError,
    FulfillmentOrderNotFoundError,
    ShipmentNotFoundError,
)
from ordersmith.tenants.fulfillment.models import (
    FULFILLMENT_ORDER_STATUSES,
    FulfillmentOrder,
    FulfillmentOrderLine,
    Shipment,
    ShipmentLine,
    ShipmentPackage,
)
from ordersmith.tenants.inventory.models import Location, Reservation
from ordersmith.tenants.orders.models import Order, OrderLine
from ordersmith.tenants.orders.views import OrderView, load_order


@dataclass(frozen=True)
class FulfillmentLineView:
    """One order line as a location sees it: still to ship here, shipped, turned down."""

    order_line_id: uuid.UUID
    line_number: int
    sku: str
    name: str
    quantity_reserved: int
    quantity_shipped: int
    quantity_rejected: int


@dataclass(frozen=True)
class FulfillmentOrderView:
    row: FulfillmentOrder
    order_number: int
    location_code: str
    # Follows the stock (see lifecycle.derive); every change that moves it stores it too.
    status: str
    lines: list[FulfillmentLineView]


@dataclass(frozen=True)
class ShipmentLineView:
    order_line_id: uuid.UUID
    line_number: int
    sku: str
    name: str
    quantity: int


@dataclass(frozen=True)
class ShipmentView:
    row: Shipment
    order_number: int
    location_code: str
    lines: list[ShipmentLineView]
    packages: list[ShipmentPackage]


def fulfillment_order_missing() -> FulfillmentOrderNotFoundError:
    return FulfillmentOrderNotFoundError(
        "no such fulfillment order in this store; check the id or list an order's fulfillment orders"
    )


def shipment_missing() -> ShipmentNotFoundError:
    return ShipmentNotFoundError("no such shipment in this store; check the id or list an order's shipments")


def fulfillment_order_id_of(text: str) -> uuid.UUID:
    """The fulfillment order id in a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise fulfillment_order_missing() from None


def shipment_id_of(text: str) -> uuid.UUID:
    """The shipment id in a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise shipment_missing() from None


async def fulfillment_order_row(
    session: AsyncSession, fulfillment_order_id: uuid.UUID, *, lock: bool = False
) -> FulfillmentOrder:
    """The fulfillment order; lock it only once its order is locked (order first, ADR 0006)."""
    query = (
        select(FulfillmentOrder)
        .where(FulfillmentOrder.id == fulfillment_order_id)
        .execution_options(populate_existing=True)
    )
    row = (await session.scalars(query.with_for_update() if lock else query)).one_or_none()
    if row is None:
        raise fulfillment_order_missing()
    return row


async def lock_live(
    session: AsyncSession, fulfillment_order_id: uuid.UUID, *, when_closed: str
) -> tuple[OrderView, FulfillmentOrder]:
    """Lock the order, then its fulfillment order (ADR 0006); 409 `when_closed` unless it is live."""
    order_id = (await fulfillment_order_row(session, fulfillment_order_id)).order_id
    view = await load_order(session, order_id, lock=True)
    fulfillment_order = await fulfillment_order_row(session, fulfillment_order_id, lock=True)
    if fulfillment_order.status not in lifecycle.LIVE:
        raise FulfillmentOrderClosedError(
            f"this fulfillment order is {fulfillment_order.status}: {when_closed}"
        )
    return view, fulfillment_order


async def shipment_row(session: AsyncSession, shipment_id: uuid.UUID) -> Shipment:
    row = (
        await session.scalars(
            select(Shipment).where(Shipment.id == shipment_id).execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        raise shipment_missing()
    return row


async def reserved_by_location(
    session: AsyncSession, order_id: uuid.UUID
) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
    """Units each line still holds at each location: {(line id, location id): quantity}."""
    rows = await session.execute(
        select(Reservation.line_id, Reservation.location_id, func.sum(Reservation.quantity))
        .where(Reservation.order_id == order_id, Reservation.quantity > 0)
        .group_by(Reservation.line_id, Reservation.location_id)
    )
    return {(line_id, location_id): int(quantity) for line_id, location_id, quantity in rows}


async def _views(session: AsyncSession, rows: Sequence[FulfillmentOrder]) -> list[FulfillmentOrderView]:
    if not rows:
        return []
    order_ids = sorted({row.order_id for row in rows})
    orders = {
        order_id: (number, held)
        for order_id, number, held in await session.execute(
            select(Order.id, Order.number, Order.open_hold_count).where(Order.id.in_(order_ids))
        )
    }
    codes = {
        key: value
        for key, value in await session.execute(
            select(Location.id, Location.code).where(Location.id.in_({row.location_id for row in rows}))
        )
    }
    reserved: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for order_id in order_ids:
        reserved |= await reserved_by_location(session, order_id)
    lines: dict[uuid.UUID, list[tuple[FulfillmentOrderLine, OrderLine]]] = defaultdict(list)
    for fo_line, order_line in await session.execute(
        select(FulfillmentOrderLine, OrderLine)
        .join(OrderLine, OrderLine.id == FulfillmentOrderLine.order_line_id)
        .where(FulfillmentOrderLine.fulfillment_order_id.in_([row.id for row in rows]))
        .order_by(OrderLine.line_number)
        .execution_options(populate_existing=True)
    ):
        lines[fo_line.fulfillment_order_id].append((fo_line, order_line))
    views = []
    for row in rows:
        is_live = row.status in lifecycle.LIVE
        line_views = [
            FulfillmentLineView(
                order_line.id,
                order_line.line_number,
                order_line.sku_code,
                order_line.name,
                reserved.get((order_line.id, row.location_id), 0) if is_live else 0,
                fo_line.quantity_shipped,
                fo_line.quantity_rejected,
            )
            for fo_line, order_line in lines[row.id]
        ]
        number, held = orders[row.order_id]
        status = lifecycle.derive(
            row.status,
            reserved=sum(item.quantity_reserved for item in line_views),
            shipped=sum(item.quantity_shipped for item in line_views),
            is_held=held > 0,
        )
        views.append(FulfillmentOrderView(row, number, codes[row.location_id], status, line_views))
    return views


async def fulfillment_order_view(
    session: AsyncSession, fulfillment_order_id: uuid.UUID
) -> FulfillmentOrderView:
    """One fulfillment order with its lines."""
    [view] = await _views(session, [await fulfillment_order_row(session, fulfillment_order_id)])
    return view


async def fulfillment_orders_of(session: AsyncSession, order_id: uuid.UUID) -> list[FulfillmentOrderView]:
    """An order's fulfillment orders, oldest first."""
    rows = await session.scalars(
        select(FulfillmentOrder)
        .where(FulfillmentOrder.order_id == order_id)
        .order_by(FulfillmentOrder.created_at, FulfillmentOrder.id)
        .execution_options(populate_existing=True)
    )
    return await _views(session, list(rows))


async def list_fulfillment_orders(
    session: AsyncSession,
    page: PageRequest,
    *,
    location_id: uuid.UUID | None = None,
    status: str | None = None,
) -> Page[FulfillmentOrderView]:
    """Fulfillment orders, oldest first: a location's queue with `location_id`, by `status` if given."""
    if status is not None and status not in FULFILLMENT_ORDER_STATUSES:
        raise ValidationFailedError(
            "some fields are invalid; see errors",
            errors=[FieldError("status", f"must be one of {', '.join(FULFILLMENT_ORDER_STATUSES)}")],
        )
    query = select(FulfillmentOrder)
    if location_id is not None:
        query = query.where(FulfillmentOrder.location_id == location_id)
    if status is not None:
        query = query.where(FulfillmentOrder.status == status)
    rows = list(
        await session.scalars(
            page.apply(query, FulfillmentOrder.created_at, FulfillmentOrder.id, newest_first=False)
        )
    )
    cut = page.cut(rows, lambda row: (row.created_at, row.id))
    return Page(await _views(session, cut.items), cut.next_cursor)


async def shipment_views(session: AsyncSession, rows: Sequence[Shipment]) -> list[ShipmentView]:
    """Shipments with their lines, packages and where they left from."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    numbers = {
        key: value
        for key, value in await session.execute(
            select(Order.id, Order.number).where(Order.id.in_({row.order_id for row in rows}))
        )
    }
    codes = {
        key: value
        for key, value in await session.execute(
            select(Location.id, Location.code).where(Location.id.in_({row.location_id for row in rows}))
        )
    }
    lines: dict[uuid.UUID, list[ShipmentLineView]] = defaultdict(list)
    for shipment_id, line_id, number, sku, name, quantity in await session.execute(
        select(
            ShipmentLine.shipment_id,
            OrderLine.id,
            OrderLine.line_number,
            OrderLine.sku_code,
            OrderLine.name,
            ShipmentLine.quantity,
        )
        .join(OrderLine, OrderLine.id == ShipmentLine.order_line_id)
        .where(ShipmentLine.shipment_id.in_(ids))
        .order_by(OrderLine.line_number)
    ):
        lines[shipment_id].append(ShipmentLineView(line_id, number, sku, name, quantity))
    packages: dict[uuid.UUID, list[ShipmentPackage]] = defaultdict(list)
    for package in await session.scalars(
        select(ShipmentPackage)
        .where(ShipmentPackage.shipment_id.in_(ids))
        .order_by(ShipmentPackage.shipment_id, ShipmentPackage.position)
    ):
        packages[package.shipment_id].append(package)
    return [
        ShipmentView(row, numbers[row.order_id], codes[row.location_id], lines[row.id], packages[row.id])
        for row in rows
    ]


async def shipment_view(session: AsyncSession, shipment_id: uuid.UUID) -> ShipmentView:
    """One shipment with its lines and packages."""
    [view] = await shipment_views(session, [await shipment_row(session, shipment_id)])
    return view


async def shipments_of(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> list[ShipmentView]:
    """Every shipment of these orders, oldest first."""
    if not order_ids:
        return []
    rows = await session.scalars(
        select(Shipment)
        .where(Shipment.order_id.in_(order_ids))
        .order_by(Shipment.created_at, Shipment.id)
        .execution_options(populate_existing=True)
    )
    return await shipment_views(session, list(rows))
