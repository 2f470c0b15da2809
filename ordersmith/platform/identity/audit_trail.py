"""Reading one tenant's audit trail, newest first, for the tenant's own admins."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.identity.models import AuditEntry

DEFAULT_PAGE_SIZE = 50
MAXIMUM_PAGE_SIZE = 200


@dataclass(frozen=True)
class AuditRecord:
    """One entry of a tenant's trail: who did what, to what, from where, when."""

    id: int
    action: str
    actor_type: str
    actor_id: str | None
    target_type: str | None
    target_id: str | None
    data: dict[str, Any]
    client_address: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class AuditPage:
    """Newest first; `next_cursor` fetches the older entries, None at the end."""

    entries: list[AuditRecord]
    next_cursor: str | None


def _encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([entry_id]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        (entry_id,) = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(entry_id, int):
            raise TypeError(entry_id)
        return entry_id
    except (binascii.Error, ValueError, TypeError):
        raise ValidationFailedError(
            "the cursor is not one this list returned",
            errors=[
                FieldError("cursor", "use the next_cursor of the previous page, or omit it to start over")
            ],
        ) from None


async def list_audit_entries(
    database: Database,
    tenant_id: uuid.UUID,
    *,
    action: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> AuditPage:
    """One tenant's audit entries, newest first, optionally of one action only."""
    if not 1 <= limit <= MAXIMUM_PAGE_SIZE:
        raise ValidationFailedError(
            f"limit must be between 1 and {MAXIMUM_PAGE_SIZE}",
            errors=[FieldError("limit", f"must be a whole number from 1 to {MAXIMUM_PAGE_SIZE}")],
        )
    # The tenant's own chain only: vendor-level entries (chain "platform") never show here.
    query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.chain == str(tenant_id))
    if action:
        query = query.where(AuditEntry.action == action.strip())
    if cursor:
        query = query.where(AuditEntry.id < _decode_cursor(cursor))
    query = query.order_by(AuditEntry.id.desc()).limit(limit + 1)
    async with database.platform_session() as session:
        rows = (await session.execute(query)).scalars().all()
    entries = [
        AuditRecord(
            row.id,
            row.action,
            row.actor_type,
            row.actor_id,
            row.target_type,
            row.target_id,
            dict(row.data or {}),
            row.client_address,
            row.created_at,
        )
        for row in rows[:limit]
    ]
    return AuditPage(entries, _encode_cursor(entries[-1].id) if len(rows) > limit else None)
