"""The `Idempotency-Key` header on creating POSTs (see platform/idempotency.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform import idempotency
from ordersmith.platform.database import Driver, driver_of
from ordersmith.platform.identity.principal import Principal

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

T = TypeVar("T", bound=msgspec.Struct)


async def once(
    request: Request[Any, Any, Any],
    principal: Principal,
    transaction: AsyncSession | Driver,
    body: msgspec.Struct,
    create: Callable[[], Awaitable[T]],
    *,
    status_code: int = 201,
) -> Response[T]:
    """Run `create` unless the caller's key already ran it; either way, the first response.

    `transaction` is the request's tenant transaction: a session, or the bare driver
    connection of one (order placement). Under a key the body is the struct's JSON form
    (what was stored), the same on the wire; the type still names what the route answers.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return Response(await create(), status_code=status_code)
    tenant = principal.tenant_context
    connection = await driver_of(transaction) if isinstance(transaction, AsyncSession) else transaction
    scope = f"{principal.kind}:{principal.id}"
    print_ = idempotency.fingerprint(
        request.method, request.url.path, msgspec.json.encode(body, order="sorted")
    )
    stored = await idempotency.claim(tenant, connection, scope=scope, key=key, print_=print_)
    if stored is not None:
        return Response(stored.body, status_code=stored.status_code, headers={REPLAYED_HEADER: "true"})
    created = msgspec.to_builtins(await create())
    await idempotency.remember(
        tenant, connection, scope=scope, key=key, status_code=status_code, body=created
    )
    return Response(created, status_code=status_code)
