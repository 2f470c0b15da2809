"""Who is calling: a tenant user, an API key or a staff member, resolved from a credential."""

from __future__ import annotations

import datetime as dt
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import bindparam, select, update

from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.driver_sql import DriverStatement
from ordersmith.platform.errors import UnauthenticatedError
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.identity.models import ApiKey, Membership, StaffAccount
from ordersmith.platform.identity.permissions import permissions_of
from ordersmith.platform.identity.tokens import STAFF_AUDIENCE, InvalidTokenError, TokenSigner, secret_hash
from ordersmith.platform.models import Tenant, TenantPlacement
from ordersmith.platform.tenancy import TenantRecord, record_of, require_active

API_KEY_PREFIX = "osk"
# last_used_at is written at most once a minute per key, not on every request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
_RECORD_FIELDS = [field.name for field in fields(TenantRecord)]
# The registry's columns of a TenantRecord; the placement gives the rest.
_TENANT_FIELDS = [name for name in _RECORD_FIELDS if name not in ("cluster", "database_name")]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and what it may do."""

    kind: str  # "user", "api_key" or "staff"
    id: uuid.UUID
    tenant: TenantRecord | None
    role: str | None
    permissions: frozenset[str]
    via_cookie: bool = False
    token_id: str | None = None
    client_address: str | None = None
    # The person who answers for what this caller makes: the user, or whoever created the
    # API key (a key made by a key answers to the same person). Keys and invitations are
    # recorded under them, so deactivating or demoting them reaches all of it.
    person_id: uuid.UUID | None = None

    @property
    def tenant_context(self) -> TenantContext:
        """The store this principal acts in, for a tenant transaction (store routes only)."""
        assert self.tenant is not None, "a store route's principal always has a store"
        return self.tenant.context

    @property
    def actor(self) -> Actor:
        return Actor(self.kind, str(self.id), self.client_address)

    def can(self, permission: str) -> bool:
        return permission in self.permissions


# Built once: every request runs one of these, and a prebuilt statement skips
# SQLAlchemy's per-statement cache-key work.
_MEMBER = (
    select(Membership, Tenant, TenantPlacement)
    .join(Tenant, Tenant.id == Membership.tenant_id)
    .join(TenantPlacement, TenantPlacement.tenant_id == Tenant.id)
    .where(Membership.tenant_id == bindparam("tenant_id"), Membership.user_id == bindparam("user_id"))
)
_TENANT_COLUMNS = [
    *(Tenant.__table__.c[name] for name in _TENANT_FIELDS),
    TenantPlacement.cluster,
    TenantPlacement.database_name,
]
# Every API request runs this, on the driver connection (ADR 0010): plain columns, no ORM loading.
_API_KEY = DriverStatement(
    select(
        ApiKey.id.label("key_id"),
        ApiKey.secret_hash,
        ApiKey.scopes,
        ApiKey.created_by,
        ApiKey.last_used_at,
        ApiKey.revoked_at,
        Membership.status.label("creator_status"),
        Membership.role.label("creator_role"),
        *_TENANT_COLUMNS,
    )
    .outerjoin(
        Membership,
        (Membership.tenant_id == ApiKey.tenant_id) & (Membership.user_id == ApiKey.created_by),
    )
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .join(TenantPlacement, TenantPlacement.tenant_id == Tenant.id)
    .where(ApiKey.prefix == bindparam("prefix", type_=ApiKey.prefix.type))
)


def _record_of_row(row: Mapping[str, Any]) -> TenantRecord:
    return TenantRecord(**{name: row[name] for name in _RECORD_FIELDS})


def _unauthenticated(reason: str) -> UnauthenticatedError:
    return UnauthenticatedError(f"{reason}; sign in again or use a valid API key")


def access_lost(kind: str) -> UnauthenticatedError:
    """The refusal of a user (`kind` "user") or of a key whose person is no longer an active member."""
    who = "this account" if kind == "user" else "the person who created this API key"
    return _unauthenticated(f"{who} no longer has access to this store")


async def principal_from_access_token(
    database: Database, signer: TokenSigner, token: str, *, via_cookie: bool, client_address: str | None
) -> Principal:
    """The user behind a tenant access token, with their current role in that tenant."""
    try:
        claims = signer.verify(token)
    except InvalidTokenError:
        raise _unauthenticated("the access token is invalid or expired") from None
    if claims.tenant_id is None:
        raise _unauthenticated("the access token names no tenant")
    # One round trip: the membership and the tenant it belongs to.
    async with database.platform_reader() as session:
        row = (
            await session.execute(_MEMBER, {"tenant_id": claims.tenant_id, "user_id": claims.subject})
        ).one_or_none()
    if row is None or row[0].status != "active":
        raise access_lost("user")
    membership, tenant, placement = row
    return Principal(
        kind="user",
        id=claims.subject,
        tenant=require_active(record_of(tenant, placement)),
        role=membership.role,
        permissions=frozenset(permissions_of(membership.role)),
        via_cookie=via_cookie,
        token_id=claims.token_id,
        client_address=client_address,
        person_id=claims.subject,
    )


def split_api_key(key: str) -> tuple[str, str] | None:
    """(prefix, key) of a well-formed key `osk_<prefix>_<secret>`, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], key


async def principal_from_api_key(database: Database, key: str, *, client_address: str | None) -> Principal:
    """The integration behind an API key, limited to the key's scopes."""
    parsed = split_api_key(key)
    if parsed is None:
        raise _unauthenticated("the API key is malformed")
    prefix, _ = parsed
    now = dt.datetime.now(dt.UTC)
    # One round trip: the key, its creator's membership and the tenant.
    async with database.platform_driver() as connection:
        row = await _API_KEY.fetchrow(connection, None, {"prefix": prefix})
    if row is None or not hmac.compare_digest(row["secret_hash"], secret_hash(key)):
        raise _unauthenticated("the API key is not valid")
    if row["revoked_at"] is not None:
        raise _unauthenticated("the API key was revoked")
    scopes: list[str] = row["scopes"]
    permissions = frozenset(scopes)
    if row["created_by"] is not None:
        # Deactivating or demoting the creator revokes or narrows their keys; this check
        # holds even for a key that slipped past that (created while the change ran).
        if row["creator_status"] != "active":
            raise access_lost("api_key")
        allowed = permissions_of(row["creator_role"])
        permissions = frozenset(scope for scope in scopes if scope in allowed)
    key_id: uuid.UUID = row["key_id"]
    active = require_active(_record_of_row(row))
    last_used_at: dt.datetime | None = row["last_used_at"]
    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
        async with database.platform_session() as session:
            await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
    return Principal(
        kind="api_key",
        id=key_id,
        tenant=active,
        role=None,
        permissions=permissions,
        client_address=client_address,
        person_id=row["created_by"],
    )


async def principal_from_staff_token(
    database: Database, signer: TokenSigner, token: str, *, client_address: str | None
) -> Principal:
    """The vendor staff member behind a staff access token (a separate realm from tenants)."""
    try:
        claims = signer.verify(token, audience=STAFF_AUDIENCE)
    except InvalidTokenError:
        raise _unauthenticated("the staff access token is invalid or expired") from None
    async with database.platform_session() as session:
        account = await session.get(StaffAccount, claims.subject)
    if account is None or not account.is_active:
        raise _unauthenticated("this staff account is not active")
    return Principal(
        kind="staff",
        id=account.id,
        tenant=None,
        role=account.role,
        permissions=frozenset(),
        token_id=claims.token_id,
        client_address=client_address,
    )
