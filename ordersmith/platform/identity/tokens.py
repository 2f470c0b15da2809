"""Access tokens (JWT, HS256, signed with joserfc) and opaque secrets (refresh, invitation, reset)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jwt import JWTClaimsRegistry

ACCESS_TOKEN_LIFETIME = dt.timedelta(minutes=15)
ISSUER = "ordersmith"
# Tenant users and vendor staff are separate realms: a token of one is worthless in the other.
TENANT_AUDIENCE = "ordersmith:tenant"
STAFF_AUDIENCE = "ordersmith:staff"
_ALGORITHM = "HS256"


class InvalidTokenError(Exception):
    """The token is malformed, tampered with, expired or for another realm."""


def derived_key(secret_key: str, purpose: str) -> bytes:
    """A key for one purpose only, derived from SECRET_KEY."""
    # One SECRET_KEY, a separate key per purpose: a leak of one derived key exposes nothing else.
    return hmac.new(secret_key.encode(), f"ordersmith/{purpose}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class AccessClaims:
    """What an access token says."""

    subject: uuid.UUID
    tenant_id: uuid.UUID | None
    role: str
    token_id: str
    audience: str
    expires_at: dt.datetime


class TokenSigner:
    """Issues and checks access tokens with a key derived from SECRET_KEY."""

    def __init__(self, secret_key: str) -> None:
        self._key = OctKey.import_key(derived_key(secret_key, "access-token"))
        self._csrf_key = derived_key(secret_key, "csrf")

    def issue(
        self,
        *,
        subject: uuid.UUID,
        tenant_id: uuid.UUID | None,
        role: str,
        audience: str = TENANT_AUDIENCE,
        lifetime: dt.timedelta = ACCESS_TOKEN_LIFETIME,
        now: dt.datetime | None = None,
    ) -> tuple[str, AccessClaims]:
        """A signed access token and its claims."""
        issued = now or dt.datetime.now(dt.UTC)
        expires = issued + lifetime
        token_id = secrets.token_urlsafe(12)
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "sub": str(subject),
            "role": role,
            "iat": int(issued.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": token_id,
        }
        if tenant_id is not None:
            claims["tid"] = str(tenant_id)
        token = jwt.encode({"alg": _ALGORITHM, "typ": "JWT"}, claims, self._key)
        parsed = AccessClaims(subject, tenant_id, role, token_id, audience, expires)
        return token, parsed

    def verify(
        self, token: str, *, audience: str = TENANT_AUDIENCE, now: dt.datetime | None = None
    ) -> AccessClaims:
        """The claims of a valid token; `InvalidTokenError` otherwise."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=[_ALGORITHM])
            moment = int((now or dt.datetime.now(dt.UTC)).timestamp())
            registry = JWTClaimsRegistry(
                now=moment,
                leeway=5,
                iss={"essential": True, "value": ISSUER},
                aud={"essential": True, "value": audience},
                sub={"essential": True},
                exp={"essential": True},
                jti={"essential": True},
            )
            registry.validate(decoded.claims)
            claims = decoded.claims
            tenant = uuid.UUID(claims["tid"]) if "tid" in claims else None
            return AccessClaims(
                subject=uuid.UUID(claims["sub"]),
                tenant_id=tenant,
                role=str(claims.get("role", "")),
                token_id=str(claims["jti"]),
                audience=audience,
                expires_at=dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC),
            )
        except (JoseError, ValueError, KeyError, TypeError) as error:
            raise InvalidTokenError(str(error) or type(error).__name__) from None

    def csrf_token(self, token_id: str) -> str:
        """The CSRF token bound to one cookie session (double submit, signed)."""
        digest = hmac.new(self._csrf_key, token_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def new_secret(prefix: str) -> str:
    """An opaque, unguessable secret (256 bits) with a readable prefix."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def secret_hash(secret: str) -> bytes:
    """How a high-entropy secret is stored: SHA-256 is enough when it cannot be guessed."""
    return hashlib.sha256(secret.encode()).digest()
