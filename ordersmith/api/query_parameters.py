"""A query parameter the route does not take is a 422 naming it, not silently ignored.

Litestar hands a handler the query parameters it declares and drops the rest, so a typo
(`?stauts=placed`) or a filter the list does not have (`?page=2`) answered as if it had
not been sent: every order instead of the placed ones, the first page forever. At
start-up, `learn_query_parameters` reads from each route the names its handler and its
dependencies take (Litestar's own view of the route's parameters, aliases included);
`unknown_query_parameters` then names those of a request that are not among them, and
those given more than once where the route takes one value (`?status=a&status=b` is a
list; `?sku=A&sku=B` would otherwise filter by B alone).

A route that receives another system's query, whose names are not ours to choose (the
identity provider's return to `/auth/sso/callback`), sets `ANY_QUERY` in its `opt`.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qsl

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.handlers import BaseRouteHandler
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from ordersmith.api.problems import INVALID_FIELDS_DETAIL
from ordersmith.platform.errors import FieldError, ValidationFailedError

ANY_QUERY = "any_query"
# Past this many, more names would only make the answer longer: the cure is the same.
MAX_REPORTED = 20

# Where a handler's `opt` keeps the names it takes (the handler Litestar routes to, so the app's
# own), and those of them that take one value.
_TAKEN = "query_parameters"
_SINGLE = "single_query_parameters"


def learn_query_parameters(app: Litestar) -> None:
    """Remember, for each route handler of the app, the query parameters it takes."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler, kwargs_model in route.route_handler_map.values():
            if not handler.opt.get(ANY_QUERY, False):
                expected = kwargs_model.expected_query_params
                handler.opt[_TAKEN] = frozenset(p.field_alias for p in expected)
                handler.opt[_SINGLE] = frozenset(p.field_alias for p in expected if not p.is_sequence)


def unknown_query_parameters(handler: BaseRouteHandler, query: bytes) -> list[FieldError]:
    """The parameters of a query string that its route does not take, or takes once, one error each."""
    taken: frozenset[str] | None = handler.opt.get(_TAKEN)
    if taken is None:
        return []
    single: frozenset[str] = handler.opt.get(_SINGLE, frozenset())
    counts = Counter(name for name, _ in parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True))
    message = (
        f"is not a parameter of this request; it takes {', '.join(sorted(taken))}"
        if taken
        else "is not a parameter of this request, which takes none; remove it"
    )
    errors = [
        FieldError(name, message)
        if name not in taken
        else FieldError(name, f"is given {count} times; it takes one value, so give it once")
        for name, count in counts.items()
        if name not in taken or (name in single and count > 1)
    ]
    return errors[:MAX_REPORTED]


class QueryParameterMiddleware:
    """Refuses a request whose query string names a parameter its route does not take."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == ScopeType.HTTP
            and scope["query_string"]
            and (handler := scope.get("route_handler")) is not None
            and (errors := unknown_query_parameters(handler, scope["query_string"]))
        ):
            raise ValidationFailedError(INVALID_FIELDS_DETAIL, errors=errors)
        await self.app(scope, receive, send)
