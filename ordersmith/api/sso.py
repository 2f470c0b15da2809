"""Single sign-on: a store's OpenID Connect settings, and signing in through them.

Setting a provider up and signing in through it need the `sso` feature (402
`feature_not_in_plan` otherwise); reading and removing the settings do not, so a store
that lost the feature still sees what it had and can clear it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect
from litestar.status_codes import HTTP_204_NO_CONTENT, HTTP_302_FOUND

from ordersmith.api.access import PUBLIC, requires
from ordersmith.api.auth import client_address
from ordersmith.api.entitlements import requires_feature
from ordersmith.api.problems import PROBLEMS
from ordersmith.api.query_parameters import ANY_QUERY
from ordersmith.platform.errors import PermissionDeniedError
from ordersmith.platform.identity.oidc import NetworkPolicy
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.identity.sso import (
    SsoConfig,
    configure_sso,
    finish_sso_login,
    get_sso_config,
    remove_sso,
    start_sso_login,
)
from ordersmith.platform.plans import Feature

CALLBACK_PATH = "/api/v1/auth/sso/callback"
BEARER = "Bearer"


class SsoSettingsUpdate(msgspec.Struct):
    issuer: str
    client_id: str
    # Leave out to keep the stored secret; required the first time and whenever the issuer changes.
    client_secret: str | None = None
    default_role: str = "agent"
    enabled: bool = True


class SsoSettings(msgspec.Struct):
    issuer: str
    client_id: str
    default_role: str
    enabled: bool
    has_client_secret: bool
    # What to register at the provider as the redirect URI, and where people start signing in.
    callback_url: str
    login_url: str
    updated_at: dt.datetime


class SsoSession(msgspec.Struct):
    token_type: str
    access_token: str
    expires_in: int
    refresh_token: str
    user_id: str
    tenant_slug: str
    role: str
    created_user: bool
    # The path the sign-in was started for, where the web app should land.
    redirect_uri: str


def _callback_url(state: State) -> str:
    return f"{state.settings.public_url}{CALLBACK_PATH}"


def _network(state: State) -> NetworkPolicy:
    return NetworkPolicy(
        allow_private_addresses=state.settings.sso_allow_private_addresses,
        require_https=state.settings.is_production,
    )


def _settings(state: State, principal: Principal, config: SsoConfig) -> SsoSettings:
    assert principal.tenant is not None
    return SsoSettings(
        issuer=config.issuer,
        client_id=config.client_id,
        default_role=config.default_role,
        enabled=config.is_enabled,
        has_client_secret=config.has_client_secret,
        callback_url=_callback_url(state),
        login_url=f"{state.settings.public_url}/api/v1/auth/sso/{principal.tenant.slug}/login",
        updated_at=config.updated_at,
    )


def _owner_in_person(principal: Principal) -> None:
    """403 for an API key: the provider vouches for every member, so a person chooses it."""
    if principal.kind != "user":
        raise PermissionDeniedError(
            "single sign-on is set by an owner signed in, not by an API key: the provider it names "
            "can sign anyone in as any member of this store"
        )


@get(
    "/api/v1/sso",
    operation_id="getSsoSettings",
    summary="Read the store's single sign-on settings (never the client secret).",
    opt=requires(Permission.SETTINGS_READ),
    tags=["sso"],
)
async def read_sso_settings(state: State, principal: NamedDependency[Principal]) -> SsoSettings:
    """The store's OIDC provider, client id, default role and whether SSO is on."""
    assert principal.tenant is not None
    config = await get_sso_config(state.database, principal.tenant.id)
    return _settings(state, principal, config)


@put(
    "/api/v1/sso",
    operation_id="putSsoSettings",
    summary="Set the store's OpenID Connect provider for single sign-on (an owner, signed in).",
    opt=requires(Permission.SSO_MANAGE),
    guards=[requires_feature(Feature.SSO)],
    tags=["sso"],
)
async def put_sso_settings(
    state: State, principal: NamedDependency[Principal], data: JSONBody[SsoSettingsUpdate]
) -> SsoSettings:
    """Store issuer, client id, encrypted client secret and the role given to new members."""
    assert principal.tenant is not None
    _owner_in_person(principal)
    config = await configure_sso(
        state.database,
        principal.tenant.id,
        actor=principal.actor,
        secret_key=state.settings.secret_key,
        network=_network(state),
        issuer=data.issuer,
        client_id=data.client_id,
        client_secret=data.client_secret,
        default_role=data.default_role,
        is_enabled=data.enabled,
    )
    return _settings(state, principal, config)


@delete(
    "/api/v1/sso",
    operation_id="deleteSsoSettings",
    summary="Turn single sign-on off and forget the provider's settings (an owner, signed in).",
    opt=requires(Permission.SSO_MANAGE),
    tags=["sso"],
    status_code=HTTP_204_NO_CONTENT,
)
async def delete_sso_settings(state: State, principal: NamedDependency[Principal]) -> None:
    """Remove the store's SSO settings; members keep their accounts."""
    assert principal.tenant is not None
    _owner_in_person(principal)
    await remove_sso(state.database, principal.tenant.id, actor=principal.actor)


@get(
    "/api/v1/auth/sso/{tenant_slug:str}/login",
    operation_id="startSsoLogin",
    summary="Start signing in to a store through its identity provider (redirects there).",
    opt={**PUBLIC, PROBLEMS: frozenset({502})},
    guards=[requires_feature(Feature.SSO)],
    tags=["auth"],
    status_code=HTTP_302_FOUND,
)
async def start_sso(
    state: State, tenant_slug: FromPath[str], redirect_uri: FromQuery[str | None] = None
) -> Redirect:
    """Redirect to the provider's sign-in page with state, nonce and PKCE."""
    url = await start_sso_login(
        state.database,
        network=_network(state),
        tenant_slug=tenant_slug,
        return_to=redirect_uri,
        callback_url=_callback_url(state),
    )
    return Redirect(path=url, status_code=HTTP_302_FOUND)


@get(
    CALLBACK_PATH,
    operation_id="finishSsoLogin",
    summary="Where the identity provider sends people back; answers with a session.",
    # The provider may add parameters of its own (`iss`, `session_state`…). 402 when a newcomer
    # finds no free seat.
    opt={**PUBLIC, PROBLEMS: frozenset({402, 502}), ANY_QUERY: True},
    tags=["auth"],
)
async def finish_sso(
    request: Request[Any, Any, Any],
    state: State,
    login_state: Annotated[str, QueryParameter(name="state")],
    code: FromQuery[str | None] = None,
    error: FromQuery[str | None] = None,
) -> SsoSession:
    """Check the provider's answer and sign the person in (JSON tokens for now)."""
    signed_in = await finish_sso_login(
        state.database,
        state.signer,
        network=_network(state),
        state=login_state,
        code=code,
        error=error,
        secret_key=state.settings.secret_key,
        callback_url=_callback_url(state),
        client_address=client_address(request),
    )
    issued = signed_in.issued
    return SsoSession(
        token_type=BEARER,
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
        user_id=str(issued.user_id),
        tenant_slug=issued.tenant.slug,
        role=issued.role,
        created_user=signed_in.created_user,
        redirect_uri=signed_in.return_to,
    )


ROUTES = [read_sso_settings, put_sso_settings, delete_sso_settings, start_sso, finish_sso]
