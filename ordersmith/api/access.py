"""Who may call a route: every route declares it, and the app refuses to start otherwise.

A route's `opt` holds one of:
- `PUBLIC`: anyone (sign-up, sign-in, health, the API description);
- `AUTHENTICATED`: any signed-in user or API key of a tenant;
- `requires(permission)`: a tenant principal holding that permission;
- `staff(*roles)`: a vendor staff member with one of those roles.
The app-wide guard in `api/auth.py` enforces what is declared.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.routes import HTTPRoute

from ordersmith.platform.identity.permissions import Permission

PUBLIC: dict[str, Any] = {"access": "public"}
AUTHENTICATED: dict[str, Any] = {"access": "authenticated"}
KNOWN_ACCESS = frozenset({"public", "authenticated", "permission", "staff"})
# Litestar's own routes serving the API description: public, and not ours to annotate.
OPENAPI_PATH = "/api/schema"


def requires(permission: Permission) -> dict[str, Any]:
    """Declare that a route needs a tenant principal holding `permission`."""
    return {"access": "permission", "permission": permission.value}


def staff(*roles: str) -> dict[str, Any]:
    """Declare that a route is for vendor staff with one of `roles`."""
    return {"access": "staff", "staff_roles": frozenset(roles)}


class UndeclaredAccessError(RuntimeError):
    """A route does not say who may call it."""


def declared_access(app: Litestar) -> dict[str, dict[str, Any]]:
    """Every route's access declaration, keyed by "METHODS path"."""
    declared: dict[str, dict[str, Any]] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith(OPENAPI_PATH):
            continue
        for handler in route.route_handlers:
            if handler.http_methods == {"OPTIONS"}:
                continue  # Litestar answers CORS preflight itself
            declared[f"{'/'.join(sorted(handler.http_methods))} {route.path}"] = dict(handler.opt)
    return declared


def check_access_declared(app: Litestar) -> None:
    """Raise if any route handler lacks a known `access` declaration in its `opt`."""
    missing = [route for route, opt in declared_access(app).items() if opt.get("access") not in KNOWN_ACCESS]
    if missing:
        raise UndeclaredAccessError("routes without an access declaration: " + ", ".join(missing))
