"""Idempotency keys: a creating request retried with the same key runs once.

The key is claimed with an INSERT in the same transaction as what the request creates,
and the response is stored in that transaction too. So:
- a retry after success finds the stored response and gets it back unchanged;
- a retry while the first is still running waits on the key's row and then finds the
  stored response (or, if the first failed and rolled back, runs itself);
- a failed request stores nothing, so a retry is a fresh attempt;
- the same key with a different body is refused with 409 `idempotency_key_reused`.
Keys are scoped to the caller (user or API key) and kept a day (see jobs.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Driver, TenantContext
from ordersmith.platform.driver_sql import DriverStatement
from ordersmith.platform.errors import ConflictError, FieldError, ValidationFailedError
from ordersmith.platform.tenant_tables import TenantIdempotencyKey

MAX_KEY_LENGTH = 255
RETENTION = dt.timedelta(hours=24)


class IdempotencyKeyReusedError(ConflictError):
    code = "idempotency_key_reused"
    title = "Idempotency key reused"


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any


def fingerprint(method: str, path: str, canonical_body: bytes) -> str:
    """What identifies a request for its key: method, path and the canonical body."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), canonical_body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailedError(
            "the Idempotency-Key header is invalid",
            errors=[FieldError("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} printable characters")],
        )


_KEYS: Table = TenantIdempotencyKey.__table__  # type: ignore[assignment]
_SCOPE, _KEY = bindparam("scope", type_=_KEYS.c.scope.type), bindparam("key", type_=_KEYS.c.key.type)
# Placement uses keys on its hot path, so these run on the driver connection (driver_sql.py).
_CLAIM = DriverStatement(
    pg_insert(_KEYS)
    .values(scope=_SCOPE, key=_KEY, fingerprint=bindparam("fingerprint", type_=_KEYS.c.fingerprint.type))
    .on_conflict_do_nothing(index_elements=["scope", "key"])
    .returning(_KEYS.c.key)
)
_EARLIER = DriverStatement(
    select(_KEYS.c.fingerprint, _KEYS.c.status_code, _KEYS.c.response).where(
        _KEYS.c.scope == _SCOPE, _KEYS.c.key == _KEY
    )
)
_REMEMBER = DriverStatement(
    update(_KEYS)
    .where(_KEYS.c.scope == _SCOPE, _KEYS.c.key == _KEY)
    .values(
        status_code=bindparam("status_code", type_=_KEYS.c.status_code.type),
        response=bindparam("response", type_=_KEYS.c.response.type),
    )
)


async def claim(
    tenant: TenantContext, connection: Driver, *, scope: str, key: str, print_: str
) -> StoredResponse | None:
    """Claim the key for this transaction; the earlier response if it was already used."""
    check_key(key)
    schema = tenant.schema_name
    claimed = await _CLAIM.fetchrow(connection, schema, {"scope": scope, "key": key, "fingerprint": print_})
    if claimed is not None:
        return None
    earlier = await _EARLIER.fetchrow(connection, schema, {"scope": scope, "key": key})
    if earlier["fingerprint"] != print_:
        raise IdempotencyKeyReusedError(
            "this Idempotency-Key was already used with a different request; "
            "use a new key for a new request, or resend exactly the first request"
        )
    return StoredResponse(earlier["status_code"], earlier["response"])


async def remember(
    tenant: TenantContext, connection: Driver, *, scope: str, key: str, status_code: int, body: Any
) -> None:
    """Store the response of the request that claimed the key, in its transaction."""
    parameters = {"scope": scope, "key": key, "status_code": status_code, "response": body}
    await _REMEMBER.execute(connection, tenant.schema_name, parameters)


async def purge(session: AsyncSession, *, older_than: dt.timedelta = RETENTION) -> int:
    """Forget keys older than the retention; return how many."""
    result = await session.execute(
        delete(TenantIdempotencyKey).where(TenantIdempotencyKey.created_at < func.now() - older_than)
    )
    return int(getattr(result, "rowcount", 0) or 0)
