"""A local fake of Stripe's HTTP API, for the real Stripe SDK to talk to in tests.

The core knows what every Stripe endpoint shares: secret-key authentication, form
bodies with bracketed keys (`items[0][price]=…`), `Idempotency-Key` replay (the same key
and body answer the first response again as it was sent, a snapshot: a refund Stripe
failed since is replayed `succeeded`; another body is a 400 like Stripe's), error bodies,
object ids and a record of every request. What each resource does lives beside it
(`payments.py`, `billing.py`): a module registers handlers with `@route(method, path)`
and keeps its objects in `FakeStripe.objects`.

Switches make it misbehave the ways the real service can: `unreachable` answers 503 to
everything (as an outage behind a proxy would), `fail_next[path]` makes the next request
to a path fail with a given error.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from tests.support.loopback import serve_on_loopback

SECRET_KEY = "sk_test_fake_0123456789abcdef"

Handler = Callable[["FakeStripe", "StripeRequest"], tuple[int, dict[str, Any]]]
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    """Register a handler; `{name}` in the path matches one segment, passed in `request.path_params`."""
    pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")

    def register(handler: Handler) -> Handler:
        _ROUTES.append((method.upper(), pattern, handler))
        return handler

    return register


class StripeError(Exception):
    """Raised by a handler: answered as Stripe's error body with this status."""

    def __init__(
        self, status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": {"type": type_, "message": message}}
        if code is not None:
            self.body["error"]["code"] = code


@dataclass(frozen=True)
class StripeRequest:
    """One request as the fake received it."""

    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]
    path_params: dict[str, str] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")

    @property
    def stripe_account(self) -> str | None:
        return self.headers.get("stripe-account")


@dataclass
class FakeStripe:
    """The fake's state: objects by kind and id, every request, and the misbehaviour switches."""

    base_url: str
    secret_key: str = SECRET_KEY
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[StripeRequest] = field(default_factory=list)
    unreachable: bool = False
    fail_next: dict[str, StripeError] = field(default_factory=dict)
    _replies: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Forget every object and request, and behave again."""
        with self._lock:
            self.objects.clear()
            self.requests.clear()
            self._replies.clear()
            self.fail_next.clear()
            self.unreachable = False

    def new_id(self, prefix: str) -> str:
        """An id shaped like Stripe's (`cus_…`, `pi_…`)."""
        return f"{prefix}_{secrets.token_hex(12)}"

    def store(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Keep an object under its kind and id; returns it."""
        self.objects.setdefault(kind, {})[obj["id"]] = obj
        return obj

    def get(self, kind: str, object_id: str) -> dict[str, Any]:
        """An object, or Stripe's 404 `resource_missing`."""
        found = self.objects.get(kind, {}).get(object_id)
        if found is None:
            raise StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing")
        return found

    def requests_to(self, method: str, path_prefix: str) -> list[StripeRequest]:
        """The requests received for one method under a path prefix, oldest first."""
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes, query: str
    ) -> tuple[int, dict[str, Any]]:
        """Answer one request the way Stripe would."""
        if self.unreachable:
            return 503, {"error": {"type": "api_error", "message": "The fake is switched off."}}
        if headers.get("authorization") != f"Bearer {self.secret_key}":
            return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided."}}
        params = decode_form(body.decode() if method != "GET" else query)
        with self._lock:
            for route_method, pattern, handler in _ROUTES:
                match = pattern.match(path)
                if route_method != method or match is None:
                    continue
                request = StripeRequest(method, path, params, headers, match.groupdict())
                self.requests.append(request)
                key = request.idempotency_key
                fingerprint = json.dumps([method, path, params], sort_keys=True)
                if key is not None and method == "POST" and key in self._replies:
                    first_fingerprint, status, reply = self._replies[key]
                    if first_fingerprint != fingerprint:
                        return 400, {
                            "error": {
                                "type": "idempotency_error",
                                "message": "Keys for idempotent requests can only be used with the same"
                                " parameters they were first used with.",
                            }
                        }
                    return status, copy.deepcopy(reply)
                failure = self.fail_next.pop(path, None)
                try:
                    if failure is not None:
                        raise failure
                    status, reply = handler(self, request)
                except StripeError as error:
                    status, reply = error.status, error.body
                if key is not None and method == "POST":
                    # Stripe remembers the response it sent, not the object as it stands later.
                    self._replies[key] = (fingerprint, status, copy.deepcopy(reply))
                return status, reply
        return 404, {
            "error": {
                "type": "invalid_request_error",
                "message": f"Unrecognized request URL ({method}: {path}).",
            }
        }

    def app(self) -> Callable[[dict[str, Any], Any, Any], Awaitable[None]]:
        """The raw ASGI app serving this fake."""

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
            status, reply = self.handle(
                scope["method"], scope["path"], headers, body, scope.get("query_string", b"").decode()
            )
            payload = json.dumps(reply).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"request-id", b"req_fake")],
                }
            )
            await send({"type": "http.response.body", "body": payload})

        return asgi


def decode_form(encoded: str) -> dict[str, Any]:
    """Stripe's form encoding back into nested values: `a[b][0][c]=1` → {"a": {"b": [{"c": "1"}]}}."""
    root: dict[str, Any] = {}
    for name, value in parse_qsl(encoded, keep_blank_values=True):
        keys = [name.split("[", 1)[0], *re.findall(r"\[([^\]]*)\]", name)]
        node: Any = root
        for position, key in enumerate(keys):
            last = position == len(keys) - 1
            following: Any = value if last else ({} if not keys[position + 1].isdigit() else [])
            if isinstance(node, list):
                index = int(key)
                while len(node) <= index:
                    node.append(None)
                if node[index] is None or last:
                    node[index] = following
                node = node[index]
            else:
                if key not in node or last:
                    node[key] = following
                node = node[key]
    return root


def now() -> int:
    """Seconds since the epoch, as Stripe stamps objects."""
    return int(time.time())


def sign_webhook(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header for a payload, as Stripe signs webhooks (`t=…,v1=HMAC-SHA256`)."""
    stamp = now() if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def event(kind: str, obj: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """A webhook event envelope around an object, as Stripe sends one."""
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "type": kind,
        "created": now(),
        "livemode": False,
        "api_version": "2025-01-01",
        "data": {"object": obj},
    }


@contextlib.contextmanager
def serve_fake_stripe() -> Iterator[FakeStripe]:
    """Run the fake on 127.0.0.1 for the block; point `STRIPE_API_BASE` (or the client) at `fake.base_url`."""
    # Importing the resource modules registers their routes.
    from tests.support.fake_stripe import billing, payments  # noqa: F401

    fakes: list[FakeStripe] = []

    def build(base_url: str) -> Callable[[dict[str, Any], Any, Any], Awaitable[None]]:
        fakes.append(FakeStripe(base_url))
        return fakes[0].app()

    with serve_on_loopback(build):
        yield fakes[0]
