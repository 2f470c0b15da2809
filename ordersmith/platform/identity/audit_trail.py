"""Reading one tenant's audit trail for the tenant's own admins: a page at a time, or all of it."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import exported
from ordersmith.platform.identity.models import AuditEntry
from ordersmith.platform.pagination import bad_cursor, check_limit, decode_cursor, encode_cursor

DEFAULT_PAGE_SIZE = 50
MAXIMUM_PAGE_SIZE = 200
# Entries an export reads per short transaction: memory stays flat whatever the trail's length.
EXPORT_BATCH = 1000


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


# Entry ids are PostgreSQL bigints: a cursor beyond them could only fail in the query.
_LARGEST_ENTRY_ID = 2**63 - 1


def _decode_entry_cursor(cursor: str) -> int:
    (entry_id,) = decode_cursor(cursor, 1)
    # JSON's true and false decode to bools, which Python counts as ints.
    if isinstance(entry_id, bool) or not isinstance(entry_id, int) or not 1 <= entry_id <= _LARGEST_ENTRY_ID:
        raise bad_cursor()
    return entry_id


async def list_audit_entries(
    database: Database,
    tenant_id: uuid.UUID,
    *,
    action: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> AuditPage:
    """One tenant's audit entries, newest first, optionally of one action only."""
    check_limit(limit, MAXIMUM_PAGE_SIZE)
    # The tenant's own chain only: vendor-level entries (chain "platform") never show here.
    query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.chain == str(tenant_id))
    if action:
        query = query.where(AuditEntry.action == action.strip())
    if cursor:
        query = query.where(AuditEntry.id < _decode_entry_cursor(cursor))
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
    return AuditPage(entries, encode_cursor(entries[-1].id) if len(rows) > limit else None)


async def export_audit_entries(
    database: Database,
    tenant_id: uuid.UUID,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    batch_size: int = EXPORT_BATCH,
) -> AsyncIterator[bytes]:
    """The tenant's trail oldest first, one JSON document a line (`audit.exported`), optionally a time window.

    Read in batches by id, each in a transaction of its own: an export of years of
    entries holds no snapshot open, and entries written meanwhile may end it.
    """
    query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.chain == str(tenant_id))
    if since is not None:
        query = query.where(AuditEntry.created_at >= since)
    if until is not None:
        query = query.where(AuditEntry.created_at < until)
    after = 0
    while True:
        batch = query.where(AuditEntry.id > after).order_by(AuditEntry.id).limit(batch_size)
        async with database.platform_reader() as session:
            rows = (await session.execute(batch)).scalars().all()
            lines = [json.dumps(exported(row), separators=(",", ":"), ensure_ascii=False) for row in rows]
        if lines:
            yield ("\n".join(lines) + "\n").encode()
        if len(rows) < batch_size:
            return
        after = rows[-1].id
