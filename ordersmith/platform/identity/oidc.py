"""The OpenID Connect relying party: discovery, code exchange and ID-token checks.

It knows providers, not tenants: `identify` turns an authorization code into a verified
identity or raises a typed error. Discovery documents and key sets are cached briefly.
The code exchange is a plain httpx request (Authlib's httpx integration warns on import
that it wants httpx2); Authlib's `CodeIDToken` checks the ID token's claims.

Tenant admins choose the issuer, and the discovery document names the other endpoints,
so every URL here is someone else's choice: `provider_client` resolves each host, refuses
loopback, private, link-local and other non-public addresses (unless the deployment
allows them), connects to the address it checked, and never follows redirects.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from ordersmith.platform.errors import (
    OrdersmithError,
    PermissionDeniedError,
    UnauthenticatedError,
    ValidationFailedError,
)
from ordersmith.platform.identity.accounts import normalize_email

SCOPE = "openid email profile"
# Asymmetric algorithms only: "none" and HMAC (keyed with the client secret) are refused.
SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
CLOCK_LEEWAY_SECONDS = 60
HTTP_TIMEOUT = httpx.Timeout(10.0)


class SsoProviderUnavailableError(OrdersmithError):
    status = 502
    code = "sso_provider_unavailable"
    title = "Identity provider unavailable"


class SsoProviderAddressRefusedError(SsoProviderUnavailableError):
    code = "sso_provider_address_refused"
    title = "Identity provider address refused"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"single sign-on refused to connect to the identity provider: {reason}; "
            "a store admin should check the issuer URL"
        )
        self.reason = reason


class SsoCodeRejectedError(UnauthenticatedError):
    code = "sso_code_rejected"
    title = "Sign-in code rejected"


class SsoTokenInvalidError(UnauthenticatedError):
    code = "sso_token_invalid"
    title = "ID token rejected"


class SsoEmailUnverifiedError(PermissionDeniedError):
    code = "sso_email_unverified"
    title = "Email address not verified"


@dataclass(frozen=True)
class NetworkPolicy:
    """Where the relying party may connect to reach identity providers."""

    # Loopback and private networks: a test provider on 127.0.0.1, an on-premises IdP.
    allow_private_addresses: bool
    # Plain http is for development only.
    require_https: bool


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def non_public_kind(address: IPAddress) -> str | None:
    """What keeps a server-side request away from `address`, like "a loopback address"; None if public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 is 127.0.0.1 on a dual-stack socket.
        address = address.ipv4_mapped
    # In order: the first that applies is the one named.
    kinds = {
        "an unspecified address": address.is_unspecified,
        "a loopback address": address.is_loopback,
        "a link-local address": address.is_link_local,
        "a multicast address": address.is_multicast,
        "a reserved address": address.is_reserved,
        "a private address": address.is_private,
        "not a public address": not address.is_global,
    }
    return next((kind for kind, applies in kinds.items() if applies), None)


def _names(host: str, address: IPAddress) -> bool:
    """Whether `host` is `address` written out, rather than a name that resolved to it."""
    try:
        return ipaddress.ip_address(host) == address
    except ValueError:
        return False


async def checked_address(host: str, *, allow_private_addresses: bool) -> str:
    """The address to connect to for `host`, once every address it resolves to is public.

    Raises `SsoProviderAddressRefusedError`, or OSError when the name does not resolve
    (a name that cannot even be encoded, like `a..b`, included). Connecting to the address
    checked here, not to the name, leaves a DNS answer no chance to change in between.
    """
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except ValueError as error:
        # The IDNA codec's UnicodeError (an empty or 64-character label, say) is a ValueError:
        # such a name resolves no better than an unknown one, and callers handle OSError.
        raise socket.gaierror(socket.EAI_NONAME, f"not a name that can be looked up: {error}") from None
    addresses = [ipaddress.ip_address(sockaddr[0]) for *_, sockaddr in found]
    if not allow_private_addresses:
        for address in sorted(set(addresses), key=lambda address: (address.version, int(address))):
            kind = non_public_kind(address)
            if kind is not None:
                where = f"{host} is" if _names(host, address) else f"{host} resolves to {address},"
                raise SsoProviderAddressRefusedError(f"{where} {kind}")
    return str(addresses[0])


