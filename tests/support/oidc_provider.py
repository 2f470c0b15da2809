"""A small but real OpenID Connect provider for tests, served on loopback by uvicorn.

It knows one client and auto-approves one test user: /authorize redirects straight back
with a code; /token checks the client's secret (basic or post) and the PKCE verifier and
answers with an RS256 ID token; /userinfo answers for the access token. Attributes make
it misbehave the ways a broken or hostile provider would.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from litestar import Litestar, Request, Response, get, post
from litestar.response import Redirect

from tests.support.loopback import serve_on_loopback

CLIENT_ID = "ordersmith-test"
CLIENT_SECRET = "test-client-secret-0123456789"


@dataclass
class TestUser:
    """Whom the provider vouches for."""

    __test__ = False  # not a pytest test class

    sub: str = "idp-user-1"
    email: str = "ada@example.com"
    # None: the claim is left out.
    email_verified: bool | str | None = True
    name: str = "Ada Lovelace"


@dataclass
class _Grant:
    redirect_uri: str
    nonce: str | None
    code_challenge: str
    user: TestUser


@dataclass
class OidcProvider:
    """The provider's state; `reset()` puts every misbehaviour flag back."""

    issuer: str
    redirect_uri: str
    user: TestUser = field(default_factory=TestUser)
    # Claims to force into the next ID tokens, e.g. {"nonce": "other"} or {"aud": "someone-else"}.
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    # Sign ID tokens with a key that is not in the JWKS (same kid: only the signature is wrong).
    sign_with_foreign_key: bool = False
    # False: email, email_verified and name come only from /userinfo.
    claims_in_id_token: bool = True
    # Set: /authorize answers with this OAuth error instead of a code.
    deny_with: str | None = None
    # Set: the discovery document answers with a redirect to this URL.
    discovery_redirect: str | None = None
    auth_methods: list[str] = field(default_factory=lambda: ["client_secret_basic", "client_secret_post"])
    # How each token request authenticated: "client_secret_basic" or "client_secret_post".
    token_requests: list[str] = field(default_factory=list)
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _access_tokens: dict[str, TestUser] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})
        self.foreign_key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "alg": "RS256"})

    def reset(self) -> None:
        """Back to a well-behaved provider with the default user."""
        self.user = TestUser()
        self.id_token_overrides = {}
        self.sign_with_foreign_key = False
        self.claims_in_id_token = True
        self.deny_with = None
        self.discovery_redirect = None
        self.auth_methods = ["client_secret_basic", "client_secret_post"]
        self.token_requests.clear()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": self.auth_methods,
        }

    def authorize(self, query: dict[str, str]) -> Response[Any]:
        """Auto-approve the test user and send the browser back with a code (or an error)."""
        if query.get("client_id") != CLIENT_ID or query.get("redirect_uri") != self.redirect_uri:
            return Response({"error": "invalid_request"}, status_code=400)
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return Response({"error": "invalid_request"}, status_code=400)
        if self.deny_with:
            answer = {"error": self.deny_with, "state": query.get("state", "")}
        else:
            code = secrets.token_urlsafe(16)
            self._codes[code] = _Grant(
                self.redirect_uri, query.get("nonce"), query.get("code_challenge", ""), self.user
            )
            answer = {"code": code, "state": query.get("state", "")}
        return Redirect(f"{self.redirect_uri}?{urlencode(answer)}", status_code=302)

    def token(self, form: dict[str, str], authorization: str) -> Response[Any]:
        """Exchange a code for tokens after checking the client and the PKCE verifier."""
        if authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            method = "client_secret_basic"
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            method = "client_secret_post"
        self.token_requests.append(method)
        if client_id != CLIENT_ID or secret != CLIENT_SECRET or method not in self.auth_methods:
            return Response({"error": "invalid_client"}, status_code=401)
        grant = self._codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != grant.redirect_uri
            or challenge.decode() != grant.code_challenge
        ):
            return Response({"error": "invalid_grant"}, status_code=400)
        access_token = secrets.token_urlsafe(24)
        self._access_tokens[access_token] = grant.user
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.user.sub,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        if self.claims_in_id_token:
            claims |= self._profile(grant.user)
        claims |= self.id_token_overrides
        key = self.foreign_key if self.sign_with_foreign_key else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, key)
        body = {"access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}
        return Response(body, headers={"Cache-Control": "no-store"})

    def userinfo(self, authorization: str) -> Response[Any]:
        """The profile of the user an access token was issued for."""
        user = self._access_tokens.get(authorization.removeprefix("Bearer "))
        if user is None:
            return Response({"error": "invalid_token"}, status_code=401)
        return Response({"sub": user.sub, **self._profile(user)})

    @staticmethod
    def _profile(user: TestUser) -> dict[str, Any]:
        profile = {"email": user.email, "email_verified": user.email_verified, "name": user.name}
        return {name: value for name, value in profile.items() if value is not None}

    def app(self) -> Litestar:
        """The provider's HTTP endpoints."""

        @get("/.well-known/openid-configuration", sync_to_thread=False)
        def discovery() -> Response[Any]:
            if self.discovery_redirect is not None:
                return Redirect(self.discovery_redirect, status_code=302)
            return Response(self.discovery())

        @get("/jwks", sync_to_thread=False)
        def jwks() -> dict[str, Any]:
            return dict(KeySet([self.key]).as_dict(private=False))

        @get("/authorize", sync_to_thread=False)
        def authorize(request: Request[Any, Any, Any]) -> Response[Any]:
            return self.authorize(dict(request.query_params))

        @post("/token", status_code=200)
        async def token(request: Request[Any, Any, Any]) -> Response[Any]:
            form = {key: str(value) for key, value in (await request.form()).items()}
            return self.token(form, request.headers.get("authorization", ""))

        @get("/userinfo", sync_to_thread=False)
        def userinfo(request: Request[Any, Any, Any]) -> Response[Any]:
            return self.userinfo(request.headers.get("authorization", ""))

        return Litestar(
            [discovery, jwks, authorize, token, userinfo], openapi_config=None, logging_config=None
        )


@contextlib.contextmanager
def serve_oidc_provider(redirect_uri: str) -> Iterator[OidcProvider]:
    """Run a provider on 127.0.0.1 (a free port) in a background thread for the block."""
    providers: list[OidcProvider] = []

    def build(base_url: str) -> Litestar:
        providers.append(OidcProvider(issuer=base_url, redirect_uri=redirect_uri))
        return providers[0].app()

    with serve_on_loopback(build):
        yield providers[0]
