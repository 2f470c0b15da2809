"""Reading the development mailbox: the emails kept instead of sent when SMTP is not set."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, tuple_

from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import MailboxMessage
from ordersmith.platform.pagination import check_limit, decode_time_cursor, encode_time_cursor

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True)
class KeptEmail:
    """One email of the development mailbox."""

    id: uuid.UUID
    event_id: uuid.UUID | None
    to: str
    subject: str
    text: str
    html: str
    created_at: dt.datetime


@dataclass(frozen=True)
class MailboxPage:
    """Newest first; `next_cursor` fetches the older ones, None at the end."""

    emails: list[KeptEmail]
    next_cursor: str | None


async def list_mailbox(
    database: Database, *, to: str | None, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> MailboxPage:
    """The kept emails, newest first, optionally only those sent to `to` (any letter case)."""
    check_limit(limit, MAX_LIMIT)
    query = select(MailboxMessage)
    if to is not None and to.strip():
        query = query.where(func.lower(MailboxMessage.to_address) == to.strip().lower())
    if cursor:
        created_at, email_id = decode_time_cursor(cursor)
        query = query.where(
            tuple_(MailboxMessage.created_at, MailboxMessage.id) < tuple_(created_at, email_id)
        )
    query = query.order_by(MailboxMessage.created_at.desc(), MailboxMessage.id.desc()).limit(limit + 1)
    async with database.platform_session() as session:
        rows = (await session.execute(query)).scalars().all()
    emails = [
        KeptEmail(
            row.id, row.event_id, row.to_address, row.subject, row.text_body, row.html_body, row.created_at
        )
        for row in rows[:limit]
    ]
    next_cursor = encode_time_cursor(emails[-1].created_at, emails[-1].id) if len(rows) > limit else None
    return MailboxPage(emails, next_cursor)
