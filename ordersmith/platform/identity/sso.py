"""Single sign-on with OpenID Connect: one provider per tenant.

A tenant admin registers the provider (issuer, client id and secret); the client secret
is encrypted at rest with AES-GCM under a key derived from SECRET_KEY and bound to the
tenant. Sign-in is the authorization-code flow with state, nonce and PKCE (S256), each
attempt remembered for ten minutes and usable once; `oidc.identify` checks what the
provider answers. People are matched by the email the provider verified: an unknown
address becomes a user without a password and a member with the configuration's
default role; an existing account is joined only if it verified that address itself.
Every connection to the provider goes through `oidc.provider_client`, which refuses
private and loopback addresses unless the deployment allows them.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.errors import (
    FieldError,
    NotFoundError,
    OrdersmithError,
    ServiceUnavailableError,
    TenantNotFoundError,
    UnauthenticatedError,
    ValidationFailedError,
)
from ordersmith.platform.identity import oidc
from ordersmith.platform.identity.audit import Actor, record_audit
from ordersmith.platform.identity.models import (
    SsoLoginState,
    TenantSsoConfig,
)
from ordersmith.platform.identity.permissions import Role
from ordersmith.platform.identity.sso_members import SsoSignIn, record_failure, sign_in_member
from ordersmith.platform.identity.tokens import TokenSigner, derived_key
from ordersmith.platform.tenancy import TenantRecord, get_tenant_by_id, get_tenant_record, require_active

LOGIN_STATE_LIFETIME = dt.timedelta(minutes=10)
# Roles SSO may hand out to new members; ownership is never granted by a provider.
SSO_ROLES = (Role.ADMIN, Role.MANAGER, Role.AGENT, Role.VIEWER)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
_SEALED_VERSION = b"\x01"


class SsoNotConfiguredError(NotFoundError):
    code = "sso_not_configured"
    title = "Single sign-on not configured"


class SsoStateInvalidError(OrdersmithError):
    status = 400
    code = "sso_state_invalid"
    title = "Sign-in attempt unknown or expired"


class SsoDeniedError(UnauthenticatedError):
    code = "sso_denied"
    title = "Identity provider refused the sign-in"


class SsoSecretUnreadableError(ServiceUnavailableError):
    code = "sso_secret_unreadable"
    title = "SSO client secret unreadable"


# --- the client secret, encrypted at rest -------------------------------------------


def _sealing_key(secret_key: str) -> bytes:
    # One SECRET_KEY, a separate key per purpose: this one can only open SSO secrets.
    return derived_key(secret_key, "sso-client-secret")


def seal_client_secret(secret_key: str, tenant_id: uuid.UUID, client_secret: str) -> bytes:
    """The client secret encrypted with AES-GCM; the tenant id is bound in as associated data."""
    nonce = os.urandom(12)
    sealed = AESGCM(_sealing_key(secret_key)).encrypt(nonce, client_secret.encode(), tenant_id.bytes)
    return _SEALED_VERSION + nonce + sealed


def open_client_secret(secret_key: str, tenant_id: uuid.UUID, sealed: bytes) -> str:
    """The plaintext of `seal_client_secret`; refuses a secret moved from another tenant."""
    try:
        if not sealed.startswith(_SEALED_VERSION):
            raise InvalidTag
        nonce, ciphertext = sealed[1:13], sealed[13:]
        return AESGCM(_sealing_key(secret_key)).decrypt(nonce, ciphertext, tenant_id.bytes).decode()
    except InvalidTag:
        raise SsoSecretUnreadableError(
            "this store's SSO client secret cannot be decrypted (was SECRET_KEY changed?); "
            "a store admin must enter the client secret again"
        ) from None


# --- configuration ------------------------------------------------------------------


@dataclass(frozen=True)
class SsoConfig:
    """A tenant's SSO settings as the API shows them: never the secret itself."""

    tenant_id: uuid.UUID
    issuer: str
    client_id: str
    default_role: str
    is_enabled: bool
    has_client_secret: bool
    updated_at: dt.datetime


