"""Orders: placing them (idempotently), reading them, listing them, and their timelines."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import requires
from ordersmith.platform.database import Database
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.pagination import DEFAULT_PAGE_SIZE, PageRequest
from ordersmith.tenants.orders import timeline
from ordersmith.tenants.orders.drafts import create_draft
from ordersmith.tenants.orders.models import Order as OrderRow
from ordersmith.tenants.orders.models import OrderEvent, OrderHold, OrderLine
from ordersmith.tenants.orders.placement import place as place_order_on
from ordersmith.tenants.orders.queries import OrderFilter, get_order, list_orders
from ordersmith.tenants.orders.rules import HoldRequest, LineRequest, OrderRequest
from ordersmith.tenants.orders.views import OrderView, ReservationView, order_id_of, order_row

# An order of the largest size (250 lines) is far below this; anything bigger is 413.
MAX_ORDER_BODY = 256 * 1024


class Line(msgspec.Struct):
    id: str
    line_number: int
    variant_id: str
    sku: str
    name: str
    unit_price_amount: int
    total_amount: int
    # Where each unit stands: ordered - cancelled = pending + allocated + backordered + shipped.
    quantity_ordered: int
    quantity_cancelled: int
    # A draft's units, reserved only when the draft is placed.
    quantity_pending: int
    quantity_allocated: int
    quantity_backordered: int
    quantity_shipped: int
    quantity_returned: int

    @classmethod
    def of(cls, row: OrderLine) -> Line:
        return cls(
            str(row.id),
            row.line_number,
            str(row.variant_id),
            row.sku_code,
            row.name,
            row.unit_price_amount,
            row.unit_price_amount * (row.quantity_ordered - row.quantity_cancelled),
            row.quantity_ordered,
            row.quantity_cancelled,
            row.quantity_pending,
            row.quantity_allocated,
            row.quantity_backordered,
            row.quantity_shipped,
            row.quantity_returned,
        )


class Held(msgspec.Struct):
    line_id: str
    location_id: str
    location_code: str
    quantity: int
    # Why this location: the rule that chose it, in words.
    reason: str

    @classmethod
    def of(cls, view: ReservationView) -> Held:
        return cls(str(view.line_id), str(view.location_id), view.location_code, view.quantity, view.reason)


class Hold(msgspec.Struct):
    id: str
    type: str
    reason: str
    release_role: str
    placed_by_type: str
    placed_by_id: str | None
    created_at: dt.datetime
    released_at: dt.datetime | None
    released_by_type: str | None
    released_by_id: str | None
    release_note: str | None

    @classmethod
    def of(cls, row: OrderHold) -> Hold:
        return cls(
            str(row.id),
            row.type,
            row.reason,
            row.release_role,
            row.placed_by_type,
            row.placed_by_id,
            row.created_at,
            row.released_at,
            row.released_by_type,
            row.released_by_id,
            row.release_note,
        )


class OrderSummary(msgspec.Struct):
    id: str
    number: int
    status: str
    payment_status: str
    fulfillment_status: str
    customer_id: str
    currency: str
    subtotal_amount: int
    total_amount: int
    channel: str
    external_reference: str | None
    tags: list[str]
    open_hold_count: int
    # Changes made by people; an order that completes with 0 is touchless.
    touch_count: int
    version: int
    placed_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    completed_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def fields_of(cls, row: OrderRow) -> dict[str, Any]:
        return {
            "id": str(row.id),
            "number": row.number,
            "status": row.status,
            "payment_status": row.payment_status,
            "fulfillment_status": row.fulfillment_status,
            "customer_id": str(row.customer_id),
            "currency": row.currency,
            "subtotal_amount": row.subtotal_amount,
            "total_amount": row.total_amount,
            "channel": row.channel,
            "external_reference": row.external_reference,
            "tags": row.tags,
            "open_hold_count": row.open_hold_count,
            "touch_count": row.touch_count,
            "version": row.version,
            "placed_at": row.placed_at,
            "confirmed_at": row.confirmed_at,
            "completed_at": row.completed_at,
            "cancelled_at": row.cancelled_at,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }

    @classmethod
    def of(cls, row: OrderRow) -> OrderSummary:
        return cls(**cls.fields_of(row))


class Order(OrderSummary):
    shipping_address: dict[str, Any]
    cancel_reason: str | None
    lines: list[Line]
    reservations: list[Held]
    holds: list[Hold]

    @classmethod
    def of_view(cls, view: OrderView) -> Order:
        row = view.order
        return cls(
            **cls.fields_of(row),
            shipping_address=row.shipping_address,
            cancel_reason=row.cancel_reason,
            lines=[Line.of(line) for line in view.lines],
            reservations=[Held.of(item) for item in view.reservations],
            holds=[Hold.of(hold) for hold in view.holds],
        )


class OrderList(msgspec.Struct):
    data: list[OrderSummary]
    next_cursor: str | None


class TimelineEntry(msgspec.Struct):
    id: str
    kind: str
    changes: dict[str, Any]
    actor_type: str
    actor_id: str | None
    is_touch: bool
    created_at: dt.datetime

    @classmethod
    def of(cls, row: OrderEvent) -> TimelineEntry:
        return cls(
            str(row.id), row.kind, row.changes, row.actor_type, row.actor_id, row.is_touch, row.created_at
        )


class Timeline(msgspec.Struct):
    data: list[TimelineEntry]
    next_cursor: str | None


class AddressIn(msgspec.Struct, forbid_unknown_fields=True):
    recipient_name: str
    line1: str
    city: str
    country_code: str
    line2: str | None = None
    region: str | None = None
    postal_code: str | None = None
    label: str | None = None


class LineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    quantity: int
    # Defaults to the catalog price; give it to sell at another price.
    unit_price_amount: int | None = None


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    reason: str
    release_role: str = "agent"


class OrderCreate(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: str
    lines: list[LineIn]
    shipping_address: AddressIn
    channel: str = "api"
    external_reference: str | None = None
    # Defaults to the first line's SKU currency.
    currency: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    # Place the order on hold: it is placed but not confirmed until released.
    hold: HoldIn | None = None
    # Write it down as a draft instead: priced, holding no stock, placed later with /place.
    draft: bool = False


def _customer_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValidationFailedError(
            "the order is invalid; see errors",
            errors=[
                FieldError("customer_id", "must be a customer id, such as one from GET /api/v1/customers")
            ],
        ) from None


def order_request(data: OrderCreate) -> OrderRequest:
    """The service request of an order body."""
    return OrderRequest(
        customer_id=_customer_id(data.customer_id),
        lines=[LineRequest(line.sku, line.quantity, line.unit_price_amount) for line in data.lines],
        shipping_address=msgspec.structs.asdict(data.shipping_address),
        channel=data.channel,
        external_reference=data.external_reference,
        currency=data.currency,
        tags=data.tags,
        hold=HoldRequest(data.hold.type, data.hold.reason, data.hold.release_role) if data.hold else None,
    )


@post(
    "/api/v1/orders",
    operation_id="createOrder",
    summary="Place an order (reserve its stock and confirm it, all or nothing), or write a draft.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["orders"],
    request_max_body_size=MAX_ORDER_BODY,
)
async def add_order(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    data: JSONBody[OrderCreate],
) -> Response[Order]:
    """409 `insufficient_stock` names each short SKU; an `Idempotency-Key` makes retries safe."""
    tenant = principal.tenant_context
    database: Database = request.app.state.database
    order = order_request(data)
    if data.draft:
        async with database.tenant_session(tenant) as session:

            async def write_draft() -> Order:
                view = await create_draft(tenant, session, order, actor=principal.actor)
                return Order.of_view(view)

            return await idempotency.once(request, principal, session, data, write_draft)
    # Placement is the hot path: its transaction runs on the driver connection (ADR 0010).
    async with database.tenant_driver(tenant) as connection:

        async def place() -> Order:
            return Order.of_view(await place_order_on(tenant, connection, order, actor=principal.actor))

        return await idempotency.once(request, principal, connection, data, place)


@get(
    "/api/v1/orders",
    operation_id="listOrders",
    summary=(
        "List orders, newest first, filtered by status, customer, SKU, date, tag, channel, holds "
        "or external reference."
    ),
    opt=requires(Permission.ORDERS_READ),
    tags=["orders"],
)
async def read_orders(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
    status: FromQuery[list[str] | None] = None,
    payment_status: FromQuery[str | None] = None,
    fulfillment_status: FromQuery[str | None] = None,
    customer_id: FromQuery[uuid.UUID | None] = None,
    sku: FromQuery[str | None] = None,
    created_after: FromQuery[dt.datetime | None] = None,
    created_before: FromQuery[dt.datetime | None] = None,
    tag: FromQuery[str | None] = None,
    channel: FromQuery[str | None] = None,
    has_open_hold: FromQuery[bool | None] = None,
    external_reference: FromQuery[str | None] = None,
) -> OrderList:
    """Filters combine with AND; `status` may be repeated (any of them)."""
    assert principal.tenant is not None
    filters = OrderFilter(
        status=status or [],
        payment_status=payment_status,
        fulfillment_status=fulfillment_status,
        customer_id=customer_id,
        sku=sku,
        created_after=created_after,
        created_before=created_before,
        tag=tag,
        channel=channel,
        has_open_hold=has_open_hold,
        external_reference=external_reference,
    )
    page = await list_orders(
        principal.tenant.context, tenant_session, filters, PageRequest.parse(limit, cursor)
    )
    return OrderList([OrderSummary.of(row) for row in page.items], page.next_cursor)


@get(
    "/api/v1/orders/{order_id:str}",
    operation_id="getOrder",
    summary="Read one order with its lines, reservations and holds.",
    opt=requires(Permission.ORDERS_READ),
    tags=["orders"],
)
async def read_order(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
) -> Order:
    assert principal.tenant is not None
    view = await get_order(principal.tenant.context, tenant_session, order_id_of(order_id))
    return Order.of_view(view)


@get(
    "/api/v1/orders/{order_id:str}/timeline",
    operation_id="getOrderTimeline",
    summary="Every change to an order, oldest first, with old and new values and who made it.",
    opt=requires(Permission.ORDERS_READ),
    tags=["orders"],
)
async def read_timeline(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> Timeline:
    assert principal.tenant is not None
    row = await order_row(tenant_session, order_id_of(order_id))
    page = await timeline.read(tenant_session, row.id, PageRequest.parse(limit, cursor))
    return Timeline([TimelineEntry.of(entry) for entry in page.items], page.next_cursor)


ROUTES = [add_order, read_orders, read_order, read_timeline]
