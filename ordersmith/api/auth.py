"""Authentication and authorization of every request, in one guard.

Credentials: `Authorization: Bearer <access token | API key>`, or the web app's httpOnly
session cookie. A request authenticated by cookie that changes something must echo the
CSRF token (cookie `ordersmith_csrf`) in the `X-CSRF-Token` header.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api.access import OPENAPI_PATH
from ordersmith.api.entitlements import enforce_read_only
from ordersmith.api.rate_limits import limit_requests
from ordersmith.platform.database import Database
from ordersmith.platform.errors import PermissionDeniedError, UnauthenticatedError
from ordersmith.platform.identity.permissions import lacking
from ordersmith.platform.identity.principal import (
    API_KEY_PREFIX,
    Principal,
    principal_from_access_token,
    principal_from_api_key,
    principal_from_staff_token,
)
from ordersmith.platform.identity.tokens import TokenSigner
from ordersmith.platform.settings import Network, Settings

ACCESS_COOKIE = "ordersmith_access"
REFRESH_COOKIE = "ordersmith_refresh"
CSRF_COOKIE = "ordersmith_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfFailedError(PermissionDeniedError):
    code = "csrf_failed"
    title = "CSRF check failed"


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The caller's address: the peer's, or the one its trusted proxies forwarded (TRUSTED_PROXIES)."""
    settings: Settings = connection.app.state.settings
    peer = connection.client.host if connection.client else None
    return forwarded_client(peer, connection.headers.getall("x-forwarded-for", []), settings.trusted_proxies)


def _is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]) -> bool:
    # A dual-stack listener shows IPv4 peers as ::ffff:a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted)


def forwarded_client(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str | None:
    """The client behind a chain of trusted proxies.

    Each proxy appends the address it received the request from, so the header is read
    right to left: trusted hops are skipped and the first other address is the client.
    Anything left of it was written by the client itself and proves nothing. A request
    that does not come from a trusted proxy is taken at its word: its peer address.
    """
    try:
        client = ipaddress.ip_address(peer or "")
    except ValueError:
        return peer
    if not _is_trusted(client, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        try:
            client = ipaddress.ip_address(hop)
        except ValueError:
            # A garbled entry cannot be trusted, nor anything left of it: stop at the
            # last proxy that did hand the request on.
            break
        if not _is_trusted(client, trusted):
            break
    return str(client)


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The principal behind the request's credential; 401 when there is none or it is bad."""
    database: Database = connection.app.state.database
    signer: TokenSigner = connection.app.state.signer
    address = client_address(connection)
    authorization = connection.headers.get("authorization", "")
    if authorization:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise UnauthenticatedError("use 'Authorization: Bearer <access token or API key>'")
        credential = credential.strip()
        if credential.startswith(API_KEY_PREFIX + "_"):
            return await principal_from_api_key(database, credential, client_address=address)
        return await principal_from_access_token(
            database, signer, credential, via_cookie=False, client_address=address
        )
    cookie = connection.cookies.get(ACCESS_COOKIE)
    if cookie:
        principal = await principal_from_access_token(
            database, signer, cookie, via_cookie=True, client_address=address
        )
        if connection.scope.get("method", "GET") not in _SAFE_METHODS:
            expected = signer.csrf_token(principal.token_id or "")
            if not hmac.compare_digest(connection.headers.get(CSRF_HEADER, ""), expected):
                raise CsrfFailedError(
                    f"send the value of the {CSRF_COOKIE} cookie in the X-CSRF-Token header"
                )
        return principal
    raise UnauthenticatedError("sign in, or send 'Authorization: Bearer <access token or API key>'")


async def authenticate_staff(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The staff member behind a staff bearer token; tenant credentials never pass."""
    scheme, _, credential = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise UnauthenticatedError("staff routes need 'Authorization: Bearer <staff access token>'")
    return await principal_from_staff_token(
        connection.app.state.database,
        connection.app.state.signer,
        credential.strip(),
        client_address=client_address(connection),
    )


async def enforce_access(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The app-wide guard: enforce the route's access declaration."""
    access = handler.opt.get("access")
    if access == "public" or (access is None and connection.scope["path"].startswith(OPENAPI_PATH)):
        return
    if access == "staff":
        principal = await authenticate_staff(connection)
        connection.state.principal = principal
        if principal.role not in handler.opt["staff_roles"]:
            allowed = ", ".join(sorted(handler.opt["staff_roles"]))
            raise PermissionDeniedError(
                f"this needs a staff role among {allowed}; yours is {principal.role!r}"
            )
        return
    principal = await authenticate(connection)
    connection.state.principal = principal
    if principal.tenant is not None:
        # Metered once authenticated, whatever the answer: a dictionary update, flushed in batches.
        connection.app.state.request_meter.count(principal.tenant.id)
    if access == "permission":
        permission = handler.opt["permission"]
        if not principal.can(permission):
            raise lacking(permission)
    elif access != "authenticated":
        raise PermissionDeniedError("this route declares no access rule; it is closed")
    # After authorization: a caller who may not write at all hears 403, not 402 or 429.
    await enforce_read_only(connection, handler, principal)
    await limit_requests(connection.app.state.database, connection.app.state.request_windows, principal)


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The principal the guard authenticated."""
    principal: Principal = request.state.principal
    return principal


async def provide_tenant_session(
    state: State, principal: NamedDependency[Principal]
) -> AsyncGenerator[AsyncSession, None]:
    """A transaction in the principal's tenant, committed if the handler succeeds."""
    if principal.tenant is None:
        raise PermissionDeniedError("this route works on a store's data; use a store user's token or API key")
    database: Database = state.database
    async with database.tenant_session(principal.tenant.context) as session:
        yield session


def session_cookies(
    signer: TokenSigner, *, access_token: str, token_id: str, refresh_token: str, secure: bool, max_age: int
) -> list[Cookie]:
    """The web app's session: httpOnly access and refresh cookies, and a readable CSRF cookie."""
    return [
        Cookie(
            key=ACCESS_COOKIE,
            value=access_token,
            httponly=True,
            secure=secure,
            samesite="lax",
            path="/",
            max_age=max_age,
        ),
        Cookie(
            key=REFRESH_COOKIE,
            value=refresh_token,
            httponly=True,
            secure=secure,
            samesite="strict",
            path="/api/v1/auth",
            max_age=30 * 24 * 3600,
        ),
        Cookie(
            key=CSRF_COOKIE,
            value=signer.csrf_token(token_id),
            httponly=False,
            secure=secure,
            samesite="lax",
            path="/",
        ),
    ]


def cleared_cookies() -> list[Cookie]:
    """Cookies that end the web app's session."""
    return [
        Cookie(key=ACCESS_COOKIE, value="", path="/", max_age=0),
        Cookie(key=REFRESH_COOKIE, value="", path="/api/v1/auth", max_age=0),
        Cookie(key=CSRF_COOKIE, value="", path="/", max_age=0),
    ]