def _view(row: TenantSsoConfig) -> SsoConfig:
    return SsoConfig(
        row.tenant_id,
        row.issuer,
        row.client_id,
        row.default_role,
        row.is_enabled,
        bool(row.client_secret_encrypted),
        row.updated_at,
    )


def _issuer_errors(issuer: str, *, allow_loopback_http: bool) -> list[FieldError]:
    try:
        parts = urlsplit(issuer)
        # Reading the port raises ValueError when it is not a number from 0 to 65535.
        host, port = parts.hostname, parts.port
    except ValueError:
        parts, host, port = None, None, None
    secure = parts is not None and parts.scheme == "https"
    loopback = (
        allow_loopback_http and parts is not None and parts.scheme == "http" and host in _LOOPBACK_HOSTS
    )
    well_formed = (
        parts is not None and host and port != 0 and not (parts.query or parts.fragment or parts.username)
    )
    if (secure or loopback) and well_formed and len(issuer) <= 500:
        return []
    message = "must be an https URL without query or fragment, like https://login.example.com"
    if allow_loopback_http:
        message += " (http://127.0.0.1 and http://localhost are accepted outside production)"
    return [FieldError("issuer", message)]


async def _issuer_address_errors(issuer: str, network: oidc.NetworkPolicy) -> list[FieldError]:
    """Refuse now an issuer on a private address, which every connection would refuse later."""
    if network.allow_private_addresses:
        return []
    parts = urlsplit(issuer)
    assert parts.hostname is not None  # _issuer_errors checked the URL
    try:
        await oidc.checked_address(parts.hostname, allow_private_addresses=False)
    except oidc.SsoProviderAddressRefusedError as refused:
        return [FieldError("issuer", f"must lead to a public address, but {refused.reason}")]
    except OSError:
        # A name that does not resolve yet may still be right; each connection checks again.
        return []
    return []


async def _require_secret_kept_for(session: AsyncSession, tenant_id: uuid.UUID, issuer: str) -> None:
    """Refuse to keep the stored client secret unless it stays with the issuer it was entered for.

    The secret is sent to the issuer's token endpoint: kept across a change of issuer, it
    would go to a provider that never issued it (and whoever runs that one could read it).
    """
    # Locked, so that a concurrent change of issuer cannot slip in between this check and the update.
    stored_issuer = await session.scalar(
        select(TenantSsoConfig.issuer).where(TenantSsoConfig.tenant_id == tenant_id).with_for_update()
    )
    if stored_issuer is None:
        raise ValidationFailedError(
            "send the client secret: this store has no SSO settings to keep it from",
            errors=[FieldError("client_secret", "required when SSO is set up for the first time")],
        )
    if stored_issuer != issuer:
        raise ValidationFailedError(
            "send the client secret again: the stored one was entered for another issuer",
            errors=[
                FieldError(
                    "client_secret",
                    f"required when the issuer changes (from {stored_issuer}): the stored secret is never "
                    "sent to another provider; send the secret the new provider issued",
                )
            ],
        )


async def get_sso_config(database: Database, tenant_id: uuid.UUID) -> SsoConfig:
    """The tenant's SSO settings; 404 `sso_not_configured` if it has none."""
    async with database.platform_session() as session:
        row = await session.get(TenantSsoConfig, tenant_id)
    if row is None:
        raise SsoNotConfiguredError("this store has no single sign-on yet; an admin can set it up with PUT")
    return _view(row)


