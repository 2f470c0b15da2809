"""Reading the development mailbox: the emails kept instead of sent when SMTP is not set."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, tuple_

from ordersmith.platform.database import Database
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.identity.models import MailboxMessage

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


def _encode_cursor(email: KeptEmail) -> str:
    raw = json.dumps([email.created_at.isoformat(), str(email.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, email_id = json.loads(raw)
        return dt.datetime.fromisoformat(created_at), uuid.UUID(email_id)
    except (binascii.Error, ValueError, TypeError):
        raise ValidationFailedError(
            "the cursor is not one this list returned",
            errors=[
                FieldError("cursor", "use the next_cursor of the previous page, or omit it to start over")
            ],
        ) from None


async def list_mailbox(
    database: Database, *, to: str | None, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> MailboxPage:
    """The kept emails, newest first, optionally only those sent to `to` (any letter case)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailedError(
            f"limit must be between 1 and {MAX_LIMIT}",
            errors=[FieldError("limit", f"must be a whole number from 1 to {MAX_LIMIT}")],
        )
    query = select(MailboxMessage)
    if to is not None and to.strip():
        query = query.where(func.lower(MailboxMessage.to_address) == to.strip().lower())
    if cursor:
        created_at, email_id = _decode_cursor(cursor)
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
    next_cursor = _encode_cursor(emails[-1]) if len(rows) > limit else None
    return MailboxPage(emails, next_cursor)
