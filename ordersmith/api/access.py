"""Who may call a route: every route declares it, and the app refuses to start otherwise.

Today there is one level, `public`; identity adds authenticated levels and guards.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.routes import HTTPRoute

PUBLIC = {"access": "public"}
KNOWN_ACCESS = frozenset({"public"})
# Litestar's own documentation routes are public by nature.
_FRAMEWORK_PATH_PREFIX = "/api/schema"


class UndeclaredAccessError(RuntimeError):
    """A route does not say who may call it."""


def check_access_declared(app: Litestar) -> None:
    """Raise if any route handler lacks a known `access` declaration in its `opt`."""
    missing = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith(_FRAMEWORK_PATH_PREFIX):
            continue
        for handler in route.route_handlers:
            if handler.http_methods == {"OPTIONS"}:
                continue  # Litestar answers CORS preflight itself
            access: Any = handler.opt.get("access")
            if access not in KNOWN_ACCESS:
                missing.append(f"{'/'.join(sorted(handler.http_methods))} {route.path}")
    if missing:
        raise UndeclaredAccessError("routes without an access declaration: " + ", ".join(missing))
