"""Working an order: holds and their release, cancellation, completion and archiving."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import requires
from ordersmith.api.orders import Hold, Order
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.tenants.orders.cancellation import CancelRequest, LineCancel, cancel_order
from ordersmith.tenants.orders.holds import (
    HoldChange,
    hold_id_of,
    place_hold,
    release_all_holds,
    release_hold,
    release_standing,
)
from ordersmith.tenants.orders.rules import HoldRequest
from ordersmith.tenants.orders.transitions import archive_order, complete_order
from ordersmith.tenants.orders.views import order_id_of


class HoldCreate(msgspec.Struct, forbid_unknown_fields=True):
    # fraud_review, payment, address, customer_request, stock or manual.
    type: str
    reason: str
    # The least role that may release it: agent, manager, admin or owner.
    release_role: str = "agent"


class HoldRelease(msgspec.Struct, forbid_unknown_fields=True):
    note: str | None = None


class HoldResult(msgspec.Struct):
    """The hold placed or released, and the order as it now stands."""

    hold: Hold
    order: Order

    @classmethod
    def of(cls, result: HoldChange) -> HoldResult:
        return cls(Hold.of(result.hold), Order.of_view(result.order))


class LineCancelIn(msgspec.Struct, forbid_unknown_fields=True):
    line_id: str
    quantity: int


class OrderCancel(msgspec.Struct, forbid_unknown_fields=True):
    reason: str
    # Omit to cancel everything not shipped yet.
    lines: list[LineCancelIn] | None = None


@post(
    "/api/v1/orders/{order_id:str}/hold",
    operation_id="holdOrder",
    summary="Put an order on hold: it is not confirmed or fulfilled until the hold is released.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["orders"],
)
async def hold_order(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
    data: JSONBody[HoldCreate],
) -> Response[HoldResult]:
    """Only draft, placed or confirmed orders take holds (409 `order_not_open` otherwise)."""
    hold = HoldRequest(data.type, data.reason, data.release_role)

    async def create() -> HoldResult:
        result = await place_hold(
            principal.tenant_context, tenant_session, order_id_of(order_id), hold, actor=principal.actor
        )
        return HoldResult.of(result)

    return await idempotency.once(request, principal, tenant_session, data, create)


@post(
    "/api/v1/orders/{order_id:str}/holds/{hold_id:str}/release",
    operation_id="releaseOrderHold",
    summary="Release a hold; releasing the last one confirms a placed order.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["orders"],
    status_code=200,
)
async def release_order_hold(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
    hold_id: FromPath[str],
    data: JSONBody[HoldRelease | None] = None,
) -> Response[HoldResult]:
    """Needs the hold's release_role or above; an API key counts as an agent (403 otherwise).

    An `Idempotency-Key` makes a retry safe: it gets the first answer, not `hold_already_released`.
    """
    # No body is the same request as an empty one, so both share a key's fingerprint.
    release = data or HoldRelease()

    async def create() -> HoldResult:
        result = await release_hold(
            principal.tenant_context,
            tenant_session,
            order_id_of(order_id),
            hold_id_of(hold_id),
            note=release.note,
            actor=principal.actor,
            standing=release_standing(principal.kind, principal.role),
        )
        return HoldResult.of(result)

    return await idempotency.once(request, principal, tenant_session, release, create, status_code=200)


@post(
    "/api/v1/orders/{order_id:str}/release",
    operation_id="releaseOrder",
    summary="Release every open hold of an order at once, or none; a placed order is then confirmed.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["orders"],
    status_code=200,
)
async def release_order(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
    data: JSONBody[HoldRelease | None] = None,
) -> Response[Order]:
    """403 naming the holds that need a higher role (nothing released); 409 `no_open_hold` if none is open.

    An `Idempotency-Key` makes a retry safe: it gets the first answer, not `no_open_hold`.
    """
    release = data or HoldRelease()

    async def run() -> Order:
        view = await release_all_holds(
            principal.tenant_context,
            tenant_session,
            order_id_of(order_id),
            note=release.note,
            actor=principal.actor,
            standing=release_standing(principal.kind, principal.role),
        )
        return Order.of_view(view)

    return await idempotency.once(request, principal, tenant_session, release, run, status_code=200)


@post(
    "/api/v1/orders/{order_id:str}/cancel",
    operation_id="cancelOrder",
    summary="Cancel an order, or some line quantities of it, and release their stock at once.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["orders"],
    status_code=200,
)
async def cancel(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
    data: JSONBody[OrderCancel],
) -> Response[Order]:
    """Shipped units are never cancelled (409 `quantity_not_cancellable`); `Idempotency-Key` is honoured."""
    lines = None if data.lines is None else [LineCancel(item.line_id, item.quantity) for item in data.lines]

    async def run() -> Order:
        view = await cancel_order(
            principal.tenant_context,
            tenant_session,
            order_id_of(order_id),
            CancelRequest(data.reason, lines),
            actor=principal.actor,
        )
        return Order.of_view(view)

    return await idempotency.once(request, principal, tenant_session, data, run, status_code=200)


@post(
    "/api/v1/orders/{order_id:str}/complete",
    operation_id="completeOrder",
    summary="Complete a confirmed order whose live units have all shipped.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["orders"],
    status_code=200,
)
async def complete(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
) -> Order:
    """409 `order_not_fulfilled` lists what is still to ship; `invalid_transition` from other statuses."""
    view = await complete_order(
        principal.tenant_context, tenant_session, order_id_of(order_id), actor=principal.actor
    )
    return Order.of_view(view)


@post(
    "/api/v1/orders/{order_id:str}/archive",
    operation_id="archiveOrder",
    summary="Archive a completed or cancelled order.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["orders"],
    status_code=200,
)
async def archive(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
) -> Order:
    """Any other status answers 409 `invalid_transition` with what it may become."""
    view = await archive_order(
        principal.tenant_context, tenant_session, order_id_of(order_id), actor=principal.actor
    )
    return Order.of_view(view)


ROUTES = [hold_order, release_order_hold, release_order, cancel, complete, archive]
