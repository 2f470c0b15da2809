"""Entitlements on the HTTP side: the `requires_feature` guard, read-only stores, soft-limit warnings.

- `guards=[requires_feature(Feature.SSO)]` answers 402 `feature_not_in_plan` (naming the
  feature and the cheapest plan with it) when the caller's store lacks the feature.
- A store that is read-only (trial ended, payment overdue, subscription ended) gets 402
  on every write; the app-wide guard (`api/auth.py`) calls `enforce_read_only` for that.
  Reads (GET, HEAD, OPTIONS) always pass, and so do the writes a read-only store needs to
  get out of it: routes whose `opt` includes `WRITABLE_WHEN_READ_ONLY` (changing plan).
  Signing in, refreshing and signing out are public routes, which this never reaches.
- A soft limit gone over during a request adds an `Ordersmith-Limit-Warning` header
  (`LimitWarningMiddleware`); the admins are emailed by the billing room.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ordersmith.platform.database import Database
from ordersmith.platform.entitlements import (
    billing_of,
    check_feature,
    collect_limit_warnings,
    require_writable,
    resolve_entitlements,
)
from ordersmith.platform.errors import TenantNotFoundError
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.plans import Feature
from ordersmith.platform.tenancy import get_tenant_record

# Merged into a route's `opt`: the route works even while the store is read-only.
WRITABLE_WHEN_READ_ONLY: dict[str, Any] = {"writable_when_read_only": True}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LIMIT_WARNING_HEADER = b"ordersmith-limit-warning"

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Coroutine[Any, Any, None]]


def requires_feature(feature: Feature) -> Guard:
    """A route guard: the caller's store must have `feature` (plan or override), else 402.

    The store is the principal's; on a public route, the one named by the `tenant_slug`
    path parameter (the SSO sign-in).
    """

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        database: Database = connection.app.state.database
        principal: Principal | None = getattr(connection.state, "principal", None)
        if principal is not None and principal.tenant is not None:
            tenant_id = principal.tenant.id
        else:
            try:
                tenant_id = (await get_tenant_record(database, connection.path_params["tenant_slug"])).id
            except TenantNotFoundError:
                # The route answers an unknown store as it answers one without the feature set up.
                return
        check_feature(await resolve_entitlements(database, tenant_id), feature)

    guard.__name__ = f"requires_feature_{feature.value}"
    return guard


async def enforce_read_only(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler, principal: Principal
) -> None:
    """402 for a write to a read-only store, unless the route is one that gets it out of that state."""
    if principal.tenant is None or connection.scope.get("method", "GET") in SAFE_METHODS:
        return
    if handler.opt.get("writable_when_read_only"):
        return
    # The principal's tenant was read for this request: its billing state is current.
    require_writable(billing_of(principal.tenant), dt.datetime.now(dt.UTC))


class LimitWarningMiddleware:
    """Collects the soft-limit warnings of a request and sends them in `Ordersmith-Limit-Warning`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        with collect_limit_warnings() as warnings:

            async def send_with_warnings(message: Message) -> None:
                if message["type"] == "http.response.start" and warnings:
                    value = ", ".join(item.header_value() for item in warnings).encode()
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (LIMIT_WARNING_HEADER, value)],
                    }
                await send(message)

            await self.app(scope, receive, send_with_warnings)