class _CheckedTransport(httpx.AsyncHTTPTransport):
    """Sends each request to the checked address of its host, keeping the name for Host and TLS."""

    def __init__(self, policy: NetworkPolicy) -> None:
        super().__init__()
        self._policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if self._policy.require_https and url.scheme != "https":
            raise SsoProviderAddressRefusedError(f"{url} is not an https URL")
        try:
            # Reading it decodes an `xn--` label, which may not be valid IDNA.
            host = url.host
        except ValueError:
            name = url.raw_host.decode("ascii", "replace")
            raise httpx.ConnectError(f"{name} is not a valid host name", request=request) from None
        try:
            address = await checked_address(
                host, allow_private_addresses=self._policy.allow_private_addresses
            )
        except OSError as error:
            raise httpx.ConnectError(f"{host} does not resolve ({error})", request=request) from None
        # The Host header was set from the name already; SNI and the certificate check use it too.
        request.url = url.copy_with(host=address)
        request.extensions = {**request.extensions, "sni_hostname": host}
        return await super().handle_async_request(request)


def provider_client(policy: NetworkPolicy) -> httpx.AsyncClient:
    """An HTTP client for identity providers: checked addresses only, and no redirects."""
    # A redirect could lead anywhere, and providers answer these requests directly.
    return httpx.AsyncClient(
        transport=_CheckedTransport(policy), timeout=HTTP_TIMEOUT, follow_redirects=False
    )


@dataclass(frozen=True)
class Identity:
    """Who the provider vouches for: its subject, and an email address it verified."""

    subject: str
    email: str
    full_name: str


@dataclass
class _ProviderEntry:
    metadata: dict[str, Any]
    fetched_at: float
    keys: KeySet | None = None


