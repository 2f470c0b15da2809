"""Email: templates, and an actor that sends what the outbox asks for (SMTP or the dev mailbox)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.events import record_event

EMAIL_REQUESTED = "email.requested"


async def queue_email(
    session: AsyncSession | AsyncConnection,
    tenant: TenantContext | None,
    *,
    to: str,
    template: str,
    context: dict[str, Any],
) -> uuid.UUID:
    """Ask for an email to be sent once the caller's transaction commits."""
    return await record_event(
        session, tenant, EMAIL_REQUESTED, {"to": to, "template": template, "context": context}
    )
