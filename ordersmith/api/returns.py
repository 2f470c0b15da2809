"""Returns (RMA): request, approve or decline, receive, inspect, close; refund, credit, exchange."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import requires
from ordersmith.api.entitlements import requires_feature
from ordersmith.api.return_schemas import RefundResult, Return, Returns
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.plans import Feature
from ordersmith.tenants.orders.views import order_id_of, order_row
from ordersmith.tenants.returns.inspections import decide_inspected
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
from ordersmith.tenants.returns.views import return_id_of, return_view, returns_of


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
    # On receipt restock, damaged, missing or inspect; deciding inspected units, restock or damaged.
    disposition: str
    quantity: int
    # Where restocked units go back on the shelf; only for restock.
    location_id: str | None = None


class ReceiveIn(msgspec.Struct, forbid_unknown_fields=True):
    # Every unit of every line gets exactly one disposition.
    dispositions: list[DispositionIn]


class InspectionIn(msgspec.Struct, forbid_unknown_fields=True):
    # At most what each line still holds under inspection.
    decisions: list[DispositionIn]


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
    "/api/v1/returns/{return_id:str}/inspections",
    operation_id="inspectReturn",
    summary="Decide units held for inspection: restock them on a location's shelf, or write them off.",
    opt=requires(Permission.ORDERS_WRITE),
    guards=[requires_feature(Feature.RETURNS)],
    tags=["returns"],
)
async def inspect(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    return_id: FromPath[str],
    data: JSONBody[InspectionIn],
) -> Response[Return]:
    """409 `quantity_not_under_inspection` names each line decided beyond what it holds for inspection."""
    decisions = [
        DispositionRequest(item.return_line_id, item.disposition, item.quantity, item.location_id)
        for item in data.decisions
    ]

    async def create() -> Return:
        view = await decide_inspected(
            principal.tenant_context,
            tenant_session,
            return_id_of(return_id),
            decisions,
            actor=principal.actor,
        )
        return Return.of(view)

    return await idempotency.once(request, principal, tenant_session, data, create)


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
    """A provider refusing still answers 201: `refund.state` is `failed` or `partial`, with `error_code`.

    422 `refund_exceeds_captured` or `resolution_exceeds_return_value` say what can still be given.
    A closed return is refunded only if it keeps its units, else 409 `return_not_resolvable`.
    """

    async def create() -> Return:
        result = await refund_return(
            principal.tenant_context,
            tenant_session,
            return_id_of(return_id),
            amount=data.amount,
            reason=data.reason,
            actor=principal.actor,
        )
        return msgspec.structs.replace(Return.of(result.view), refund=RefundResult.of(result.attempt))

    return await idempotency.once(request, principal, tenant_session, data, create)


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
    """Within what is left of the returned units' value, and of what the order's payments still hold.

    A closed return is credited only if it keeps its units, else 409 `return_not_resolvable`.
    """

    async def create() -> Return:
        view = await credit_return(
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
    "/api/v1/returns/{return_id:str}/exchange",
    operation_id="exchangeReturn",
    summary="Place a linked replacement order for a return, reserving stock; dearer goods need a refunder.",
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
    Goods given away beyond that (catalog price less `unit_price_amount`, or priced in
    another currency) are a refund in goods: 403 `permission_denied` without `orders.refund`.
    """
    body = ExchangeRequest(
        [ExchangeLine(item.sku, item.quantity, item.unit_price_amount) for item in data.lines],
        data.note,
        data.tags,
    )

    async def create() -> Return:
        view = await exchange_return(
            principal.tenant_context,
            tenant_session,
            return_id_of(return_id),
            body,
            actor=principal.actor,
            may_refund=principal.can(Permission.ORDERS_REFUND),
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
    inspect,
    close,
    refund,
    credit,
    exchange,
]