@dataclass
class ProviderCache:
    """Discovery documents and key sets of OIDC providers, kept for `lifetime` seconds."""

    lifetime: float = 300.0
    _entries: dict[str, _ProviderEntry] = field(default_factory=dict)

    async def metadata(self, client: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
        """The provider's discovery document, checked to belong to `issuer`."""
        entry = self._entries.get(issuer)
        if entry is None or time.monotonic() - entry.fetched_at > self.lifetime:
            url = issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await _fetch_json(client, url, "discovery document")
            required = ("authorization_endpoint", "token_endpoint", "jwks_uri")
            missing = [name for name in required if not isinstance(document.get(name), str)]
            # OpenID Connect Discovery 4.3: the document must name exactly the issuer asked for.
            if document.get("issuer") != issuer or missing:
                problem = (
                    f"lacks {', '.join(missing)}" if missing else f"names issuer {document.get('issuer')!r}"
                )
                raise SsoProviderUnavailableError(
                    f"the discovery document at {url} {problem}; a store admin should check the issuer URL"
                )
            entry = self._entries[issuer] = _ProviderEntry(document, time.monotonic())
        return entry.metadata

    async def keys(self, client: httpx.AsyncClient, issuer: str, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys; `refresh` fetches them again (providers rotate keys)."""
        metadata = await self.metadata(client, issuer)
        entry = self._entries[issuer]
        if entry.keys is None or refresh:
            document = await _fetch_json(client, metadata["jwks_uri"], "signing keys")
            try:
                entry.keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError):
                raise SsoProviderUnavailableError(
                    f"the signing keys at {metadata['jwks_uri']} are not a valid JWK set"
                ) from None
        return entry.keys

    def clear(self) -> None:
        """Forget every provider."""
        self._entries.clear()


providers = ProviderCache()


async def _fetch_json(
    client: httpx.AsyncClient, url: str, what: str, *, bearer: str | None = None
) -> dict[str, Any]:
    headers = {"Accept": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        response = await client.get(url, headers=headers)
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise SsoProviderUnavailableError(
            f"could not read the identity provider's {what} at {url} ({type(error).__name__}); "
            "try again later, or ask a store admin to check the issuer URL"
        ) from None
    if not isinstance(document, dict):
        raise SsoProviderUnavailableError(f"the identity provider's {what} at {url} is not a JSON object")
    return document


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def identify(
    client: httpx.AsyncClient,
    *,
    issuer: str,
    client_id: str,
    client_secret: str,
    code: str,
    code_verifier: str,
    nonce: str,
    redirect_uri: str,
) -> Identity:
    """Exchange the code, check the ID token, and return whom the provider vouches for."""
    metadata = await providers.metadata(client, issuer)
    tokens = await _exchange_code(
        client, metadata, client_id, client_secret, code, code_verifier, redirect_uri
    )
    claims = await _validated_id_token(client, issuer, client_id, tokens, nonce)
    if "email" not in claims:
        # Some providers put the email in the userinfo only.
        claims |= await _userinfo(client, metadata, tokens, claims["sub"])
    name = claims.get("name")
    return Identity(claims["sub"], _verified_email(claims), name[:200] if isinstance(name, str) else "")


async def _exchange_code(
    client: httpx.AsyncClient,
    metadata: dict[str, Any],
    client_id: str,
    client_secret: str,
    code: str,
    code_verifier: str,
    redirect_uri: str,
) -> dict[str, Any]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    # client_secret_basic is the default when the provider does not say (RFC 8414).
    methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    basic = "client_secret_basic" in methods
    if not basic:
        form |= {"client_id": client_id, "client_secret": client_secret}
    auth = httpx.BasicAuth(client_id, client_secret) if basic else None
    try:
        response = await client.post(
            metadata["token_endpoint"],
            data=form,
            auth=auth or httpx.USE_CLIENT_DEFAULT,
            headers={"Accept": "application/json"},
        )
    except httpx.HTTPError as error:
        raise SsoProviderUnavailableError(
            f"the identity provider's token endpoint did not answer ({type(error).__name__}); try again later"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 500:
        raise SsoProviderUnavailableError("the identity provider's token endpoint failed; try again later")
    if response.status_code != 200 or not isinstance(body, dict):
        reason = body.get("error") if isinstance(body, dict) else None
        raise SsoCodeRejectedError(
            f"the identity provider refused the sign-in code ({reason or response.status_code}); "
            "start the sign-in again, or ask a store admin to check the client id and secret"
        )
    return body


def _token_invalid(reason: str) -> SsoTokenInvalidError:
    return SsoTokenInvalidError(
        f"the identity provider's ID token was rejected ({reason}); start the sign-in again, "
        "or ask a store admin to check the SSO settings"
    )


async def _validated_id_token(
    client: httpx.AsyncClient, issuer: str, client_id: str, tokens: dict[str, Any], nonce: str
) -> dict[str, Any]:
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise _token_invalid("the token response holds no id_token")
    try:
        try:
            decoded = jwt.decode(
                id_token, await providers.keys(client, issuer), algorithms=SIGNING_ALGORITHMS
            )
        except InvalidKeyIdError:
            # The provider may have rotated its keys since they were cached.
            keys = await providers.keys(client, issuer, refresh=True)
            decoded = jwt.decode(id_token, keys, algorithms=SIGNING_ALGORITHMS)
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            options={
                "iss": {"essential": True, "value": issuer},
                "aud": {"essential": True, "value": client_id},
            },
            # With a nonce in params, a token without one (or another one) fails.
            params={"nonce": nonce, "client_id": client_id, "access_token": tokens.get("access_token")},
        )
        claims.validate(now=int(time.time()), leeway=CLOCK_LEEWAY_SECONDS)
    except JoseError as error:
        raise _token_invalid(str(error).rstrip(": ")) from None
    return dict(claims)


async def _userinfo(
    client: httpx.AsyncClient, metadata: dict[str, Any], tokens: dict[str, Any], subject: str
) -> dict[str, Any]:
    endpoint, access_token = metadata.get("userinfo_endpoint"), tokens.get("access_token")
    if not isinstance(endpoint, str) or not isinstance(access_token, str):
        return {}
    info = await _fetch_json(client, endpoint, "userinfo", bearer=access_token)
    # OpenID Connect Core 5.3.2: the userinfo of another subject must not be used.
    if info.get("sub") != subject:
        raise _token_invalid("the userinfo names another subject than the ID token")
    # Both always, even when absent: an email_verified left from the ID token would vouch
    # for an email it never named.
    profile = {"email": info.get("email"), "email_verified": info.get("email_verified")}
    return profile | ({"name": info["name"]} if "name" in info else {})


def _verified_email(claims: dict[str, Any]) -> str:
    email, verified = claims.get("email"), claims.get("email_verified")
    unverified = SsoEmailUnverifiedError(
        "your identity provider did not confirm that you own this email address; "
        "ask your IT team to verify it, then sign in again"
    )
    # Some providers send the boolean as a string.
    if not isinstance(email, str) or verified not in (True, "true"):
        raise unverified
    try:
        return normalize_email(email)
    except ValidationFailedError:
        raise unverified from None
