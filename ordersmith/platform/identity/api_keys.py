"""API keys of integrations: scoped to part of their creator's permissions, shown once."""

from __future__ import annotations

import datetime as dt
import secrets
import string
import uuid
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from ordersmith.platform.database import Database
from ordersmith.platform.errors import (
    FieldError,
    PermissionDeniedError,
    ValidationFailedError,
)
from ordersmith.platform.identity.audit import record_audit
from ordersmith.platform.identity.members import not_found, parse_id, tenant_of
from ordersmith.platform.identity.models import ApiKey
from ordersmith.platform.identity.permissions import Permission, parse_permissions
from ordersmith.platform.identity.principal import API_KEY_PREFIX, Principal
from ordersmith.platform.identity.tokens import secret_hash
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.platform.tenancy import TenantRecord

PREFIX_ALPHABET = string.ascii_lowercase + string.digits
PREFIX_LENGTH = 8
MAX_NAME_LENGTH = 100
# 36^8 prefixes make a collision rare; a few retries make it harmless.
_PREFIX_ATTEMPTS = 5


@dataclass(frozen=True)
class ApiKeyView:
    """An API key as admins see it: never its secret."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_by: uuid.UUID | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class CreatedApiKey:
    """A new key and its full secret value, which is never shown again."""

    api_key: ApiKeyView
    key: str


def _view(record: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        record.id,
        record.name,
        record.prefix,
        list(record.scopes),
        record.created_by,
        record.created_at,
        record.last_used_at,
        record.revoked_at,
    )


def _checked_scopes(principal: Principal, name: str, scopes: list[str]) -> list[Permission]:
    errors = []
    if not name:
        errors.append(FieldError("name", "must not be empty: say which integration uses the key"))
    elif len(name) > MAX_NAME_LENGTH:
        errors.append(FieldError("name", f"must be at most {MAX_NAME_LENGTH} characters"))
    known, unknown = parse_permissions(scopes)
    if unknown:
        errors.append(
            FieldError(
                "scopes",
                f"unknown permissions: {', '.join(unknown)}; known ones are {', '.join(Permission)}",
            )
        )
    elif not known:
        errors.append(FieldError("scopes", "list at least one permission the key needs, e.g. orders.read"))
    if errors:
        raise ValidationFailedError("the API key is invalid; see errors", errors=errors)
    beyond = sorted({scope for scope in known if not principal.can(scope)})
    if beyond:
        raise PermissionDeniedError(
            "a key cannot do more than whoever creates it; "
            f"drop the scopes you do not hold: {', '.join(beyond)}"
        )
    return sorted(set(known))


async def create_api_key(
    database: Database, principal: Principal, *, name: str, scopes: list[str]
) -> CreatedApiKey:
    """Create a key limited to `scopes`; its full value is returned here and never again."""
    tenant = tenant_of(principal)
    name = name.strip()
    permissions = _checked_scopes(principal, name, scopes)
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        for _ in range(_PREFIX_ATTEMPTS):
            prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
            key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
            try:
                async with session.begin_nested():
                    record = (
                        await session.scalars(
                            insert(ApiKey)
                            .values(
                                id=uuid.uuid4(),
                                tenant_id=tenant.id,
                                name=name,
                                prefix=prefix,
                                secret_hash=secret_hash(key),
                                scopes=[permission.value for permission in permissions],
                                created_by=principal.person_id,
                                created_at=now,
                            )
                            .returning(ApiKey)
                        )
                    ).one()
                break
            except IntegrityError:
                continue
        else:
            raise RuntimeError(f"no free API key prefix after {_PREFIX_ATTEMPTS} attempts")
        await record_audit(
            session,
            tenant_id=tenant.id,
            actor=principal.actor,
            action="api_key.created",
            target_type="api_key",
            target_id=str(record.id),
            data={"name": name, "prefix": prefix, "scopes": list(record.scopes)},
        )
    return CreatedApiKey(_view(record), key)


async def list_api_keys(database: Database, tenant: TenantRecord, page: PageRequest) -> Page[ApiKeyView]:
    """The store's API keys, revoked ones included, newest first."""
    query = page.apply(
        select(ApiKey).where(ApiKey.tenant_id == tenant.id), ApiKey.created_at, ApiKey.id, newest_first=True
    )
    async with database.platform_session() as session:
        rows = [_view(record) for record in (await session.scalars(query)).all()]
    return page.cut(rows, lambda key: (key.created_at, key.id))


async def get_api_key(database: Database, tenant: TenantRecord, api_key_id: str) -> ApiKeyView:
    """One API key of the store, without its secret."""
    target = parse_id(api_key_id, "API key")
    async with database.platform_session() as session:
        record = await session.scalar(
            select(ApiKey).where(ApiKey.id == target, ApiKey.tenant_id == tenant.id)
        )
    if record is None:
        raise not_found("API key", api_key_id)
    return _view(record)


async def revoke_api_key(database: Database, principal: Principal, api_key_id: str) -> None:
    """Revoke a key: requests with it are refused at once. Revoking twice is harmless."""
    tenant = tenant_of(principal)
    target = parse_id(api_key_id, "API key")
    async with database.platform_session() as session:
        record = await session.scalar(
            select(ApiKey).where(ApiKey.id == target, ApiKey.tenant_id == tenant.id).with_for_update()
        )
        if record is None:
            raise not_found("API key", api_key_id)
        if record.revoked_at is not None:
            return
        record.revoked_at = dt.datetime.now(dt.UTC)
        await record_audit(
            session,
            tenant_id=tenant.id,
            actor=principal.actor,
            action="api_key.revoked",
            target_type="api_key",
            target_id=str(record.id),
            data={"name": record.name, "prefix": record.prefix},
        )
