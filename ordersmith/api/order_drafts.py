"""Draft orders over HTTP: replace a draft whole, then place it.

A draft is created by `POST /api/v1/orders` with `"draft": true`; it is an order with
status `draft`, listed and read like any other, cancelled with the cancel route.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import requires
from ordersmith.api.orders import MAX_ORDER_BODY, Order, OrderCreate, order_request
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.tenants.orders.drafts import place_draft, replace_draft
from ordersmith.tenants.orders.views import order_id_of


class DraftReplace(OrderCreate, forbid_unknown_fields=True):
    # The version read; a draft changed since then answers 409 `order_changed`.
    expected_version: int | None = None


@put(
    "/api/v1/orders/{order_id:str}/draft",
    operation_id="replaceDraftOrder",
    summary="Replace a draft's customer, lines and address; it still holds no stock.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["orders"],
    request_max_body_size=MAX_ORDER_BODY,
)
async def replace(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
    data: JSONBody[DraftReplace],
) -> Order:
    """409 `order_not_draft` once placed (edit it instead); the body is an order's, `draft` ignored."""
    view = await replace_draft(
        principal.tenant_context,
        tenant_session,
        order_id_of(order_id),
        order_request(data),
        expected_version=data.expected_version,
        actor=principal.actor,
    )
    return Order.of_view(view)


class PlaceIn(msgspec.Struct):
    """Placing takes no body; under an `Idempotency-Key` the request is its path."""


@post(
    "/api/v1/orders/{order_id:str}/place",
    operation_id="placeDraftOrder",
    summary="Place a draft: reserve its stock and confirm it, all or nothing.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["orders"],
    status_code=200,
)
async def place(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
) -> Response[Order]:
    """409 `insufficient_stock` names each short SKU, changing nothing; a non-draft: `invalid_transition`.

    An `Idempotency-Key` makes a retry safe: it gets the placed order, not `invalid_transition`.
    """

    async def run() -> Order:
        view = await place_draft(
            principal.tenant_context, tenant_session, order_id_of(order_id), actor=principal.actor
        )
        return Order.of_view(view)

    return await idempotency.once(request, principal, tenant_session, PlaceIn(), run, status_code=200)


ROUTES = [replace, place]
