"""Customer follow-ups in one place: where is it (shipments and tracking), and what is coming back.

Changing and cancelling an order use the order edit and cancel routes, returning it the
returns routes; these routes answer "where is it" for an order or a customer and log
the contact on the order's timeline.
"""

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
from ordersmith.api.fulfillment import Shipment
from ordersmith.api.return_schemas import Return
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.pagination import DEFAULT_PAGE_SIZE, PageRequest
from ordersmith.tenants.customers.service import customer_id_of
from ordersmith.tenants.fulfillment.follow_ups import (
    FollowUp,
    customer_follow_ups,
    log_follow_up,
    order_follow_up,
)
from ordersmith.tenants.orders.views import order_id_of


class Shipments(msgspec.Struct):
    data: list[Shipment]


class OrderFollowUp(msgspec.Struct):
    """An order as customer service sees it: where it stands, every parcel, what is coming back."""

    order_id: str
    number: int
    status: str
    payment_status: str
    fulfillment_status: str
    currency: str
    total_amount: int
    placed_at: dt.datetime | None
    shipments: list[Shipment]
    returns: list[Return]

    @classmethod
    def of(cls, item: FollowUp) -> OrderFollowUp:
        order = item.order
        return cls(
            order_id=str(order.id),
            number=order.number,
            status=order.status,
            payment_status=order.payment_status,
            fulfillment_status=order.fulfillment_status,
            currency=order.currency,
            total_amount=order.total_amount,
            placed_at=order.placed_at,
            shipments=[Shipment.of(view) for view in item.shipments],
            returns=[Return.of(view) for view in item.returns],
        )


class CustomerFollowUps(msgspec.Struct):
    customer_id: str
    # Newest order first; each with all its shipments and its open returns.
    data: list[OrderFollowUp]
    next_cursor: str | None


class FollowUpIn(msgspec.Struct, forbid_unknown_fields=True):
    # where_is_it, change, cancel, return or other.
    topic: str
    note: str


@get(
    "/api/v1/orders/{order_id:str}/shipments",
    operation_id="listOrderShipments",
    summary="Where is it: every shipment of an order with its carrier, tracking and packages.",
    opt=requires(Permission.ORDERS_READ),
    tags=["follow-ups"],
)
async def read_order_shipments(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
) -> Shipments:
    item = await order_follow_up(principal.tenant_context, tenant_session, order_id_of(order_id))
    return Shipments([Shipment.of(view) for view in item.shipments])


@get(
    "/api/v1/customers/{customer_id:str}/follow-ups",
    operation_id="listCustomerFollowUps",
    summary="A customer's orders, newest first, with their shipments, tracking and open returns.",
    opt=requires(Permission.ORDERS_READ),
    tags=["follow-ups"],
)
async def read_customer_follow_ups(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    customer_id: FromPath[str],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> CustomerFollowUps:
    """A merged customer's orders are included under the surviving customer."""
    key = customer_id_of(customer_id)
    page = await customer_follow_ups(
        principal.tenant_context, tenant_session, key, PageRequest.parse(limit, cursor)
    )
    return CustomerFollowUps(str(key), [OrderFollowUp.of(item) for item in page.items], page.next_cursor)


@post(
    "/api/v1/orders/{order_id:str}/follow-ups",
    operation_id="logOrderFollowUp",
    summary="Log a customer contact about an order on its timeline; answers with where the order stands.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["follow-ups"],
)
async def add_follow_up(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
    data: JSONBody[FollowUpIn],
) -> Response[OrderFollowUp]:
    """A contact answered by a person counts as a touch on the order."""

    async def create() -> OrderFollowUp:
        item = await log_follow_up(
            principal.tenant_context,
            tenant_session,
            order_id_of(order_id),
            topic=data.topic,
            note=data.note,
            actor=principal.actor,
        )
        return OrderFollowUp.of(item)

    return await idempotency.once(request, principal, tenant_session, data, create)


ROUTES = [read_order_shipments, read_customer_follow_ups, add_follow_up]
