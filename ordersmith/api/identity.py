"""Sign-up, sign-in, session refresh and sign-out, and who am I."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from ordersmith.api.access import AUTHENTICATED, PUBLIC
from ordersmith.api.auth import REFRESH_COOKIE, cleared_cookies, client_address, session_cookies
from ordersmith.api.problems import PROBLEMS
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.identity.accounts import (
    IssuedSession,
    get_user,
    refresh_session,
    sign_in,
    sign_out,
    sign_up,
)
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.tenancy import TenantRecord


class SignupRequest(msgspec.Struct):
    company_name: str
    email: str
    password: str
    slug: str | None = None


class TenantSummary(msgspec.Struct):
    id: str
    slug: str
    name: str
    plan: str
    status: str
    trial_ends_at: dt.datetime | None

    @classmethod
    def of(cls, tenant: TenantRecord) -> TenantSummary:
        return cls(str(tenant.id), tenant.slug, tenant.name, tenant.plan, tenant.status, tenant.trial_ends_at)


class TokenResponse(msgspec.Struct):
    token_type: str
    access_token: str | None
    expires_in: int
    refresh_token: str | None
    csrf_token: str | None = None


class SignupResponse(msgspec.Struct):
    tenant: TenantSummary
    user_id: str
    role: str
    token: TokenResponse


class TokenRequest(msgspec.Struct):
    email: str
    password: str
    tenant: str
    # "bearer" returns the tokens; "cookie" sets the web app's httpOnly session cookies instead.
    session: Literal["bearer", "cookie"] = "bearer"


class RefreshRequest(msgspec.Struct):
    refresh_token: str | None = None
    session: Literal["bearer", "cookie"] = "bearer"


class LogoutRequest(msgspec.Struct):
    refresh_token: str | None = None


class MeUser(msgspec.Struct):
    id: str
    email: str
    full_name: str
    email_verified: bool


class Me(msgspec.Struct):
    user: MeUser | None
    api_key_id: str | None
    tenant: TenantSummary
    role: str | None
    permissions: list[str]
    # Things the person should do, e.g. "verify_email".
    reminders: list[str]


def _token_response(
    request: Request[Any, Any, Any], issued: IssuedSession, mode: str
) -> Response[TokenResponse]:
    state: State = request.app.state
    if mode == "cookie":
        cookies = session_cookies(
            state.signer,
            access_token=issued.access_token,
            token_id=issued.access_token_id,
            refresh_token=issued.refresh_token,
            secure=state.settings.is_production,
            max_age=issued.expires_in,
        )
        body = TokenResponse("Cookie", None, issued.expires_in, None, csrf_token=cookies[-1].value)
        return Response(body, cookies=cookies, status_code=HTTP_200_OK)
    body = TokenResponse("Bearer", issued.access_token, issued.expires_in, issued.refresh_token)
    return Response(body, status_code=HTTP_200_OK)


@post(
    "/api/v1/signup",
    operation_id="signUp",
    summary="Start a free trial: create a store and its owner, and sign in.",
    opt=PUBLIC,
    tags=["auth"],
    status_code=HTTP_201_CREATED,
)
async def signup(
    request: Request[Any, Any, Any], state: State, data: JSONBody[SignupRequest]
) -> Response[SignupResponse]:
    """Start a trial store owned by a new account, or by the email's existing one given its password."""
    issued = await sign_up(
        state.database,
        state.tenant_schema,
        state.signer,
        company_name=data.company_name,
        email=data.email,
        password=data.password,
        slug=data.slug,
        public_url=state.settings.public_url,
        client_address=client_address(request),
        signups_per_hour=state.settings.signup_limit_per_hour,
    )
    token = TokenResponse("Bearer", issued.access_token, issued.expires_in, issued.refresh_token)
    body = SignupResponse(TenantSummary.of(issued.tenant), str(issued.user_id), issued.role, token)
    return Response(body, status_code=HTTP_201_CREATED)


@post(
    "/api/v1/auth/token",
    operation_id="createToken",
    summary="Sign in with email, password and store; get tokens or a cookie session.",
    # 401 for credentials that do not match, 403 for an archived store, 404 for an unknown one.
    opt={**PUBLIC, PROBLEMS: frozenset({401, 403, 404})},
    tags=["auth"],
    status_code=HTTP_200_OK,
)
async def token(
    request: Request[Any, Any, Any], state: State, data: JSONBody[TokenRequest]
) -> Response[TokenResponse]:
    """Exchange a password for a 15-minute access token and a refresh token."""
    issued = await sign_in(
        state.database,
        state.signer,
        email=data.email,
        password=data.password,
        tenant_slug=data.tenant,
        client_address=client_address(request),
    )
    return _token_response(request, issued, data.session)


@post(
    "/api/v1/auth/refresh",
    operation_id="refreshToken",
    summary="Rotate a refresh token for a new access token.",
    opt=PUBLIC,
    tags=["auth"],
    status_code=HTTP_200_OK,
)
async def refresh(
    request: Request[Any, Any, Any], state: State, data: JSONBody[RefreshRequest]
) -> Response[TokenResponse]:
    """Use a refresh token once; reusing one ends every session of its sign-in."""
    presented = data.refresh_token or request.cookies.get(REFRESH_COOKIE)
    if not presented:
        raise ValidationFailedError(
            "send the refresh token",
            errors=[FieldError("refresh_token", "required unless the session cookie is sent")],
        )
    issued = await refresh_session(
        state.database, state.signer, refresh_token=presented, client_address=client_address(request)
    )
    mode = "cookie" if data.refresh_token is None else data.session
    return _token_response(request, issued, mode)


@post(
    "/api/v1/auth/logout",
    operation_id="logout",
    summary="End the session a refresh token (or the session cookie) belongs to.",
    opt=PUBLIC,
    tags=["auth"],
    status_code=HTTP_200_OK,
)
async def logout(
    request: Request[Any, Any, Any], state: State, data: JSONBody[LogoutRequest | None] = None
) -> Response[None]:
    """Revoke the refresh token's whole family and clear the session cookies."""
    presented = (data.refresh_token if data else None) or request.cookies.get(REFRESH_COOKIE)
    if presented:
        await sign_out(state.database, refresh_token=presented, client_address=client_address(request))
    return Response(None, cookies=cleared_cookies(), status_code=HTTP_200_OK)


@get(
    "/api/v1/me",
    operation_id="getMe",
    summary="Who you are, in which store, and what you may do.",
    opt=AUTHENTICATED,
    tags=["auth"],
)
async def me(state: State, principal: NamedDependency[Principal]) -> Me:
    """The signed-in user (or API key), the tenant, the role and permissions."""
    assert principal.tenant is not None
    user = None
    reminders = []
    if principal.kind == "user":
        profile = await get_user(state.database, principal.id)
        user = MeUser(
            str(profile.id), profile.email, profile.full_name, profile.email_verified_at is not None
        )
        if profile.email_verified_at is None:
            reminders.append("verify_email")
    return Me(
        user=user,
        api_key_id=str(principal.id) if principal.kind == "api_key" else None,
        tenant=TenantSummary.of(principal.tenant),
        role=principal.role,
        permissions=sorted(principal.permissions),
        reminders=reminders,
    )


ROUTES = [signup, token, refresh, logout, me]