async def configure_sso(
    database: Database,
    tenant_id: uuid.UUID,
    *,
    actor: Actor,
    secret_key: str,
    network: oidc.NetworkPolicy,
    issuer: str,
    client_id: str,
    client_secret: str | None,
    default_role: str,
    is_enabled: bool,
) -> SsoConfig:
    """Set the tenant's OIDC provider; without a client secret, the stored one is kept."""
    issuer, client_id = issuer.strip(), client_id.strip()
    errors = _issuer_errors(issuer, allow_loopback_http=not network.require_https)
    if not errors:
        errors = await _issuer_address_errors(issuer, network)
    if not client_id or len(client_id) > 200:
        errors.append(
            FieldError("client_id", "must be the client id your provider issued (1-200 characters)")
        )
    if client_secret is not None and not 0 < len(client_secret) <= 2000:
        errors.append(FieldError("client_secret", "must be the client secret your provider issued"))
    if default_role not in SSO_ROLES:
        errors.append(FieldError("default_role", f"must be one of {', '.join(SSO_ROLES)}"))
    if errors:
        raise ValidationFailedError("some SSO settings are invalid; see errors", errors=errors)
    values: dict[str, Any] = {
        "issuer": issuer,
        "client_id": client_id,
        "default_role": default_role,
        "is_enabled": is_enabled,
        "updated_at": func.now(),
    }
    async with database.platform_session() as session:
        if client_secret is None:
            await _require_secret_kept_for(session, tenant_id, issuer)
            await session.execute(
                update(TenantSsoConfig).where(TenantSsoConfig.tenant_id == tenant_id).values(**values)
            )
        else:
            values["client_secret_encrypted"] = seal_client_secret(secret_key, tenant_id, client_secret)
            await session.execute(
                pg_insert(TenantSsoConfig)
                .values(tenant_id=tenant_id, **values)
                .on_conflict_do_update(index_elements=[TenantSsoConfig.tenant_id], set_=values)
            )
        await record_audit(
            session,
            tenant_id=tenant_id,
            actor=actor,
            action="sso.configured",
            target_type="sso_config",
            target_id=str(tenant_id),
            data={
                "issuer": issuer,
                "client_id": client_id,
                "default_role": default_role,
                "enabled": is_enabled,
                "client_secret_changed": client_secret is not None,
            },
        )
        row = await session.get(TenantSsoConfig, tenant_id, populate_existing=True)
        assert row is not None
        return _view(row)


async def remove_sso(database: Database, tenant_id: uuid.UUID, *, actor: Actor) -> None:
    """Delete the tenant's SSO settings; people who signed in through it keep their memberships."""
    async with database.platform_session() as session:
        removed = await session.execute(delete(TenantSsoConfig).where(TenantSsoConfig.tenant_id == tenant_id))
        if removed.rowcount == 0:  # type: ignore[attr-defined]
            raise SsoNotConfiguredError("this store has no single sign-on to remove")
        await record_audit(
            session,
            tenant_id=tenant_id,
            actor=actor,
            action="sso.removed",
            target_type="sso_config",
            target_id=str(tenant_id),
        )


# --- sign-in ------------------------------------------------------------------------


def _is_plain_path(path: str) -> bool:
    """A path starting with one slash, without a character a browser reads differently.

    Browsers drop tabs and line breaks from a URL and read a backslash as a slash, so a tab
    between two slashes, or a backslash after the first, leads to //evil.example: another
    site. No path on this site needs a control character either.
    """
    return (
        path.startswith("/")
        and not path.startswith("//")
        and "\\" not in path
        and not any(character < " " or character == "\x7f" for character in path)
    )


def validate_return_path(return_to: str | None) -> str:
    """Where to land after sign-in: a path on this site only, so the flow is no open redirect."""
    path = return_to or "/"
    if not _is_plain_path(path) or len(path) > 500:
        raise ValidationFailedError(
            "redirect_uri must be a path on this site",
            errors=[FieldError("redirect_uri", "must be a path on this site starting with /, like /orders")],
        )
    return path


def _not_configured(slug: str) -> SsoNotConfiguredError:
    return SsoNotConfiguredError(
        f"store {slug!r} does not offer single sign-on; sign in with your email and password, "
        "or ask a store admin to set SSO up"
    )


