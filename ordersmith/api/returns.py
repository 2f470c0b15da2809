"""Returns (RMA): request, approve or decline, receive with dispositions, close; refund, credit, exchange."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Protocol

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import requires
from ordersmith.api.entitlements import requires_feature
from ordersmith.platform.database import TenantContext
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.plans import Feature
from ordersmith.tenants.orders.views import order_id_of, order_row
from ordersmith.tenants.returns.outcomes import credit_return, exchange_return, refund_return
from ordersmith.tenants.returns.rules import (
    DispositionRequest,
    ExchangeLine,
    ExchangeRequest,
    ReturnLineRequest,
    ReturnRequest,
)
from ordersmith.tenants.returns.service import (
    approve_return,
    close_return,
    decline_return,
    mark_in_transit,
    receive_return,
    request_return,
)
from ordersmith.tenants.returns.views import ReturnView, return_id_of, return_view, returns_of


class ReturnLine(msgspec.Struct):
    id: str
    line_id: str
    line_number: int
    sku: str
    name: str
    quantity: int
    reason_code: str
    note: str
    unit_price_amount: int
    # Units per disposition once received: restock, damaged, missing, inspect.
    dispositions: dict[str, int]


class Disposition(msgspec.Struct):
    return_line_id: str
    disposition: str
    quantity: int
    location_id: str | None
    created_at: dt.datetime


class Resolution(msgspec.Struct):
    id: str
    # refund, store_credit or exchange.
    kind: str
    # Refunded or credited; for an exchange, what the returned units it replaces were sold for.
    amount: int
    currency: str
    reason: str
    payment_transaction_ids: list[str]
    exchange_order_id: str | None
    actor_type: str
    actor_id: str | None
    created_at: dt.datetime


class Return(msgspec.Struct):
    id: str
    number: int
    order_id: str
    order_number: int
    customer_id: str
    # requested, approved, declined, in_transit, received or closed.
    status: str
    currency: str
    # What the returned units were sold for: refund, store credit and exchange together stay within it.
    value_amount: int
    refunded_amount: int
    store_credit_amount: int
    exchange_order_id: str | None
    note: str
    decline_reason: str | None
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    lines: list[ReturnLine]
    dispositions: list[Disposition]
    resolutions: list[Resolution]
    created_at: dt.datetime
    approved_at: dt.datetime | None
    declined_at: dt.datetime | None
    in_transit_at: dt.datetime | None
    received_at: dt.datetime | None
    closed_at: dt.datetime | None

    @classmethod
    def of(cls, view: ReturnView) -> Return:
        row = view.row
        return cls(
            id=str(row.id),
            number=row.number,
            order_id=str(row.order_id),
            order_number=view.order_number,
            customer_id=str(row.customer_id),
            status=row.status,
            currency=row.currency,
            value_amount=view.value,
            refunded_amount=row.refunded_amount,
            store_credit_amount=row.store_credit_amount,
            exchange_order_id=str(row.exchange_order_id) if row.exchange_order_id else None,
            note=row.note,
            decline_reason=row.decline_reason,
            carrier=row.carrier,
            tracking_number=row.tracking_number,
            tracking_url=row.tracking_url,
            lines=[
                ReturnLine(
                    str(item.line.id),
                    str(item.line.order_line_id),
                    item.line.line_number,
                    item.sku,
                    item.name,
                    item.line.quantity,
                    item.line.reason_code,
                    item.line.note,
                    item.unit_price_amount,
                    item.dispositions,
                )
                for item in view.lines
            ],
            dispositions=[
                Disposition(
                    str(item.return_line_id),
                    item.disposition,
                    item.quantity,
                    str(item.location_id) if item.location_id else None,
                    item.created_at,
                )
                for item in view.dispositions
            ],
            resolutions=[
                Resolution(
                    str(item.id),
                    item.kind,
                    item.amount,
                    item.currency,
                    item.reason,
                    [str(key) for key in item.payment_transaction_ids],
                    str(item.exchange_order_id) if item.exchange_order_id else None,
                    item.actor_type,
                    item.actor_id,
                    item.created_at,
                )
                for item in view.resolutions
            ],
            created_at=row.created_at,
            approved_at=row.approved_at,
            declined_at=row.declined_at,
            in_transit_at=row.in_transit_at,
            received_at=row.received_at,
            closed_at=row.closed_at,
        )


class Returns(msgspec.Struct):
    data: list[Return]


class ReturnLineIn(msgspec.Struct, forbid_unknown_fields=True):
    line_id: str
    quantity: int
    # damaged, defective, wrong_item, not_as_described, size_fit, changed_mind, arrived_late or other.
    reason_code: str
    note: str = ""


class ReturnCreate(msgspec.Struct, forbid_unknown_fields=True):
    lines: list[ReturnLineIn]
    note: str = ""


class DeclineIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


class InTransitIn(msgspec.Struct, forbid_unknown_fields=True):
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None


class DispositionIn(msgspec.Struct, forbid_unknown_fields=True):
    return_line_id: str
    # restock, damaged, missing or inspect.
    disposition: str
    quantity: int
    # Where restocked units go back on the shelf; only for restock.
    location_id: str | None = None


class ReceiveIn(msgspec.Struct, forbid_unknown_fields=True):
    # Every unit of every line gets exactly one disposition.
    dispositions: list[DispositionIn]


class AmountIn(msgspec.Struct, forbid_unknown_fields=True):
    # Defaults to what is left of the return's value.
    amount: int | None = None
    reason: str = ""


class ExchangeLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    quantity: int
    # Defaults to 0: the returned units pay for the replacement.
    unit_price_amount: int | None = None


class ExchangeIn(msgspec.Struct, forbid_unknown_fields=True):
    lines: list[ExchangeLineIn]
    note: str = ""
    tags: list[str] = msgspec.field(default_factory=list)


class _Resolve(Protocol):
    async def __call__(
        self,
        tenant: TenantContext,
        session: AsyncSession,
        return_id: uuid.UUID,
        *,
        amount: int | None,
        reason: str,
        actor: Actor,
    ) -> ReturnView: ...


async def _resolve(
    resolve: _Resolve,
    request: Request[Any, Any, Any],
    principal: Principal,
    tenant_session: AsyncSession,
    return_id: str,
    data: AmountIn,
) -> Response[Return]:
    """Give a return an outcome that costs money (refund, store credit), once per Idempotency-Key."""

    async def create() -> Return:
        view = await resolve(
            principal.tenant_context,
            tenant_session,
            return_id_of(return_id),
            amount=data.amount,
            reason=data.reason,
            actor=principal.actor,
        )
        return Return.of(view)

    return await idempotency.once(request, principal, tenant_session, data, create)


@post(
    "/api/v1/orders/{order_id:str}/returns",
    operation_id="createReturn",
    summary="Request a return of shipped units of an order, per line with a reason code.",
    opt=requires(Permission.ORDERS_WRITE),
    guards=[requires_feature(Feature.RETURNS)],
    tags=["returns"],
)
async def add_return(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
    data: JSONBody[ReturnCreate],
) -> Response[Return]:
    """409 `quantity_not_returnable` when more is asked than shipped and not already on returns."""
    body = ReturnRequest(
        [ReturnLineRequest(item.line_id, item.quantity, item.reason_code, item.note) for item in data.lines],
        data.note,
    )

    async def create() -> Return:
        view = await request_return(
            principal.tenant_context, tenant_session, order_id_of(order_id), body, actor=principal.actor
        )
        return Return.of(view)

    return await idempotency.once(request, principal, tenant_session, data, create)


@get(
    "/api/v1/orders/{order_id:str}/returns",
    operation_id="listOrderReturns",
    summary="An order's returns, oldest first.",
    opt=requires(Permission.ORDERS_READ),
    tags=["returns"],
)
async def read_order_returns(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
) -> Returns:
    row = await order_row(tenant_session, order_id_of(order_id))
    return Returns([Return.of(view) for view in await returns_of(tenant_session, [row.id])])


@get(
    "/api/v1/returns/{return_id:str}",
    operation_id="getReturn",
    summary="Read one return with its lines, dispositions and resolutions.",
    opt=requires(Permission.ORDERS_READ),
    tags=["returns"],
)
async def read_return(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    return_id: FromPath[str],
) -> Return:
    return Return.of(await return_view(tenant_session, return_id_of(return_id)))


@post(
    "/api/v1/returns/{return_id:str}/approve",
    operation_id="approveReturn",
    summary="Approve a requested return.",
    opt=requires(Permission.ORDERS_WRITE),
    guards=[requires_feature(Feature.RETURNS)],
    tags=["returns"],
    status_code=200,
)
async def approve(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    return_id: FromPath[str],
) -> Return:
    """Any other status answers 409 `invalid_transition` with what may follow it."""
    view = await approve_return(
        principal.tenant_context, tenant_session, return_id_of(return_id), actor=principal.actor
    )
    return Return.of(view)


@post(
    "/api/v1/returns/{return_id:str}/decline",
    operation_id="declineReturn",
    summary="Decline a requested return, saying why.",
    opt=requires(Permission.ORDERS_WRITE),
    guards=[requires_feature(Feature.RETURNS)],
    tags=["returns"],
    status_code=200,
)
async def decline(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    return_id: FromPath[str],
    data: JSONBody[DeclineIn],
) -> Return:
    """Its units can be asked back again on another return."""
    view = await decline_return(
        principal.tenant_context,
        tenant_session,
        return_id_of(return_id),
        reason=data.reason,
        actor=principal.actor,
    )
    return Return.of(view)


@post(
    "/api/v1/returns/{return_id:str}/in-transit",
    operation_id="markReturnInTransit",
    summary="Record that the customer sent the return back, with its tracking.",
    opt=requires(Permission.ORDERS_WRITE),
    guards=[requires_feature(Feature.RETURNS)],
    tags=["returns"],
    status_code=200,
)
async def in_transit(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    return_id: FromPath[str],
    data: JSONBody[InTransitIn | None] = None,
) -> Return:
    body = data or InTransitIn()
    view = await mark_in_transit(
        principal.tenant_context,
        tenant_session,
        return_id_of(return_id),
        carrier=body.carrier,
        tracking_number=body.tracking_number,
        tracking_url=body.tracking_url,
        actor=principal.actor,
    )
    return Return.of(view)


@post(
    "/api/v1/returns/{return_id:str}/receive",
    operation_id="receiveReturn",
    summary="Receive a return: a disposition per unit; restocked units go back on a location's shelf.",
    opt=requires(Permission.ORDERS_WRITE),
    guards=[requires_feature(Feature.RETURNS)],
    tags=["returns"],
    status_code=200,
)
async def receive(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    return_id: FromPath[str],
    data: JSONBody[ReceiveIn],
) -> Return:
    """Receiving twice answers 409 `invalid_transition`: stock is never restocked twice."""
    view = await receive_return(
        principal.tenant_context,
        tenant_session,
        return_id_of(return_id),
        [
            DispositionRequest(item.return_line_id, item.disposition, item.quantity, item.location_id)
            for item in data.dispositions
        ],
        actor=principal.actor,
    )
    return Return.of(view)


@post(
    "/api/v1/returns/{return_id:str}/close",
    operation_id="closeReturn",
    summary="Close a return: once received, or without the goods when staff choose.",
    opt=requires(Permission.ORDERS_WRITE),
    guards=[requires_feature(Feature.RETURNS)],
    tags=["returns"],
    status_code=200,
)
async def close(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    return_id: FromPath[str],
) -> Return:
    view = await close_return(
        principal.tenant_context, tenant_session, return_id_of(return_id), actor=principal.actor
    )
    return Return.of(view)


@post(
    "/api/v1/returns/{return_id:str}/refunds",
    operation_id="refundReturn",
    summary="Refund a return through the order's original payment, up to what was captured.",
    opt=requires(Permission.ORDERS_REFUND),
    guards=[requires_feature(Feature.RETURNS)],
    tags=["returns"],
)
async def refund(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    return_id: FromPath[str],
    data: JSONBody[AmountIn],
) -> Response[Return]:
    """422 `refund_exceeds_captured` or `resolution_exceeds_return_value` say what can still be given."""
    return await _resolve(refund_return, request, principal, tenant_session, return_id, data)


@post(
    "/api/v1/returns/{return_id:str}/store-credits",
    operation_id="creditReturn",
    summary="Resolve a return with store credit on the customer's ledger.",
    opt=requires(Permission.ORDERS_REFUND),
    guards=[requires_feature(Feature.RETURNS)],
    tags=["returns"],
)
async def credit(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    return_id: FromPath[str],
    data: JSONBody[AmountIn],
) -> Response[Return]:
    """Within what is left of the returned units' value, and of what the order's payments still hold."""
    return await _resolve(credit_return, request, principal, tenant_session, return_id, data)


@post(
    "/api/v1/returns/{return_id:str}/exchange",
    operation_id="exchangeReturn",
    summary="Place a linked replacement order for a return; it reserves its stock at once.",
    opt=requires(Permission.ORDERS_WRITE),
    guards=[requires_feature(Feature.RETURNS)],
    tags=["returns"],
)
async def exchange(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    return_id: FromPath[str],
    data: JSONBody[ExchangeIn],
) -> Response[Return]:
    """409 `insufficient_stock` names each short SKU; one exchange per return (409 `exchange_exists`).

    The exchange uses up what the returned units it replaces were sold for: 422
    `resolution_exceeds_return_value` when refunds and store credit already used it.
    """
    body = ExchangeRequest(
        [ExchangeLine(item.sku, item.quantity, item.unit_price_amount) for item in data.lines],
        data.note,
        data.tags,
    )

    async def create() -> Return:
        view = await exchange_return(
            principal.tenant_context, tenant_session, return_id_of(return_id), body, actor=principal.actor
        )
        return Return.of(view)

    return await idempotency.once(request, principal, tenant_session, data, create)


ROUTES = [
    add_return,
    read_order_returns,
    read_return,
    approve,
    decline,
    in_transit,
    receive,
    close,
    refund,
    credit,
    exchange,
]
