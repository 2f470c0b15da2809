"""Input holding a NUL character (U+0000) is a 422 naming where it is, never a 500 from the database.

PostgreSQL's text and jsonb cannot store U+0000, so a NUL that reached a query failed
the request with an internal error. `NulCharacterMiddleware` runs for every route, after
routing (path parameters have names): a query or path parameter, or a string or key of a
JSON body, that holds a NUL is a 422 `validation_failed` naming the parameter or the body
field (`shipping_address.line1`, `lines[0].sku`, `attributes.color`).

The common case costs a few byte searches: a query string carries a NUL as `%00`, a
path parameter as itself once decoded, and JSON only as the escape `\\u0000` (a raw NUL
is malformed JSON, refused as such by the body decoder). The body is parsed and walked
only when the escape is there, and the walk, not the search, decides: `\\\\u0000` is a
backslash followed by text.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from ordersmith.api.problems import INVALID_FIELDS_DETAIL, child_path, item_path
from ordersmith.platform.errors import FieldError, ValidationFailedError

NUL_MESSAGE = "must not contain the NUL character (\\u0000); remove it"
# A route whose body is another system's signed document (a Stripe webhook) sets this
# in its `opt`: its body is taken as sent, and its handler stores none of its text.
SIGNED_BODY = "signed_body"
# Past this many, more names would only make the answer longer: the cure is the same.
MAX_REPORTED = 20
_NUL = "\x00"
_JSON_NUL = b"\\u0000"
# Bytes of a chunk that, with the next chunk's first ones, may hold the escape.
_ESCAPE_TAIL = len(_JSON_NUL) - 1
_BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NulCharacterMiddleware:
    """Refuses a request whose parameters or JSON body hold a NUL character (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            query = scope["query_string"]
            if (b"%00" in query or b"\x00" in query or _NUL in scope["path"]) and (
                errors := _in_parameters(query, scope["path_params"])
            ):
                raise ValidationFailedError(INVALID_FIELDS_DETAIL, errors=errors)
            handler = scope.get("route_handler")
            signed = handler is not None and handler.opt.get(SIGNED_BODY, False)
            if scope["method"] not in _BODILESS_METHODS and not signed:
                receive = _checking_body(receive)
        await self.app(scope, receive, send)


def _checking_body(receive: Receive) -> Receive:
    """`receive` that refuses, as its last chunk arrives, a body holding a NUL.

    The check rides on the app's own reading of the body: it happens after the guards,
    within the route's body size limit, and only for a route that reads its body.
    """
    chunks: list[bytes] = []
    tail = b""
    seen = False

    async def checked_receive() -> ReceiveMessage:
        nonlocal tail, seen
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            chunks.append(chunk)
            # The escape may straddle two chunks.
            seen = seen or _JSON_NUL in chunk or (tail != b"" and _JSON_NUL in tail + chunk[:_ESCAPE_TAIL])
            if message.get("more_body", False):
                tail = (tail + chunk[-_ESCAPE_TAIL:])[-_ESCAPE_TAIL:]
            elif seen and (errors := _in_body(b"".join(chunks))):
                raise ValidationFailedError(INVALID_FIELDS_DETAIL, errors=errors)
        return message

    return checked_receive


def _in_parameters(query: bytes, path_params: dict[str, Any]) -> list[FieldError]:
    names = [
        name.replace(_NUL, "\\u0000")
        for name, value in parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True)
        if _NUL in name or _NUL in value
    ]
    names += [name for name, value in path_params.items() if _NUL in str(value)]
    return [FieldError(name, NUL_MESSAGE) for name in dict.fromkeys(names)]


def _in_body(body: bytes) -> list[FieldError]:
    """The body's strings and keys that hold a NUL, in document order."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return []  # not JSON: the body decoder refuses it with its own message
    found: list[FieldError] = []
    # Depth first without recursion: a body nested a thousand deep must not crash the walk.
    pending: list[tuple[str, Any]] = [("", document)]
    while pending and len(found) < MAX_REPORTED:
        path, value = pending.pop()
        if isinstance(value, str):
            if _NUL in value:
                found.append(FieldError(path or "body", NUL_MESSAGE))
        elif isinstance(value, dict):
            # A key holding a NUL is reported as itself (it is a string with one), its value unseen.
            children = [(child_path(path, key), key if _NUL in key else item) for key, item in value.items()]
            pending.extend(reversed(children))
        elif isinstance(value, list):
            pending.extend((item_path(path, index), item) for index, item in reversed(list(enumerate(value))))
    return found