async def _enabled_config(database: Database, tenant: TenantRecord) -> TenantSsoConfig:
    async with database.platform_session() as session:
        config = await session.get(TenantSsoConfig, tenant.id)
    if config is None or not config.is_enabled:
        raise _not_configured(tenant.slug)
    return config


async def start_sso_login(
    database: Database,
    *,
    network: oidc.NetworkPolicy,
    tenant_slug: str,
    return_to: str | None,
    callback_url: str,
) -> str:
    """The provider's authorization URL for signing in to a store; the attempt lives 10 minutes."""
    return_path = validate_return_path(return_to)
    try:
        tenant = await get_tenant_record(database, tenant_slug)
    except TenantNotFoundError:
        raise _not_configured(tenant_slug) from None
    require_active(tenant)
    config = await _enabled_config(database, tenant)
    async with oidc.provider_client(network) as client:
        metadata = await oidc.providers.metadata(client, config.issuer)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        # Abandoned attempts leave rows behind; each new attempt sweeps the expired ones.
        await session.execute(delete(SsoLoginState).where(SsoLoginState.expires_at < now))
        await session.execute(
            insert(SsoLoginState).values(
                state=state,
                tenant_id=tenant.id,
                nonce=nonce,
                code_verifier=verifier,
                redirect_uri=return_path,
                expires_at=now + LOGIN_STATE_LIFETIME,
            )
        )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": config.client_id,
            "redirect_uri": callback_url,
            "scope": oidc.SCOPE,
            "state": state,
            "nonce": nonce,
            "code_challenge": oidc.pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    endpoint: str = metadata["authorization_endpoint"]
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


async def finish_sso_login(
    database: Database,
    signer: TokenSigner,
    *,
    network: oidc.NetworkPolicy,
    state: str,
    code: str | None,
    error: str | None,
    secret_key: str,
    callback_url: str,
    client_address: str | None,
) -> SsoSignIn:
    """Turn the provider's answer into a session: check the ID token, then find or create the member."""
    if code is None and error is None:
        raise ValidationFailedError(
            "the provider's answer carries no code",
            errors=[FieldError("code", "this query parameter is required")],
        )
    async with database.platform_session() as session:
        # Deleted whatever happens next: an attempt can be completed (or failed) once.
        login = (
            await session.execute(
                delete(SsoLoginState)
                .where(SsoLoginState.state == state)
                .returning(
                    SsoLoginState.tenant_id,
                    SsoLoginState.nonce,
                    SsoLoginState.code_verifier,
                    SsoLoginState.redirect_uri,
                    SsoLoginState.expires_at,
                )
            )
        ).one_or_none()
    if login is None or login.expires_at <= dt.datetime.now(dt.UTC):
        raise SsoStateInvalidError("this sign-in attempt is unknown, expired or already used; start again")
    if error is not None:
        raise SsoDeniedError(
            f"the identity provider refused the sign-in ({error[:100]}); try again or ask your IT team"
        )
    assert code is not None
    tenant = await get_tenant_by_id(database, login.tenant_id)
    require_active(tenant)
    config = await _enabled_config(database, tenant)
    client_secret = open_client_secret(secret_key, tenant.id, config.client_secret_encrypted)
    async with oidc.provider_client(network) as client:
        try:
            identity = await oidc.identify(
                client,
                issuer=config.issuer,
                client_id=config.client_id,
                client_secret=client_secret,
                code=code,
                code_verifier=login.code_verifier,
                nonce=login.nonce,
                redirect_uri=callback_url,
            )
        except (
            oidc.SsoCodeRejectedError,
            oidc.SsoTokenInvalidError,
            oidc.SsoEmailUnverifiedError,
        ) as failure:
            await record_failure(database, tenant.id, client_address, config.issuer, failure.code)
            raise
    return await sign_in_member(
        database,
        signer,
        tenant,
        config,
        identity,
        return_to=login.redirect_uri,
        client_address=client_address,
    )
