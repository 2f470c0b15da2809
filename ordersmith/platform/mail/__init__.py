"""Email: queue one in the caller's transaction; `delivery` sends it (SMTP or the dev mailbox)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.events import record_event
from ordersmith.platform.mail.sealing import current_sealer, seal_context
from ordersmith.platform.mail.templates import check_context

EMAIL_REQUESTED = "email.requested"


async def queue_email(
    session: AsyncSession | AsyncConnection,
    tenant: TenantContext | None,
    *,
    to: str,
    template: str,
    context: dict[str, Any],
) -> uuid.UUID:
    """Ask for an email to be sent once the caller's transaction commits.

    An unknown template or a context without exactly the template's keys raises
    `EmailTemplateError` here, in the caller's transaction, rather than in the worker.
    The values the template marks secret (links with a token) are sealed before they
    reach the outbox; only the delivery opens them.
    """
    email = check_context(template, context)
    tenant_id = tenant.tenant_id if tenant else None
    payload = seal_context(current_sealer(), tenant_id, to, email, context)
    return await record_event(session, tenant, EMAIL_REQUESTED, payload)
