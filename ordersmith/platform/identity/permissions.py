"""Roles and permissions, defined in one place."""

from __future__ import annotations

import enum

from ordersmith.platform.errors import PermissionDeniedError


class Permission(enum.StrEnum):
    # See and work orders.
    ORDERS_READ = "orders.read"
    ORDERS_WRITE = "orders.write"
    # Give money back to customers.
    ORDERS_REFUND = "orders.refund"
    # Catalog, customers and stock.
    CATALOG_READ = "catalog.read"
    CATALOG_WRITE = "catalog.write"
    CUSTOMERS_READ = "customers.read"
    CUSTOMERS_WRITE = "customers.write"
    INVENTORY_READ = "inventory.read"
    INVENTORY_WRITE = "inventory.write"
    REPORTS_READ = "reports.read"
    # Invite people, change roles, deactivate; create API keys.
    USERS_MANAGE = "users.manage"
    API_KEYS_MANAGE = "api_keys.manage"
    # See the plan, its entitlements and the plan comparison (owners and admins).
    BILLING_READ = "billing.read"
    BILLING_MANAGE = "billing.manage"
    DATA_EXPORT = "data.export"
    DATA_IMPORT = "data.import"
    # Store profile and other tenant settings (reading SSO's too).
    SETTINGS_READ = "settings.read"
    SETTINGS_MANAGE = "settings.manage"
    # Set or remove the store's single sign-on provider: owners only, signed in (not a key).
    # Whoever chooses the provider chooses who it vouches for, the owner included.
    SSO_MANAGE = "sso.manage"
    AUDIT_READ = "audit.read"


class Role(enum.StrEnum):
    # Everything, including billing; a tenant always keeps at least one active owner.
    OWNER = "owner"
    # Everything but billing and the single sign-on provider.
    ADMIN = "admin"
    # Runs operations: orders, refunds, stock, catalog, customers, reports, exports.
    MANAGER = "manager"
    # Works orders and customers day to day.
    AGENT = "agent"
    # Reads, changes nothing.
    VIEWER = "viewer"


_READ = frozenset(
    {
        Permission.ORDERS_READ,
        Permission.CATALOG_READ,
        Permission.CUSTOMERS_READ,
        Permission.INVENTORY_READ,
        Permission.REPORTS_READ,
        Permission.SETTINGS_READ,
    }
)
_AGENT = _READ | {Permission.ORDERS_WRITE, Permission.CUSTOMERS_WRITE}
_MANAGER = _AGENT | {
    Permission.ORDERS_REFUND,
    Permission.CATALOG_WRITE,
    Permission.INVENTORY_WRITE,
    Permission.DATA_EXPORT,
}
_ADMIN = frozenset(Permission) - {Permission.BILLING_MANAGE, Permission.SSO_MANAGE}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: _ADMIN,
    Role.MANAGER: frozenset(_MANAGER),
    Role.AGENT: frozenset(_AGENT),
    Role.VIEWER: _READ,
}


def permissions_of(role: str) -> frozenset[Permission]:
    """The permissions a role grants (none for an unknown role)."""
    try:
        return ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return frozenset()


def parse_permissions(names: list[str]) -> tuple[list[Permission], list[str]]:
    """Split names into known permissions and unknown names."""
    known, unknown = [], []
    for name in names:
        try:
            known.append(Permission(name))
        except ValueError:
            unknown.append(name)
    return known, unknown


def lacking(permission: str) -> PermissionDeniedError:
    """The refusal of a caller whose role or key lacks `permission`, naming who can grant it."""
    # An admin, or for what only owners hold (billing, SSO) the owner.
    who = "a store admin" if permission in permissions_of(Role.ADMIN) else "the store's owner"
    return PermissionDeniedError(
        f"this needs the {str(permission)!r} permission, which your role or key lacks; ask {who}"
    )
